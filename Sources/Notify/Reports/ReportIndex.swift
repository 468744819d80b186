import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `index.html` in the output folder: the recent slides, newest first, each with its status, probability, label
/// and QC, linking to its `report.html` (issue 16).
///
/// The list lives in `index.json` beside it (at most ``capacity`` entries, 500 unless set, one per report folder: a slide scored
/// again moves to the top). ``record(_:folder:at:)`` reads it, puts the report first, and writes `index.json` and
/// then `index.html`, each through a temporary file renamed into place, so a reader never sees half a page. Writers
/// (the daemon's workers, a `csmil score` beside them) take turns on an exclusive `flock` of `.index.lock`.
public struct ReportIndex: Sendable {
    /// `index.html`.
    public static let pageFileName = "index.html"
    /// `index.json`.
    public static let listFileName = "index.json"
    /// The lock file.
    static let lockFileName = ".index.lock"
    /// The most entries kept.
    public var capacity: Int

    /// One slide in the index.
    public struct Entry: Codable, Sendable, Equatable {
        /// The report folder's name (the link is `folder/report.html`).
        public var folder: String
        public var slide: String
        /// `scored`, `no_tissue` or `failed`.
        public var status: String
        public var probability: Double?
        public var label: String?
        /// `pass`, `review`, or nil with QC off.
        public var qc: String?
        public var qcReasons: [String]
        public var eventID: String
        /// When the report was written, RFC 3339 UTC.
        public var written: String

        enum CodingKeys: String, CodingKey {
            case folder, slide, status, probability, label, qc
            case qcReasons = "qc_reasons"
            case eventID = "event_id"
            case written
        }
    }

    /// The output folder.
    public var outputDirectory: String

    public init(outputDirectory: String, capacity: Int = 500) {
        self.outputDirectory = outputDirectory
        self.capacity = max(1, capacity)
    }

    /// Puts `report` (written to `folder`, a folder of the output directory) at the top of the index and rewrites
    /// `index.json` and `index.html`; returns the entries as written.
    @discardableResult
    public func record(_ report: SlideReport, folder: String, at date: Date = Date()) throws(ReportError) -> [Entry] {
        let lockPath = outputDirectory + "/" + Self.lockFileName
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw .system("open the index lock", path: lockPath, errno: errno) }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else { throw .system("lock the index", path: lockPath, errno: errno) }
        }
        defer { flock(lock, LOCK_UN) }

        let name = URL(fileURLWithPath: folder).lastPathComponent
        var entries = entriesOnDisk().filter { $0.folder != name }
        entries.insert(
            Entry(
                folder: name, slide: report.slide.name, status: report.status.rawValue,
                probability: report.result?.probability, label: report.result?.label, qc: report.qc?.status,
                qcReasons: report.qc?.reasons ?? [], eventID: report.eventID, written: Self.timestamp(date)),
            at: 0)
        entries = Array(entries.prefix(capacity))

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let list: Data
        do {
            list = try encoder.encode(entries)
        } catch {
            throw ReportError(
                code: .encoding, path: outputDirectory + "/" + Self.listFileName,
                message: "could not encode the index: \(error)", fix: "this is a bug in csmil; please report it")
        }
        for (fileName, bytes) in [
            (Self.listFileName, [UInt8](list)), (Self.pageFileName, Array(Self.html(entries).utf8)),
        ] {
            let file = try AtomicFile(directory: outputDirectory, name: fileName)
            try file.write(bytes)
            try file.commit()
        }
        try AtomicFile.syncDirectory(outputDirectory)
        return entries
    }

    /// The entries in `index.json`; none when it is missing or unreadable (the next record starts it again).
    public func entriesOnDisk() -> [Entry] {
        guard let data = FileManager.default.contents(atPath: outputDirectory + "/" + Self.listFileName) else {
            return []
        }
        return (try? JSONDecoder().decode([Entry].self, from: data)) ?? []
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// The page for `entries` (newest first).
    static func html(_ entries: [Entry]) -> String {
        let review = entries.filter { $0.qc == "review" }.count
        var page = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>csmil — recent slides</title>
            <style>
            body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;\
            max-width:1180px;padding:16px 24px;color:#1b1b1b}
            h1{font-size:22px}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 10px 5px 0;\
            border-bottom:1px solid #e4e4e4;vertical-align:top}th{font-weight:500;color:#555}
            .number{font-variant-numeric:tabular-nums;text-align:right;padding-right:18px}
            tr.review td{background:#fff6da}.qc-review{font-weight:600;color:#8a5a00}.qc-pass{color:#2d6a2d}
            .failed{color:#a01818}.small{font-size:12px;color:#666}
            </style>
            </head>
            <body>
            <h1>Recent slides</h1>
            <p>\(entries.count) most recent report(s), newest first; \(review) to review. Each links to its report \
            page. Algorithmic results for a pathologist to review; not a diagnosis.</p>
            <table id="slides">
            <tr><th>written (UTC)</th><th>slide</th><th>QC</th><th class="number">probability</th><th>result</th>\
            <th>status</th></tr>

            """
        for entry in entries {
            let qc: String
            switch entry.qc {
            case "review"?:
                qc =
                    "<span class=\"qc-review\">review</span> <span class=\"small\">"
                    + escape(entry.qcReasons.joined(separator: ", ")) + "</span>"
            case let status?: qc = "<span class=\"qc-\(escape(status))\">\(escape(status))</span>"
            case nil: qc = "<span class=\"small\">off</span>"
            }
            let probability = entry.probability.map { String(format: "%.3f", $0) } ?? "–"
            let link = escape(Self.percentEncoded(entry.folder)) + "/report.html"
            page += "<tr class=\"\(entry.qc == "review" ? "review" : "")\">"
            page +=
                "<td>\(escape(entry.written.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")))</td>"
            page += "<td><a href=\"\(link)\">\(escape(entry.slide))</a></td><td>\(qc)</td>"
            page += "<td class=\"number\">\(probability)</td><td>\(escape(entry.label ?? ""))</td>"
            page += "<td class=\"\(entry.status == "failed" ? "failed" : "")\">\(escape(entry.status))</td></tr>\n"
        }
        page += "</table>\n</body>\n</html>\n"
        return page
    }

    /// A folder name as a relative URL path segment (folder names are ASCII letters, digits, `-`, `_` and `.`,
    /// but be safe).
    static func percentEncoded(_ name: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-_.")
        return name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name
    }
}
