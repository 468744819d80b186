import Foundation

/// The body of one webhook event, built once from a report and stored in the outbox: every attempt sends exactly
/// these bytes (and signs them), nothing is serialised again.
public struct WebhookPayload: Sendable, Equatable {
    /// Which body a deployment sends (`[webhook] format`).
    public enum Format: String, Sendable, CaseIterable {
        /// `{"type", "timestamp", "data": report}` (daemon spec, Webhook).
        case event
        /// A FHIR R4 DiagnosticReport (docs/fhir.md).
        case fhir
    }

    /// The report's event id: the `webhook-id` of every attempt.
    public var eventID: String
    /// `slide.scored` or `slide.failed`.
    public var type: String
    /// The `Content-Type` header: `application/json` or `application/fhir+json`.
    public var contentType: String
    /// The exact bytes sent and signed.
    public var body: [UInt8]

    /// Makes a payload from bytes already built.
    public init(eventID: String, type: String, contentType: String, body: [UInt8]) {
        self.eventID = eventID
        self.type = type
        self.contentType = contentType
        self.body = body
    }

    /// The event type of a report: `slide.failed` for a failed slide, `slide.scored` otherwise (a slide without
    /// tissue was read and answered; its report says `no_tissue`).
    public static func eventType(of report: SlideReport) -> String {
        report.status == .failed ? "slide.failed" : "slide.scored"
    }

    /// Builds the body for `format`; `timestamp` is when the event happened (the report's time).
    public static func make(
        _ format: Format, report: SlideReport, timestamp: Date, fhir options: FHIROptions = FHIROptions()
    ) throws -> WebhookPayload {
        switch format {
        case .event: return try event(report: report, timestamp: timestamp)
        case .fhir: return try fhir(report: report, timestamp: timestamp, options: options)
        }
    }

    /// `{"type": …, "timestamp": …, "data": <report.json>}`, compact, keys sorted.
    public static func event(report: SlideReport, timestamp: Date) throws -> WebhookPayload {
        struct Envelope: Encodable {
            var type: String
            var timestamp: String
            var data: SlideReport
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let type = eventType(of: report)
        let body = try encoder.encode(Envelope(type: type, timestamp: iso8601(timestamp), data: report))
        return WebhookPayload(eventID: report.eventID, type: type, contentType: "application/json", body: [UInt8](body))
    }

    /// An RFC 3339 / FHIR `instant` in UTC with whole seconds, e.g. `2025-03-01T09:30:00Z`.
    static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
