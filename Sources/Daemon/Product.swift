/// What every part of csmil says about the build it belongs to (reports, `csmil status`, the webhook's
/// User-Agent, `csmil --version`).
enum Product {
    static let version = "0.1.0"
}
