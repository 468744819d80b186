import CCurl
import Errors
import Foundation

/// How the webhook is sent: timeouts, TLS material, proxy.
public struct WebhookClientOptions: Sendable, Equatable {
    /// Seconds to establish the connection (TCP and TLS), `CURLOPT_CONNECTTIMEOUT_MS`.
    public var connectTimeout: Double
    /// Seconds for the whole request, `CURLOPT_TIMEOUT_MS`.
    public var timeout: Double
    /// Plain `http://` URLs are refused unless this is true (loopback receivers).
    public var allowHTTP: Bool
    /// A PEM bundle of CA certificates to trust instead of the system's (`CURLOPT_CAINFO`).
    public var caFile: String?
    /// A PEM client certificate for mutual TLS (`CURLOPT_SSLCERT`).
    public var clientCertificate: String?
    /// The client certificate's PEM private key (`CURLOPT_SSLKEY`).
    public var clientKey: String?
    /// A proxy URL; nil for none. Proxy environment variables are always ignored.
    public var proxy: String?
    /// The `User-Agent` header.
    public var userAgent: String

    /// Options with the documented defaults (10 s to connect, 30 s in all, https only, no proxy).
    public init(
        connectTimeout: Double = 10, timeout: Double = 30, allowHTTP: Bool = false, caFile: String? = nil,
        clientCertificate: String? = nil, clientKey: String? = nil, proxy: String? = nil,
        userAgent: String = "csmil-webhook"
    ) {
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.allowHTTP = allowHTTP
        self.caFile = caFile
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
        self.proxy = proxy
        self.userAgent = userAgent
    }
}

/// An HTTP POST over one libcurl easy handle (`curl_easy_init`), owned here: `deinit` cleans it up. Blocking: call it
/// from a thread of its own (the outbox delivery worker's), never from Swift's cooperative pool. The handle is
/// reused between posts so that a keep-alive connection to the receiver is reused too.
///
/// Every post: `CURLOPT_NOSIGNAL`, the configured timeouts, TLS peer and host verification on (there is no option to
/// turn them off), `https` only unless ``WebhookClientOptions/allowHTTP``, redirects not followed, the proxy only
/// from the options (`CURLOPT_PROXY` is set to "" otherwise, which also ignores `http_proxy`/`https_proxy`), the body
/// sent exactly as given, and the status read with `CURLINFO_RESPONSE_CODE`.
public final class WebhookClient {
    /// The options every post uses.
    public let options: WebhookClientOptions
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>

