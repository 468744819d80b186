import Errors
import Foundation

/// The signing keys of the webhook (Standard Webhooks): each `whsec_` + base64 of the key bytes.
///
/// A secret file holds one secret, or two during a rotation (one per line, or separated by spaces): the sender signs
/// with every key and sends all signatures, a receiver accepts any of them. Blank lines and lines starting with `#`
/// are ignored. The key bytes never appear in `description`, logs or errors.
public struct WebhookSecret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The decoded keys, in file order (at least one, at most two).
    let keys: [[UInt8]]

    /// Parses secret text (the contents of a secret file).
    public init(text: String, source: String = "the webhook secret") throws(WebhookSecretError) {
        var keys: [[UInt8]] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            for word in trimmed.split(whereSeparator: \.isWhitespace) {
                keys.append(try Self.decode(String(word), source: source, index: keys.count + 1))
            }
        }
        guard !keys.isEmpty else {
            throw WebhookSecretError(
                code: .empty, source: source, message: "holds no secret",
                fix: "write \"whsec_\" followed by a base64 key of at least 24 bytes, e.g. the output of "
                    + "`echo whsec_$(head -c 32 /dev/urandom | base64)`")
        }
        guard keys.count <= 2 else {
            throw WebhookSecretError(
                code: .tooMany, source: source, message: "holds \(keys.count) secrets; at most 2 are used",
                fix: "keep the new secret and, while receivers switch over, the old one")
        }
        self.keys = keys
    }

    /// Makes a secret from raw key bytes (tests, key generation).
    public init(keys: [[UInt8]]) {
        precondition(!keys.isEmpty && keys.count <= 2, "a webhook secret has one or two keys")
        self.keys = keys
    }

    /// Reads a secret file.
    public static func load(path: String) throws(WebhookSecretError) -> WebhookSecret {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw WebhookSecretError(
                code: .unreadable, source: path,
                message: "could not be read (\((error as NSError).localizedDescription))",
                fix: "create it with \"whsec_\" + a base64 key, readable by the user csmil runs as (mode 0600)")
        }
        return try WebhookSecret(text: String(decoding: data, as: UTF8.self), source: path)
    }

    /// How many keys sign each message.
    public var count: Int { keys.count }

    /// The `whsec_…` text of each key (for writing a secret file; never log it).
    public var encoded: [String] { keys.map { "whsec_" + Data($0).base64EncodedString() } }

    public var description: String { "WebhookSecret(\(keys.count) key\(keys.count == 1 ? "" : "s"), redacted)" }
    public var debugDescription: String { description }

    private static func decode(_ word: String, source: String, index: Int) throws(WebhookSecretError) -> [UInt8] {
        guard word.hasPrefix("whsec_") else {
            throw WebhookSecretError(
                code: .malformed, source: source, message: "secret \(index) does not start with \"whsec_\"",
                fix: "write \"whsec_\" followed by the base64 key")
        }
        let base64 = String(word.dropFirst("whsec_".count))
        guard let data = Data(base64Encoded: base64), !data.isEmpty else {
            throw WebhookSecretError(
                code: .malformed, source: source, message: "secret \(index) is not valid base64 after \"whsec_\"",
                fix: "write \"whsec_\" followed by the base64 key (A–Z, a–z, 0–9, +, /, = padding)")
        }
        guard data.count >= 24 else {
            throw WebhookSecretError(
                code: .tooShort, source: source,
                message: "secret \(index) is \(data.count) bytes; at least 24 are required",
                fix: "generate a longer key: `echo whsec_$(head -c 32 /dev/urandom | base64)`")
        }
        return [UInt8](data)
    }
}

/// A webhook secret that could not be used. It names the file, never the secret.
public struct WebhookSecretError: CSMILError, Sendable, Equatable {
    /// A stable code per kind of failure.
    public enum Code: String, ErrorCode {
        case unreadable = "webhook.secret_unreadable"
        case empty = "webhook.secret_empty"
        case malformed = "webhook.secret_malformed"
        case tooShort = "webhook.secret_too_short"
        case tooMany = "webhook.secret_too_many"

        /// Always: the secret file (or its permissions) must be changed.
        public var needsConfigurationChange: Bool { true }
    }

    public var code: Code
    /// The secret file (or a description of where the text came from).
    public var source: String
    public var message: String
    public var fix: String

    public init(code: Code, source: String, message: String, fix: String) {
        self.code = code
        self.source = source
        self.message = message
        self.fix = fix
    }

    public var subject: String { source }
}
