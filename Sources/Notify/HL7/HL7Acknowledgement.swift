import Foundation

/// An HL7 acknowledgement (ACK) as the receiver sent it: MSA-1 the code, MSA-2 the control id of the message it
/// answers, and the receiver's text (MSA-3 and any ERR segments' codes and messages).
public struct HL7Acknowledgement: Sendable, Equatable {
    /// MSA-1: `AA` accept, `AE` error, `AR` reject (original mode), or `CA`/`CE`/`CR` (enhanced mode).
    public var code: String
    /// MSA-2: the MSH-10 of the message acknowledged.
    public var controlID: String
    /// MSA-3 and each ERR segment's ERR-3 (error code) and ERR-8 (user message), joined for a person; may be empty.
    public var text: String

    /// Makes an acknowledgement.
    public init(code: String, controlID: String, text: String = "") {
        self.code = code
        self.controlID = controlID
        self.text = text
    }

    /// Reads an ACK; fails when it is not an HL7 message or has no MSA segment.
    public init(parsing bytes: [UInt8]) throws(HL7Error) {
        let message = try HL7Message(parsing: bytes)
        guard let msa = message.segment("MSA") else {
            throw HL7Error(
                code: .ackWithoutMSA, subject: String(decoding: bytes.prefix(60), as: UTF8.self),
                message: "the answer has no MSA segment", fix: "the receiver must answer with an HL7 ACK")
        }
        code = message.value(of: msa, 1).uppercased()
        controlID = message.value(of: msa, 2)
        var parts: [String] = []
        let msaText = message.value(of: msa, 3)
        if !msaText.isEmpty { parts.append(msaText) }
        for err in message.segments("ERR") {
            let codeText = [message.value(of: err, 3, 1), message.value(of: err, 3, 2)].filter { !$0.isEmpty }
            let user = message.value(of: err, 8)
            let diagnostic = message.value(of: err, 7)
            let detail = [codeText.joined(separator: " "), user.isEmpty ? diagnostic : user].filter { !$0.isEmpty }
            if !detail.isEmpty { parts.append(detail.joined(separator: ": ")) }
        }
        text = parts.joined(separator: "; ")
    }

    /// How an attempt that got this ACK is judged, for the message whose MSH-10 is `controlID`: `AA`/`CA` delivered;
    /// `AE`/`CE` retried with backoff (the receiver had a problem processing it); `AR`/`CR` a dead letter with the
    /// ACK's text (refused for good); an ACK for another message or with an unknown code is retried.
    public func outcome(forControlID expected: String) -> DeliveryOutcome {
        let detail = "ACK \(code)" + (text.isEmpty ? "" : ": \(text)")
        guard controlID == expected else {
            return .retry(
                reason: "the ACK answers message \(controlID.isEmpty ? "(none)" : controlID), not \(expected)",
                status: nil, retryAfter: nil)
        }
        switch code {
        case "AA", "CA": return .delivered(status: nil)
        case "AR", "CR": return .deadLetter(status: nil, reason: detail)
        case "AE", "CE": return .retry(reason: detail, status: nil, retryAfter: nil)
        default: return .retry(reason: "unknown acknowledgement code: \(detail)", status: nil, retryAfter: nil)
        }
    }

    /// The ACK a receiver sends for `message` (`csmil hl7-sink`): MSH with the sender and receiver swapped, the
    /// trigger event copied, MSA with `code`, the message's MSH-10 and `text`; an ERR segment for AE/AR.
    public static func reply(
        to message: HL7Message, code: String, text: String = "", controlID: String, time: Date = Date()
    ) -> HL7Message {
        let trigger = message.value("MSH", 9, 2) ?? ""
        let msh = HL7Message.Segment(
            "MSH",
            [
                "|", "^~\\&", HL7Message.field(message.value("MSH", 5)), HL7Message.field(message.value("MSH", 6)),
                HL7Message.field(message.value("MSH", 3)), HL7Message.field(message.value("MSH", 4)),
                HL7ResultMessage.dateTime(time), "", HL7Message.field("ACK", trigger, "ACK"),
                HL7Message.field(controlID), HL7Message.field(message.value("MSH", 11)),
                HL7Message.field(message.value("MSH", 12)), "", "", "", "", "", "UNICODE UTF-8",
            ])
        var segments = [
            msh,
            HL7Message.Segment(
                "MSA", [HL7Message.field(code), HL7Message.field(message.value("MSH", 10)), HL7Message.field(text)]),
        ]
        if code != "AA" && code != "CA" {
            // ERR-3 HL7 error code (table 0357: 207 application internal error), ERR-4 severity E, ERR-8 the text.
            segments.append(
                HL7Message.Segment(
                    "ERR", ["", "", "207^Application internal error^HL70357", "E", "", "", "", HL7Message.field(text)]))
        }
        return HL7Message(segments: segments)
    }
}
