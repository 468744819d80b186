import Notify

extension Configuration {
    /// The job store's SQLite file, which also holds the webhook outbox.
    var databasePath: String { state.directory + "/csmil.sqlite3" }
}

extension Configuration.Webhook {
    /// How each POST is made.
    var clientOptions: WebhookClientOptions {
        WebhookClientOptions(
            connectTimeout: connectTimeoutSeconds, timeout: timeoutSeconds, allowHTTP: allowHTTP, caFile: caFile,
            clientCertificate: clientCertificate, clientKey: clientKey, proxy: proxy,
            userAgent: "csmil/\(CSMIL.version)")
    }

    /// When failed deliveries are retried.
    var retryPolicy: RetryPolicy {
        RetryPolicy(initialDelay: retryInitialSeconds, maximumDelay: retryMaxSeconds, window: retryWindowHours * 3600)
    }

    /// The body format, as Notify names it.
    var payloadFormat: WebhookPayload.Format {
        switch format {
        case .event: .event
        case .fhir: .fhir
        }
    }
}
