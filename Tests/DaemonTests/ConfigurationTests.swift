import Foundation
import Ingest
import Logging
import Testing

@testable import Daemon

@Suite("Configuration")
struct ConfigurationTests {
    /// Parses text as if it were /etc/csmil/csmil.toml.
    func parse(_ text: String) throws(ConfigurationError) -> Configuration {
        try Configuration.parse(text, path: "/etc/csmil/csmil.toml")
    }

    /// The problems a text produces; fails the test when it parses.
    func problems(_ text: String) -> [ConfigurationError.Problem] {
        do {
            let configuration = try parse(text)
            Issue.record("expected an error, got \(configuration)")
            return []
        } catch {
            #expect(error.file == "/etc/csmil/csmil.toml")
            return error.problems
        }
    }

    let minimal = """
        [watch]
        directory = "/srv/scanner"
        [model]
        directory = "/usr/share/csmil/models/demo"
        """

    @Test("the shipped etc/csmil.toml is valid and states the documented defaults")
    func shippedDefault() throws {
        let path = TestSupport.packageRoot.appendingPathComponent("etc/csmil.toml").path
        let configuration = try Configuration.load(path: path)
        #expect(configuration.watch.directory == "/var/lib/csmil/incoming")
        #expect(configuration.watch.settleSeconds == 30)
        #expect(configuration.watch.polling == .auto)
        #expect(configuration.watch.ignore == [".*", "*.tmp", "*.part", "*.partial"])
        #expect(configuration.watch.rescanSeconds == 600)
        #expect(configuration.watch.pollSeconds == 5)
        #expect(configuration.output.directory == "/var/lib/csmil/reports")
        #expect(configuration.state.directory == "/var/lib/csmil/state")
        #expect(configuration.model.directory == "/usr/share/csmil/models/demo")
        #expect(configuration.webhook.url == nil)
        #expect(configuration.webhook.format == .event)
        #expect(configuration.webhook.allowHTTP == false)
        #expect(configuration.webhook.retryInitialSeconds == 5)
        #expect(configuration.webhook.retryMaxSeconds == 3600)
        #expect(configuration.webhook.retryWindowHours == 72)
        #expect(configuration.log.level == .info)
        #expect(configuration.ingest.assumeMPP == nil)
        #expect(configuration.pipeline.precision == .fp32 && configuration.pipeline.batch == nil)
    }

    @Test("every key the shipped file documents equals the default a minimal file gets")
    func shippedEqualsBuiltInDefaults() throws {
        let path = TestSupport.packageRoot.appendingPathComponent("etc/csmil.toml").path
        var shipped = try Configuration.load(path: path)
        var defaults = try parse(minimal.replacingOccurrences(of: "/srv/scanner", with: "/var/lib/csmil/incoming"))
        shipped.sourcePath = ""
        defaults.sourcePath = ""
        defaults.webhook.secretFile = shipped.webhook.secretFile
        #expect(shipped == defaults)
    }

    @Test("omitted optional keys take their defaults")
    func defaults() throws {
        let configuration = try parse(minimal)
        #expect(configuration.watch.settleSeconds == 30)
        #expect(configuration.output.directory == "/var/lib/csmil/reports")
        #expect(configuration.state.directory == "/var/lib/csmil/state")
        #expect(configuration.webhook.url == nil)
        #expect(configuration.webhook.secretFile == nil)
    }

    @Test("relative paths resolve against the configuration file's folder")
    func relativePaths() throws {
        let configuration = try Configuration.parse(
            """
            [watch]
            directory = "in"
            [output]
            directory = "./out/../reports"
            [model]
            directory = "/abs/model"
            [webhook]
            url = "https://lis.example.org/hook"
            secret_file = "secret"
            """, path: "/opt/lab/csmil.toml")
        #expect(configuration.watch.directory == "/opt/lab/in")
        #expect(configuration.output.directory == "/opt/lab/reports")
        #expect(configuration.model.directory == "/abs/model")
        #expect(configuration.webhook.secretFile == "/opt/lab/secret")
        #expect(configuration.webhook.url == "https://lis.example.org/hook")
    }

