import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that goes into one slide's report folder.
public struct ReportFiles: Sendable {
    /// The contents of `report.json`.
    public var report: SlideReport
    /// The tissue mask, already encoded as PNG; nil when there is none (a failed slide).
    public var tissueMaskPNG: Data?
    /// The attention heatmap (``HeatmapRenderer``), already encoded as PNG; nil when there is none.
    public var heatmapPNG: Data?
    /// The QC mask (``QualityMaskRenderer``), already encoded as PNG; nil when QC is off or there are no tiles.
    public var qcMaskPNG: Data?
    /// The tiles for `tiles.geojson` (empty for a failed or tissue-less slide).
    public var tiles: [TileRecord]
    /// `case_results_merge.csv`; nil derives it from the report's result (header only without one).
    public var caseResults: CaseResultsCSV?
    /// `report.html`'s content; nil makes a page of the report alone (no images).
    public var page: ReportPage?

    /// Collects the files of a report.
    public init(
        report: SlideReport, tissueMaskPNG: Data? = nil, heatmapPNG: Data? = nil, qcMaskPNG: Data? = nil,
        tiles: [TileRecord] = [], caseResults: CaseResultsCSV? = nil, page: ReportPage? = nil
    ) {
        self.page = page
        self.report = report
        self.tissueMaskPNG = tissueMaskPNG
        self.heatmapPNG = heatmapPNG
        self.qcMaskPNG = qcMaskPNG
        self.tiles = tiles
        self.caseResults = caseResults
    }
}

/// Writes a slide's report folder under the output directory, crash-safely.
///
/// The folder is `<output>/<slide name without extension, safe characters only>-<12 hex of the fingerprint>`
/// (``folderName(slideName:fingerprint:)``), so re-scoring the same slide version replaces its report in place.
///
/// Order of operations, so that a reader (or a restart after `kill -9` or a power cut) sees either no
/// `report.json` or one whose siblings are all complete and belong to it:
/// 1. The report is checked and encoded before anything on disk changes.
/// 2. The output directory and the slide folder are created if missing (parents `fsync`ed after a `mkdir`).
/// 3. Temporary files left by an earlier crash (`.csmil-tmp.*`) are removed.
/// 4. An existing `report.json` is unlinked and the folder `fsync`ed: from here on the report is absent.
/// 5. `case_results_merge.csv`, `tissue_mask.png`, `attention_heatmap.png`, `qc_mask.png`, `tiles.geojson` and
///    `report.html` are each written to a temporary file in the folder, `fsync`ed and `rename`d into place (an
///    image not given is removed, so no stale sibling stays).
/// 6. The folder is `fsync`ed, making those renames durable before the next step.
/// 7. `report.json` is written the same way and renamed into place last; the folder is `fsync`ed again.
///
/// Every failing system call becomes a ``ReportError`` naming the path and the fix.
public struct ReportWriter: Sendable {
    /// `report.json`.
    public static let reportFileName = "report.json"
    /// `case_results_merge.csv`.
    public static let caseResultsFileName = "case_results_merge.csv"
    /// `tissue_mask.png`.
    public static let tissueMaskFileName = "tissue_mask.png"
    /// `attention_heatmap.png`.
    public static let heatmapFileName = "attention_heatmap.png"
    /// `tiles.geojson`.
    public static let tilesFileName = "tiles.geojson"
    /// `qc_mask.png`.
    public static let qcMaskFileName = "qc_mask.png"
    /// `report.html`.
    public static let pageFileName = "report.html"

    /// The folder that holds one folder per slide (`[output] directory`).
    public var outputDirectory: String

    /// Called with each file name right after its rename, in order (tests watch the order with it).
    var onCommit: (@Sendable (String) -> Void)?

    /// Makes a writer for an output directory; nothing is created until ``write(_:)``.
    public init(outputDirectory: String) {
        self.outputDirectory = outputDirectory
    }

