import Foundation
import TestJudges
import Testing

@testable import Notify

@Suite("Webhook secret and signature")
struct WebhookSignatureTests {
    @Test("the Standard Webhooks reference vector signs to the published signature")
    func referenceVector() throws {
        // From the Standard Webhooks specification's reference libraries.
        let secret = try WebhookSecret(text: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
        let signer = WebhookSigner(secret: secret)
        let body = Array(#"{"test": 2432232314}"#.utf8)
        let signature = signer.signature(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: body)
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(
            signer.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: body, header: signature))
        #expect(!signer.verify(id: "msg_other", timestamp: 1_614_265_330, body: body, header: signature))
        #expect(
            !signer.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_331, body: body, header: signature))
    }

    @Test("two secrets during a rotation give two space-separated signatures, each verifiable alone")
    func rotation() throws {
        let old = [UInt8](repeating: 1, count: 32)
        let new = [UInt8](repeating: 2, count: 32)
        let both = WebhookSigner(secret: WebhookSecret(keys: [new, old]))
        let header = both.signature(id: "evt", timestamp: 10, body: [1, 2, 3])
        let parts = header.split(separator: " ")
        #expect(parts.count == 2 && parts.allSatisfy { $0.hasPrefix("v1,") })
        #expect(
            WebhookSigner(secret: WebhookSecret(keys: [old])).verify(
                id: "evt", timestamp: 10, body: [1, 2, 3], header: header))
        #expect(
            WebhookSigner(secret: WebhookSecret(keys: [new])).verify(
                id: "evt", timestamp: 10, body: [1, 2, 3], header: header))
        #expect(
            !WebhookSigner(secret: WebhookSecret(keys: [[UInt8](repeating: 3, count: 32)]))
                .verify(id: "evt", timestamp: 10, body: [1, 2, 3], header: header))
    }

    @Test("secret files: comments and blank lines ignored, bad ones refused with the file named, never printed")
    func secretParsing() throws {
        let key = "whsec_" + Data(repeating: 5, count: 32).base64EncodedString()
        let secret = try WebhookSecret(text: "# rotated 2025-01\n\n\(key)\n", source: "/etc/csmil/webhook.secret")
        #expect(secret.count == 1)
        #expect(secret.encoded == [key])
        #expect(!"\(secret)".contains(key.dropFirst(6)))
        #expect(!String(reflecting: secret).contains(key.dropFirst(6)))

        func code(_ text: String) -> WebhookSecretError.Code? {
            do {
                _ = try WebhookSecret(text: text, source: "/etc/csmil/webhook.secret")
                return nil
            } catch {
                #expect(error.description.hasPrefix("/etc/csmil/webhook.secret: "))
                #expect(!error.description.contains("c2hvcnQ"))
                return error.code
            }
        }
        #expect(code("") == .empty)
        #expect(code("secret") == .malformed)
        #expect(code("whsec_###") == .malformed)
        #expect(code("whsec_c2hvcnQ=") == .tooShort)
        #expect(code("\(key) \(key) \(key)") == .tooMany)
        #expect(throws: WebhookSecretError.self) { try WebhookSecret.load(path: "/nonexistent/webhook.secret") }
    }

    @Test("the independent Python verifier accepts csmil's signature and rejects a changed body")
    func pythonVerifier() throws {
        let folder = try Fixtures.temporaryFolder()
        let secret = WebhookSecret(keys: [[UInt8](repeating: 9, count: 32)])
        let body = Array(#"{"type":"slide.scored","data":{"x":"ü/é"}}"#.utf8)
        let signature = WebhookSigner(secret: secret).signature(id: "evt_1", timestamp: 1_700_000_000, body: body)
        let verdict = try PythonVerifier.run(
            folder: folder, secret: secret, id: "evt_1", timestamp: "1700000000", signature: signature, body: body)
        #expect(verdict.status == 0, "\(verdict.output)")
        let tampered = try PythonVerifier.run(
            folder: folder, secret: secret, id: "evt_1", timestamp: "1700000000", signature: signature,
            body: body + [32])
        #expect(tampered.status == 1)
    }
}

/// Runs tools/verify_webhook_signature.py (Python's hmac, independent of swift-crypto) through ``Judges``.
enum PythonVerifier {
    static func run(
        folder: String, secret: WebhookSecret, id: String, timestamp: String, signature: String, body: [UInt8]
    ) throws -> (status: Int32, output: String) {
        let secretPath = folder + "/python.secret"
        try Data(secret.encoded.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: secretPath))
        return try Judges.verifyWebhookSignature(
            secretFile: secretPath, id: id, timestamp: timestamp, signature: signature, body: body)
    }
}
