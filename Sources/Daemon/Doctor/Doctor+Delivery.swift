import Errors
import Foundation
import Notify
import Store

/// What a delivery or the daemon's start depends on besides the configuration's own syntax (issue 14, item 5): the
/// TLS files of `[webhook]` and `[hl7]`, the job store file, the webhook secret's mode. `csmil watch` refuses to start
/// on the same TLS-file problems (``Configuration/checkDeliveryFiles()``) and on a damaged job store (``JobStore``),
/// and warns at start, as `csmil status` does, when the secret is readable by every user.
extension Doctor {
    /// One finding per TLS file set for a destination that is on, as OpenSSL loads it.
    static func deliveryFiles(_ configuration: Configuration) -> [Finding] {
        configuration.deliveryFileChecks().map { check in
            let parts = check.key.split(separator: ".", maxSplits: 1)
            let subject = "[\(parts[0])] \(parts.count > 1 ? parts[1] : "")"
            switch check.result {
            case .success(let detail):
                return .ok(subject, "\(check.path): \(detail)")
            case .failure(let error):
                return .problem(
                    subject, "\(error.file) \(error.message); csmil watch will refuse to start", fix: error.fix,
                    code: error.code.rawValue)
            }
        }
    }

    /// The job store file: absent (csmil watch creates it), or a database that passes SQLite's integrity check, as
    /// at the daemon's start. Nothing is created or migrated here.
    static func jobStore(path: String) -> Finding {
        let subject = "job store"
        guard FileManager.default.fileExists(atPath: path) else {
            return .ok(subject, "\(path) does not exist yet; csmil watch creates it")
        }
        do {
            let database = try SQLiteDatabase(path: path)
            try database.checkIntegrity()
        } catch {
            let opening = JobStoreError.opening(path, error)
            guard let named = opening as? any CSMILError else {
                return .problem(subject, "\(path): \(opening)", fix: "check the file and its folder")
            }
            return .problem(subject, named)
        }
        return .ok(subject, "\(path) (integrity check passed)")
    }

    /// The webhook secret file is readable by every user: the text of the daemon's start warning and of
    /// `csmil status`; nil when it is not, or when nothing is delivered.
    static func exposedSecret(_ configuration: Configuration) -> String? {
        guard configuration.webhook.url != nil, let path = configuration.webhook.secretFile else { return nil }
        var status = stat()
        guard stat(path, &status) == 0, status.st_mode & S_IROTH != 0 else { return nil }
        return "[webhook] secret_file \(path) is readable by every user (mode "
            + "\(String(status.st_mode & 0o777, radix: 8))): anyone on this machine can sign events as csmil; "
            + "chmod 600 \(path)"
    }
}