    @Test("an unknown key is an error naming the key and its line, with the likely intended key")
    func unknownKey() {
        let found = problems(minimal + "\n[webhook]\nurl = \"\"\nretry_max_second = 10\n")
        #expect(found.count == 1)
        #expect(found.first?.code == .unknownKey)
        #expect(found.first?.key == "webhook.retry_max_second")
        #expect(found.first?.line == 7)
        #expect(found.first?.fix.contains("did you mean 'retry_max_seconds'") == true)
    }

    @Test("an unknown section is an error naming it")
    func unknownSection() {
        let found = problems(minimal + "\n[wacth]\ndirectory = \"/x\"\n")
        #expect(found.map(\.code) == [.unknownKey])
        #expect(found.first?.key == "wacth")
        #expect(found.first?.line == 5)
        #expect(found.first?.fix.contains("did you mean 'watch'") == true)
    }

    @Test("a value of the wrong type is an error naming the key, its line and the type found")
    func wrongType() {
        let found = problems(
            """
            [watch]
            directory = "/srv/scanner"
            settle_seconds = "30"
            [model]
            directory = "/m"
            [webhook]
            allow_http = "yes"
            """)
        #expect(found.map(\.code) == [.wrongType, .wrongType])
        #expect(found.map(\.key) == ["watch.settle_seconds", "webhook.allow_http"])
        #expect(found.map(\.line) == [3, 7])
        #expect(found.first?.message == "is a string")
    }

    @Test("a section that is not a table is a type error")
    func sectionOfWrongType() {
        let found = problems("watch = 3\n[model]\ndirectory = \"/m\"\n")
        #expect(found.contains { $0.code == .wrongType && $0.key == "watch" && $0.line == 1 })
    }

    @Test("a missing required key is an error naming the key")
    func missingKey() {
        let found = problems("[watch]\ndirectory = \"/srv/scanner\"\n")
        #expect(found.count == 1)
        #expect(found.first?.code == .missingKey)
        #expect(found.first?.key == "model.directory")
        #expect(found.first?.fix.contains("[model]") == true)
    }

    /// A document whose [watch] section has `watchExtra` appended and `sections` after the rest.
    func document(watchExtra: String = "", sections: String = "") -> String {
        "[watch]\ndirectory = \"/srv/scanner\"\n" + watchExtra + "[model]\ndirectory = \"/m\"\n" + sections
    }

