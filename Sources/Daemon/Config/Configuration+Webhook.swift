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

extension OutboxDelivery {
    /// Runs the worker in the foreground (`csmil score --notify`, `csmil outbox deliver`) while `keepGoing`
    /// says so, asked every 200 ms; then cancels it (a transfer in flight stays queued).
    func run(while keepGoing: () throws -> Bool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            while try keepGoing() { try await Task.sleep(for: .milliseconds(200)) }
            group.cancelAll()
            try await group.waitForAll()
        }
    }
}

extension Configuration.Webhook {
    /// How each POST is made.
    var clientOptions: WebhookClientOptions {
        WebhookClientOptions(
            connectTimeout: connectTimeoutSeconds, timeout: timeoutSeconds, allowHTTP: allowHTTP, caFile: caFile,
            clientCertificate: clientCertificate, clientKey: clientKey, proxy: proxy,
            userAgent: "csmil/\(Product.version)")
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
