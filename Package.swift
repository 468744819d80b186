// swift-tools-version:6.2
//
// csmil: a daemon that scores whole-slide images with a CS-MIL model.
// One slide flows Ingest → Inference → Notify; Daemon wires them together.

import PackageDescription

/// Our own targets treat every warning as an error (dependencies are not affected).
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

/// The numerics are optimised in debug builds too: unoptimised SIMD and pointer code is 20–50×
/// slower, which would make the parity tests (whole ResNets) take minutes. Ingest's pixel loops
/// (tiles, tissue) and the synthetic slides' painters are in the same position.
let numeric: [SwiftSetting] = strict + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "csmil",
    products: [
        .executable(name: "csmil", targets: ["Daemon"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // Thin system-library targets: a module map, a shim.h with typed wrappers, pkg-config names.
        .systemLibrary(name: "COpenSlide", pkgConfig: "openslide", providers: [.apt(["libopenslide-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // OpenSSL, the library libcurl (OpenSSL flavour) loads the TLS files with: the same calls check them before
        // a delivery (`TLSFiles`).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTIFF", pkgConfig: "libtiff-4", providers: [.apt(["libtiff-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // oneDNN (bf16 backbones): Debian's libdnnl-dev ships no pkg-config file; headers and library are in the
        // default paths.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),

        // The one error protocol (code, subject, message, fix) every target's errors adopt.
        .target(
            name: "Errors",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The one adapter for blocking C work (a dedicated thread, also a TaskExecutor), its wake-up (a self-pipe),
        // the async code's wake-up, and the bounded queue between two threads.
        .target(
            name: "Threads",
            dependencies: [.product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strict
        ),
        // The one 8-bit RGB image type and its PNG codec (libpng): tissue masks, heatmaps, tiles, truth masks.
        .target(
            name: "Images",
            dependencies: ["Errors", "CPNG"],
            swiftSettings: strict
        ),
        // Watch folder, slide reading, tissue, tiles.
        .target(
            name: "Ingest",
            dependencies: [
                "Errors", "Threads", "Images", "COpenSlide", "CTIFF", .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: numeric
        ),
        // Tensors, backbones, checkpoints, clustering, CS-MIL heads, training.
        .target(
            name: "Inference",
            dependencies: ["Errors", "COpenBLAS", "CDNNL", .product(name: "Logging", package: "swift-log")],
            swiftSettings: numeric
        ),
        // The durable state: the job lifecycle, jobs, path aliases, leases, the outbox, dead letters, hosts; SQLite
        // (embedded, the default) or PostgreSQL (shared by several hosts).
        .target(
            name: "Store",
            dependencies: ["Errors", "CSQLite", "CLibPQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // Reports, webhook transport and the outbox delivery worker (the outbox's tables are in Store).
        .target(
            name: "Notify",
            dependencies: [
                "Errors", "Threads", "Images", "Store", "CCurl", "COpenSSL",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Tools for trying and testing csmil, beside the product (like HummingbirdTesting): synthetic pyramidal
        // slides written with libtiff (`csmil synth`, the tests' slides) and the receivers a lab uses before its
        // LIS is ready (`csmil webhook-sink`).
        .target(
            name: "SyntheticSlides",
            dependencies: ["Errors", "Images", "Ingest", "Inference", "CTIFF"],
            swiftSettings: numeric
        ),
        .target(
            name: "Sinks",
            dependencies: ["Errors", "Notify"],
            swiftSettings: strict
        ),
        // Real PostgreSQL (and PgBouncer) servers for the tests, started from Debian's packages in a temporary folder.
        .target(
            name: "StoreTesting",
            dependencies: ["Store"],
            swiftSettings: strict
        ),
        // The `csmil` executable: commands, configuration, pipeline, systemd; wires Ingest, Inference, Notify, Store.
        .executableTarget(
            name: "Daemon",
            dependencies: [
                "Errors", "Threads", "Images", "Ingest", "Inference", "Notify", "Store", "SyntheticSlides", "Sinks",
                "CSystemd", .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ErrorsTests",
            dependencies: ["Errors", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ThreadsTests",
            dependencies: ["Threads"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "InferenceTests",
            dependencies: ["Errors", "Inference"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IngestTests",
            dependencies: ["Errors", "Threads", "Images", "Ingest", "SyntheticSlides", "COpenSlide"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        // The independent judges of the HL7 and FHIR output (Python programs in tools/ on PyPI packages), run by
        // the Notify and Daemon tests.
        .target(
            name: "TestJudges",
            path: "Tests/TestJudges",
            swiftSettings: strict
        ),
        .testTarget(
            name: "NotifyTests",
            dependencies: ["Errors", "Images", "Notify", "Sinks", "Store", "TestJudges"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "StoreTests",
            dependencies: ["Errors", "Store", "StoreTesting"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DaemonTests",
            dependencies: [
                "Daemon", "Errors", "Threads", "Images", "Inference", "Ingest", "Notify", "Store", "StoreTesting",
                "SyntheticSlides", "Sinks", "TestJudges",
            ],
            swiftSettings: strict
        ),
    ]
)