    private static let globalInit: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    /// Makes a client; fails only when libcurl cannot make a handle.
    public init(options: WebhookClientOptions = WebhookClientOptions()) throws(WebhookClientError) {
        _ = Self.globalInit
        guard let handle = curl_easy_init() else {
            throw WebhookClientError(
                message: "libcurl could not create a transfer handle (curl_easy_init failed)",
                fix: "check that libcurl4 is installed and memory is available (csmil doctor)")
        }
        self.options = options
        self.handle = handle
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// POSTs `body` to `url` with `headers` (plus `Content-Type`) and waits for the answer. `isCancelled` is polled
    /// during the transfer; when it returns true the transfer is aborted and ``WebhookResponse/cancelled`` returned.
    public func post(
        url: String, contentType: String, headers: [(name: String, value: String)], body: [UInt8],
        isCancelled: @escaping () -> Bool = { false }
    ) -> WebhookResponse {
        let scheme = url.split(separator: ":", maxSplits: 1).first.map { $0.lowercased() } ?? ""
        guard scheme == "https" || (scheme == "http" && options.allowHTTP) else {
            return .transportFailure(
                timedOut: false,
                message: scheme == "http"
                    ? "refused to send over plain http to \(url) (set [webhook] allow_http = true only for loopback)"
                    : "unsupported URL \(url) (use https://)")
        }
        curl_easy_reset(handle)
        errorBuffer[0] = 0
        let context = TransferContext(isCancelled: isCancelled)
        let contextPointer = Unmanaged.passUnretained(context).toOpaque()

        var list: UnsafeMutablePointer<curl_slist>?
        for line in ["Content-Type: \(contentType)", "Expect:"] + headers.map({ "\($0.name): \($0.value)" }) {
            list = curl_slist_append(list, line)
        }
        defer { curl_slist_free_all(list) }

        var setupFailure: CURLcode = CURLE_OK
        func check(_ result: CURLcode) { if result != CURLE_OK && setupFailure == CURLE_OK { setupFailure = result } }
        check(csmil_curl_setopt_string(handle, CURLOPT_URL, url))
        check(csmil_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        check(csmil_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(options.connectTimeout)))
        check(csmil_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Self.milliseconds(options.timeout)))
        check(csmil_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1))
        check(csmil_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2))
        check(csmil_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, options.allowHTTP ? "http,https" : "https"))
        check(csmil_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        check(csmil_curl_setopt_string(handle, CURLOPT_PROXY, options.proxy ?? ""))
        if let caFile = options.caFile { check(csmil_curl_setopt_string(handle, CURLOPT_CAINFO, caFile)) }
        if let certificate = options.clientCertificate {
            check(csmil_curl_setopt_string(handle, CURLOPT_SSLCERT, certificate))
        }
        if let key = options.clientKey { check(csmil_curl_setopt_string(handle, CURLOPT_SSLKEY, key)) }
        check(csmil_curl_setopt_string(handle, CURLOPT_USERAGENT, options.userAgent))
        check(csmil_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        check(csmil_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list))
        check(csmil_curl_setopt_long(handle, CURLOPT_POST, 1))
        check(csmil_curl_setopt_write_function(handle, CURLOPT_WRITEFUNCTION, Self.onBody))
        check(csmil_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, contextPointer))
        check(csmil_curl_setopt_write_function(handle, CURLOPT_HEADERFUNCTION, Self.onHeader))
        check(csmil_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, contextPointer))
        check(csmil_curl_setopt_xferinfo_function(handle, Self.onProgress))
        check(csmil_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, contextPointer))
        check(csmil_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0))
        guard setupFailure == CURLE_OK else {
            return .transportFailure(
                timedOut: false,
                message: "libcurl refused an option: \(String(cString: curl_easy_strerror(setupFailure)))")
        }

        let result: CURLcode = body.withUnsafeBytes { bytes in
            check(csmil_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count)))
            check(
                csmil_curl_setopt_pointer(
                    handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress)))
            guard setupFailure == CURLE_OK else { return setupFailure }
            return withExtendedLifetime(context) { curl_easy_perform(handle) }
        }

        switch result {
        case CURLE_OK:
            var status = 0
            _ = csmil_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
            let retryAfter = context.headers["retry-after"].flatMap { RetryAfter(header: $0) }
            let text = String(decoding: context.body, as: UTF8.self)
                .split(whereSeparator: \.isNewline).joined(separator: " ")
            return .response(status: status, retryAfter: retryAfter, body: String(text.prefix(512)))
        case CURLE_ABORTED_BY_CALLBACK where context.cancelled:
            return .cancelled
        default:
            let detail =
                errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(result))
            return .transportFailure(timedOut: result == CURLE_OPERATION_TIMEDOUT, message: detail)
        }
    }

    private static func milliseconds(_ seconds: Double) -> Int {
        Int(max(1, min(seconds * 1000, Double(Int32.max))))
    }

    /// State shared with the C callbacks of one transfer.
    private final class TransferContext {
        let isCancelled: () -> Bool
        var cancelled = false
        var headers: [String: String] = [:]
        var body: [UInt8] = []

        init(isCancelled: @escaping () -> Bool) { self.isCancelled = isCancelled }
    }

    private static let onBody: csmil_curl_write_callback = { data, size, count, context in
        let length = size * count
        guard let context, let data else { return length }
        let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
        let room = max(0, 512 - transfer.body.count)
        if room > 0 {
            data.withMemoryRebound(to: UInt8.self, capacity: length) {
                transfer.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: min(room, length)))
            }
        }
        return length
    }

    private static let onHeader: csmil_curl_write_callback = { data, size, count, context in
        let length = size * count
        guard let context, let data else { return length }
        let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
        let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
        if line.hasPrefix("HTTP/") {
            transfer.headers = [:]  // a new response (after 1xx): only the final one's headers count
        } else if let colon = line.firstIndex(of: ":") {
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            transfer.headers[name] = value
        }
        return length
    }

    private static let onProgress: csmil_curl_xferinfo_callback = { context, _, _, _, _ in
        guard let context else { return 0 }
        let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
        if transfer.isCancelled() {
            transfer.cancelled = true
            return 1
        }
        return 0
    }
}

/// The webhook client could not be set up.
public struct WebhookClientError: CSMILError, Sendable, Equatable {
    public enum Code: String, ErrorCode {
        /// libcurl could not make a transfer handle.
        case setup = "webhook.client"
    }

    public var code = Code.setup
    public var message: String
    public var fix: String

    public init(message: String, fix: String) {
        self.message = message
        self.fix = fix
    }

    public var subject: String { "libcurl" }
}
