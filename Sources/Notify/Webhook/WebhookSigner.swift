import Crypto
import Foundation

/// Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)), one per key,
/// separated by spaces in the `webhook-signature` header.
public struct WebhookSigner: Sendable {
    /// The keys that sign.
    public let secret: WebhookSecret

    /// Makes a signer.
    public init(secret: WebhookSecret) {
        self.secret = secret
    }

    /// The `webhook-signature` header value for a message sent at `timestamp` (Unix seconds).
    public func signature(id: String, timestamp: Int64, body: [UInt8]) -> String {
        secret.keys.map { Self.sign(key: $0, id: id, timestamp: timestamp, body: body) }.joined(separator: " ")
    }

    /// The three Standard Webhooks headers for a message sent at `timestamp`.
    public func headers(id: String, timestamp: Int64, body: [UInt8]) -> [(name: String, value: String)] {
        [
            ("webhook-id", id), ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", signature(id: id, timestamp: timestamp, body: body)),
        ]
    }

    /// Whether `header` (one or more space-separated `v1,…` signatures) holds a signature by any of the keys.
    /// Each is checked by swift-crypto (`isValidAuthenticationCode`, a constant-time comparison).
    public func verify(id: String, timestamp: Int64, body: [UInt8], header: String) -> Bool {
        let offered = header.split(separator: " ").compactMap { part -> [UInt8]? in
            guard part.hasPrefix("v1,") else { return nil }
            return Data(base64Encoded: String(part.dropFirst(3))).map { [UInt8]($0) }
        }
        let message = Array("\(id).\(timestamp).".utf8) + body
        for key in secret.keys {
            let key = SymmetricKey(data: key)
            for candidate in offered
            where HMAC<SHA256>.isValidAuthenticationCode(candidate, authenticating: message, using: key) {
                return true
            }
        }
        return false
    }

    /// One `v1,…` signature.
    static func sign(key: [UInt8], id: String, timestamp: Int64, body: [UInt8]) -> String {
        "v1," + Data(mac(key: key, id: id, timestamp: timestamp, body: body)).base64EncodedString()
    }

    static func mac(key: [UInt8], id: String, timestamp: Int64, body: [UInt8]) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: key))
        hmac.update(data: Array("\(id).\(timestamp).".utf8))
        hmac.update(data: body)
        return [UInt8](hmac.finalize())
    }

}