    /// The folder name for a slide: its name without extension, with every character other than ASCII letters,
    /// digits, `-`, `_` and `.` replaced by `_` (runs collapsed, at most 64 characters, never starting with `.`),
    /// then `-` and the first 12 hex digits of the fingerprint (of an FNV-1a hash of it when it holds no
    /// SHA-256 hex).
    public static func folderName(slideName: String, fingerprint: String) -> String {
        var stem = ""
        for scalar in CaseResultsCSV.caseName(forSlideName: slideName).unicodeScalars {
            let safe = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar))
            let kept: Character = safe || scalar == "-" || scalar == "." ? Character(scalar) : "_"
            if kept == "_" && stem.last == "_" { continue }
            stem.append(kept)
        }
        while let first = stem.first, first == "." || first == "_" { stem.removeFirst() }
        stem = String(stem.prefix(64))
        if stem.isEmpty { stem = "slide" }
        return stem + "-" + shortID(fingerprint)
    }

    /// The folder a report goes to.
    public func folderPath(for report: SlideReport) -> String {
        outputDirectory + "/" + Self.folderName(slideName: report.slide.name, fingerprint: report.slide.fingerprint)
    }

    /// Writes (or replaces) the slide's report folder and returns its path.
    @discardableResult
    public func write(_ files: ReportFiles) throws(ReportError) -> String {
        let folder = folderPath(for: files.report)
        let problems = files.report.inconsistencies
        guard problems.isEmpty else {
            throw ReportError(
                code: .inconsistentReport, path: folder + "/" + Self.reportFileName,
                message: "the report contradicts the spec: " + problems.joined(separator: "; "),
                fix: "this is a bug in csmil; please report it with the slide's log")
        }
        let reportJSON: Data
        do {
            reportJSON = try files.report.jsonData()
        } catch {
            throw ReportError(
                code: .encoding, path: folder + "/" + Self.reportFileName,
                message: "could not encode the report: \(error)",
                fix: "this is a bug in csmil (a value JSON cannot hold, such as NaN); please report it")
        }
        let caseResults =
            files.caseResults
            ?? CaseResultsCSV(
                caseName: CaseResultsCSV.caseName(forSlideName: files.report.slide.name),
                headProbabilities: files.report.result?.headProbabilities ?? [],
                threshold: files.report.result?.threshold ?? 0.5, qc: files.report.qc?.status,
                identity: files.report.identity)

        try Self.makeDirectories(outputDirectory)
        try Self.makeDirectory(folder)
        Self.removeLeftovers(in: folder)
        try remove(Self.reportFileName, in: folder)
        try AtomicFile.syncDirectory(folder)

        try commit(Self.caseResultsFileName, in: folder) { (file) throws(ReportError) in
            try file.write(caseResults.text)
        }
        for (name, png) in [
            (Self.tissueMaskFileName, files.tissueMaskPNG), (Self.heatmapFileName, files.heatmapPNG),
            (Self.qcMaskFileName, files.qcMaskPNG),
        ] {
            if let png {
                try commit(name, in: folder) { (file) throws(ReportError) in try file.write([UInt8](png)) }
            } else {
                try remove(name, in: folder)
            }
        }
        try commit(Self.tilesFileName, in: folder) { (file) throws(ReportError) in
            try TilesGeoJSON.write(files.tiles, identity: files.report.identity) { (piece) throws(ReportError) in
                try file.write(piece)
            }
        }
        let page = files.page ?? ReportPage(report: files.report)
        try commit(Self.pageFileName, in: folder) { (file) throws(ReportError) in try file.write(page.html) }
        try AtomicFile.syncDirectory(folder)

        try commit(Self.reportFileName, in: folder) { (file) throws(ReportError) in
            try file.write([UInt8](reportJSON))
        }
        try AtomicFile.syncDirectory(folder)
        return folder
    }

    /// Writes one file through a temporary file and renames it into place.
    private func commit(
        _ name: String, in folder: String, contents: (AtomicFile) throws(ReportError) -> Void
    ) throws(ReportError) {
        let file = try AtomicFile(directory: folder, name: name)
        try contents(file)
        try file.commit()
        onCommit?(name)
    }

    /// Unlinks a file of the folder if it is there.
    private func remove(_ name: String, in folder: String) throws(ReportError) {
        let path = folder + "/" + name
        if unlink(path) != 0 && errno != ENOENT { throw .system("remove the old file", path: path, errno: errno) }
    }

    /// Removes temporary files an interrupted write left behind (best effort).
    private static func removeLeftovers(in folder: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in names where name.hasPrefix(AtomicFile.temporaryPrefix) { unlink(folder + "/" + name) }
    }

    /// `mkdir -p`, `fsync`ing the parent of each folder it creates.
    private static func makeDirectories(_ path: String) throws(ReportError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            try makeDirectory(prefix)
        }
    }

    /// `mkdir(2)` of one folder; an existing folder is fine, an existing file is an error.
    private static func makeDirectory(_ path: String) throws(ReportError) {
        if mkdir(path, 0o755) == 0 {
            let parent = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
            try AtomicFile.syncDirectory(parent.isEmpty ? "/" : parent)
            return
        }
        let failure = errno
        var status = stat()
        if failure == EEXIST, stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR { return }
        throw .system("create the folder", path: path, errno: failure)
    }

    /// Twelve lowercase hex digits identifying a fingerprint.
    static func shortID(_ fingerprint: String) -> String {
        let hex = fingerprint.split(separator: ":").last.map(String.init) ?? ""
        if hex.count >= 12, hex.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) {
            return String(hex.prefix(12))
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in fingerprint.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let digits = String(hash, radix: 16)
        return String((String(repeating: "0", count: 16 - digits.count) + digits).prefix(12))
    }
}
