import CCurl

/// Facts about the libcurl this process loaded, as `curl_version_info` reports them.
public struct CurlLibrary: Sendable, Equatable {
    /// libcurl's version, e.g. "7.88.1".
    public var version: String
    /// The TLS backend and its version, e.g. "OpenSSL/3.0.17"; nil when built without TLS.
    public var tlsBackend: String?
    /// The protocols this build speaks ("http", "https", …).
    public var protocols: [String]

    /// Whether HTTPS delivery is possible: a TLS backend and the "https" protocol.
    public var supportsHTTPS: Bool { tlsBackend != nil && protocols.contains("https") }

    /// Reads the loaded library's version data (`curl_version_info`).
    public static var loaded: CurlLibrary {
        guard let info = csmil_curl_version_info()?.pointee else {
            return CurlLibrary(version: "unknown", tlsBackend: nil, protocols: [])
        }
        var protocols: [String] = []
        if var cursor = info.protocols {
            while let name = cursor.pointee {
                protocols.append(String(cString: name))
                cursor += 1
            }
        }
        return CurlLibrary(
            version: info.version.map { String(cString: $0) } ?? "unknown",
            tlsBackend: info.ssl_version.map { String(cString: $0) },
            protocols: protocols
        )
    }
}
