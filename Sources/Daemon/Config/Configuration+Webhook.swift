import Notify
import Store

extension Configuration {
    /// The job store's SQLite file, which also holds the webhook outbox (when `[state] database` is empty).
    var databasePath: String { state.directory + "/csmil.sqlite3" }

    /// Where the store is: the SQLite file, or the shared PostgreSQL database.
    var storeLocation: StoreLocation {
        if let url = state.database { return .postgresql(url: url, passwordFile: state.databasePasswordFile) }
        return .sqlite(path: databasePath)
    }
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