    @Test(
        "impossible values are errors naming the key and line",
        arguments: [
            ("settle_seconds = -1\n", "", "watch.settle_seconds", 3),
            ("polling = \"sometimes\"\n", "", "watch.polling", 3),
            ("ignore = [\"*.tmp\", \"\"]\n", "", "watch.ignore", 3),
            ("rescan_seconds = 0\n", "", "watch.rescan_seconds", 3),
            ("poll_seconds = -1\n", "", "watch.poll_seconds", 3),
            ("", "[webhook]\nurl = \"http://lis.example.org/hook\"\nsecret_file = \"/s\"", "webhook.url", 6),
            ("", "[webhook]\nurl = \"https://user:pw@lis.example.org/\"\nsecret_file = \"/s\"", "webhook.url", 6),
            ("", "[webhook]\nurl = \"ftp://lis.example.org/\"\nsecret_file = \"/s\"", "webhook.url", 6),
            ("", "[webhook]\nurl = \"not a url\"\nsecret_file = \"/s\"", "webhook.url", 6),
            ("", "[webhook]\nurl = \"https://lis.example.org/\"\nsecret_file = \"\"", "webhook.secret_file", 5),
            ("", "[webhook]\nformat = \"xml\"", "webhook.format", 6),
            ("", "[webhook]\nretry_initial_seconds = 0", "webhook.retry_initial_seconds", 6),
            ("", "[webhook]\nretry_initial_seconds = 60\nretry_max_seconds = 10", "webhook.retry_max_seconds", 7),
            ("", "[webhook]\nretry_window_hours = -3", "webhook.retry_window_hours", 6),
            ("", "[output]\ndirectory = \"/srv/scanner/reports\"", "output.directory", 6),
            ("", "[state]\ndirectory = \"/srv/scanner\"", "state.directory", 6),
            ("", "[output]\ndirectory = \"\"", "output.directory", 6),
            ("", "[log]\nlevel = \"verbose\"", "log.level", 6),
            ("", "[ingest]\nassume_mpp = -0.5", "ingest.assume_mpp", 6),
            ("", "[ingest]\nassume_mpp = 10.5", "ingest.assume_mpp", 6),
            ("", "[pipeline]\nmax_concurrent_slides = 0", "pipeline.max_concurrent_slides", 6),
            ("", "[pipeline]\nmax_concurrent_slides = 17", "pipeline.max_concurrent_slides", 6),
            ("", "[pipeline]\nthreads = -1", "pipeline.threads", 6),
            ("", "[pipeline]\nbatch = -1", "pipeline.batch", 6),
            ("", "[pipeline]\nprecision = \"fp16\"", "pipeline.precision", 6),
            ("", "[pipeline]\nbf16_recheck_margin = 0.6", "pipeline.bf16_recheck_margin", 6),
            ("", "[pipeline]\nbf16_recheck_margin = -0.01", "pipeline.bf16_recheck_margin", 6),
            ("", "[qc]\nexclude = [\"pen\", \"dust\"]", "qc.exclude", 6),
            ("", "[qc]\nreview_fraction = 1.5", "qc.review_fraction", 6),
            ("", "[qc]\npen_fraction = -0.1", "qc.pen_fraction", 6),
            ("", "[qc]\nfold_density = 0.9", "qc.fold_density", 6),
            ("", "[qc]\nmin_tiles = -1", "qc.min_tiles", 6),
            ("", "[qc]\nmax_mpp = 0", "qc.max_mpp", 6),
            ("", "[qc]\nblur_floor = -1", "qc.blur_floor", 6),
        ])
    func impossibleValue(watchExtra: String, sections: String, key: String, line: Int) {
        let found = problems(document(watchExtra: watchExtra, sections: sections))
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.code == .invalidValue)
        #expect(found.first?.key == key)
        #expect(found.first?.line == line)
        #expect(found.first?.fix.isEmpty == false)
    }

    @Test("[qc]: on by default with the documented defaults; each key read; an unknown check refused")
    func qualitySection() throws {
        let defaults = try parse(minimal).qc
        #expect(defaults == QualitySettings())
        #expect(defaults.enabled && defaults.exclude == [.pen, .blur, .fold] && defaults.reviewFraction == 0.1)
        let set = try parse(
            document(
                sections: """
                    [qc]
                    enabled = false
                    exclude = ["pen"]
                    review_fraction = 0.2
                    min_tiles = 8
                    pen_fraction = 0.1
                    blur_relative = 0.25
                    blur_floor = 0
                    blur_fraction = 0.5
                    fold_density = 2
                    fold_fraction = 0.6
                    max_mpp = 1.2
                    """)
        ).qc
        #expect(!set.enabled && set.exclude == [.pen] && set.reviewFraction == 0.2 && set.minTiles == 8)
        #expect(set.penFraction == 0.1 && set.blurRelative == 0.25 && set.blurFloor == 0 && set.blurFraction == 0.5)
        #expect(set.foldDensity == 2 && set.foldFraction == 0.6 && set.maxMPP == 1.2)
        let unknown = problems(document(sections: "[qc]\nenable = true\n"))
        #expect(unknown.first?.key == "qc.enable" && unknown.first?.fix.contains("did you mean 'enabled'") == true)
    }

    @Test("[ingest] assume_mpp: absent or 0 assumes nothing; a resolution is taken as given")
    func assumeMPP() throws {
        #expect(try parse(minimal).ingest.assumeMPP == nil)
        #expect(try parse(document(sections: "[ingest]\nassume_mpp = 0\n")).ingest.assumeMPP == nil)
        #expect(try parse(document(sections: "[ingest]\nassume_mpp = 0.25\n")).ingest.assumeMPP == 0.25)
        #expect(try parse(document(sections: "[ingest]\nassume_mpp = 10\n")).ingest.assumeMPP == 10)
        let found = problems(document(sections: "[ingest]\nassume_mpp = \"0.5\"\n"))
        #expect(found.map(\.code) == [.wrongType])
        #expect(found.first?.key == "ingest.assume_mpp")
    }

    @Test("[pipeline]: one slide at a time on every core by default; threads divide the cores unless set")
    func pipelineSettings() throws {
        let defaults = try parse(minimal).pipeline
        #expect(defaults.maxConcurrentSlides == 1 && defaults.threads == nil)
        #expect(defaults.threadsPerSlide(cores: 8) == 8)
        let two = try parse(document(sections: "[pipeline]\nmax_concurrent_slides = 2\n")).pipeline
        #expect(two.threadsPerSlide(cores: 8) == 4)
        #expect(two.threadsPerSlide(cores: 1) == 1)
        let fixed = try parse(document(sections: "[pipeline]\nmax_concurrent_slides = 2\nthreads = 3\n")).pipeline
        #expect(fixed.threadsPerSlide(cores: 8) == 3)
        #expect(defaults.precision == .fp32 && defaults.batch == nil)
        #expect(defaults.batchSize(threads: 2) == 8 && defaults.batchSize(threads: 32) == 128)
        let bf16 = try parse(document(sections: "[pipeline]\nprecision = \"bf16\"\nbatch = 12\n")).pipeline
        #expect(bf16.precision == .bf16 && bf16.batchSize(threads: 2) == 12)
        #expect(defaults.bf16RecheckMargin == 0.05 && bf16.bf16RecheckMargin == 0.05)
        let never = try parse(document(sections: "[pipeline]\nprecision = \"bf16\"\nbf16_recheck_margin = 0\n"))
        #expect(never.pipeline.bf16RecheckMargin == 0)
    }

    @Test("plain http is accepted only with allow_http = true")
    func allowHTTP() throws {
        let configuration = try parse(
            document(
                sections: "[webhook]\nurl = \"http://127.0.0.1:8080/hook\"\nallow_http = true\nsecret_file = \"/s\"\n"))
        #expect(configuration.webhook.url == "http://127.0.0.1:8080/hook")
        #expect(configuration.webhook.allowHTTP)
    }

    @Test("[webhook] timeouts, TLS files and proxy: defaults, values, and impossible values naming the key")
    func webhookTransportKeys() throws {
        let defaults = try parse(minimal).webhook
        #expect(defaults.connectTimeoutSeconds == 10 && defaults.timeoutSeconds == 30)
        #expect(defaults.caFile == nil && defaults.clientCertificate == nil && defaults.clientKey == nil)
        #expect(defaults.proxy == nil)
        let shipped = try Configuration.load(
            path: TestSupport.packageRoot.appendingPathComponent("etc/csmil.toml").path
        ).webhook
        #expect(shipped.connectTimeoutSeconds == 10 && shipped.timeoutSeconds == 30 && shipped.proxy == nil)
        #expect(shipped.caFile == nil && shipped.clientCertificate == nil && shipped.clientKey == nil)
        let webhook = try parse(
            document(
                sections: "[webhook]\nconnect_timeout_seconds = 2\ntimeout_seconds = 7.5\nca_file = \"ca.pem\"\n"
                    + "client_certificate = \"/etc/csmil/client.pem\"\nclient_key = \"key.pem\"\n"
                    + "proxy = \"http://proxy.example.org:3128\"\n")
        ).webhook
        #expect(webhook.connectTimeoutSeconds == 2 && webhook.timeoutSeconds == 7.5)
        #expect(webhook.caFile == "/etc/csmil/ca.pem")
        #expect(webhook.clientCertificate == "/etc/csmil/client.pem" && webhook.clientKey == "/etc/csmil/key.pem")
        #expect(webhook.proxy == "http://proxy.example.org:3128")
        #expect(webhook.clientOptions.timeout == 7.5 && webhook.clientOptions.caFile == "/etc/csmil/ca.pem")
        #expect(webhook.retryPolicy.window == 72 * 3600)
        for (text, key) in [
            ("connect_timeout_seconds = 0", "webhook.connect_timeout_seconds"),
            ("timeout_seconds = -1", "webhook.timeout_seconds"),
            ("client_key = \"k.pem\"", "webhook.client_key"),
            ("proxy = \"not a url\"", "webhook.proxy"),
            ("proxy = \"ftp://proxy.example.org:21\"", "webhook.proxy"),
        ] {
            let found = problems(document(sections: "[webhook]\n" + text))
            #expect(found.map(\.key) == [key], "\(text)")
            #expect(found.first?.line == 6)
        }
    }

    @Test("[watch] ignore, rescan_seconds and poll_seconds are read, and map onto the watcher's settings")
    func watchKeys() throws {
        let configuration = try parse(
            document(
                watchExtra: "settle_seconds = 2\npolling = \"poll\"\nignore = [\"*.xml\", \"tmp/*\"]\n"
                    + "rescan_seconds = 120\npoll_seconds = 1.5\n"))
        #expect(configuration.watch.ignore == ["*.xml", "tmp/*"])
        #expect(configuration.watch.rescanSeconds == 120)
        #expect(configuration.watch.pollSeconds == 1.5)
        let settings = configuration.watch.settings
        #expect(settings.directory == "/srv/scanner")
        #expect(settings.settleSeconds == 2)
        #expect(settings.polling == .poll)
        #expect(settings.ignore == ["*.xml", "tmp/*"])
        #expect(settings.rescanSeconds == 120)
        #expect(settings.pollSeconds == 1.5)
        #expect(try parse(minimal).watch.settings.ignore == WatchSettings.defaultIgnore)
        #expect(try parse(document(watchExtra: "ignore = []\n")).watch.ignore.isEmpty)
        let found = problems(document(watchExtra: "ignore = \"*.tmp\"\n"))
        #expect(found.map(\.code) == [.wrongType])
        #expect(found.first?.key == "watch.ignore")
    }

    @Test("integers and floats are both accepted for durations")
    func numbers() throws {
        let configuration = try parse(document(watchExtra: "settle_seconds = 2.5\n"))
        #expect(configuration.watch.settleSeconds == 2.5)
    }

    @Test("every problem in a file is reported at once")
    func allProblemsAtOnce() {
        let found = problems(
            """
            [watch]
            directry = "/srv/scanner"
            settle_seconds = false
            [webhook]
            retry_initial_seconds = -1
            """)
        #expect(Set(found.map(\.code)) == [.unknownKey, .wrongType, .missingKey, .invalidValue])
        #expect(found.count == 5)
    }

    @Test("a TOML syntax error names the line and column")
    func syntaxError() {
        let found = problems("[watch]\ndirectory = \"/srv/scanner\"\nsettle_seconds = \n")
        #expect(found.count == 1)
        #expect(found.first?.code == .syntax)
        #expect(found.first?.line == 3)
    }

    @Test("a missing file is an error naming the file and the fix")
    func missingFile() {
        #expect {
            try Configuration.load(path: "/nonexistent/csmil.toml")
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.file == "/nonexistent/csmil.toml" && error.problems.first?.code == .unreadable
                && error.description.contains("does not exist") && error.description.contains("--config")
        }
    }

    @Test("the error text lists each problem with its line and key")
    func errorDescription() {
        let error = ConfigurationError(
            file: "/etc/csmil/csmil.toml",
            problems: [
                .init(code: .unknownKey, key: "watch.x", line: 3, message: "unknown key", fix: "remove it"),
                .init(
                    code: .missingKey, key: "model.directory", line: 1, message: "required key is missing",
                    fix: "add it"),
            ])
        #expect(
            error.description == """
                /etc/csmil/csmil.toml: 2 problems
                  line 3: watch.x: unknown key — remove it
                  line 1: model.directory: required key is missing — add it
                """)
    }
}
