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
/// The folder appears whole or not at all, so that a reader (or a restart after `kill -9`, a power cut or a full
/// disk) never sees a report folder with some files and not others:
/// 1. The report is checked and encoded before anything on disk changes.
/// 2. The output directory is created if missing (parents `fsync`ed after a `mkdir`); staging folders an earlier
///    crash left for this slide (`.csmil-tmp.<folder>.*`) are removed.
/// 3. Every file (`case_results_merge.csv`, the PNGs given, `tiles.geojson`, `report.html`, `report.json`) is
///    written into a new staging folder `<output>/.csmil-tmp.<folder>.<pid>.<random>` (each through a temporary file, `fsync`ed and renamed; `report.json` last) and the staging folder is `fsync`ed.
/// 4. The staging folder is renamed to the report folder: plain `rename(2)` when there is none yet, an atomic
///    exchange (`renameat2(RENAME_EXCHANGE)`) with the old one when the slide is reported again (file systems
///    without it: the old folder is renamed aside first, so for an instant there is no folder, never a mixed one),
///    and the old folder is removed. The output directory is `fsync`ed.
/// 5. Any failure (a full disk, a read-only file system) removes the staging folder; the old report folder, if
///    any, is left as it was.
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
        let name = Self.folderName(slideName: files.report.slide.name, fingerprint: files.report.slide.fingerprint)
        Self.removeStagingLeftovers(in: outputDirectory, folderName: name)
        let staging =
            outputDirectory + "/" + AtomicFile.temporaryPrefix + name
            + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        try Self.makeDirectory(staging)
        do throws(ReportError) {
            try commit(Self.caseResultsFileName, in: staging) { (file) throws(ReportError) in
                try file.write(caseResults.text)
            }
            for (name, png) in [
                (Self.tissueMaskFileName, files.tissueMaskPNG), (Self.heatmapFileName, files.heatmapPNG),
                (Self.qcMaskFileName, files.qcMaskPNG),
            ] {
                guard let png else { continue }
                try commit(name, in: staging) { (file) throws(ReportError) in try file.write([UInt8](png)) }
            }
            try commit(Self.tilesFileName, in: staging) { (file) throws(ReportError) in
                try TilesGeoJSON.write(files.tiles, identity: files.report.identity) { (piece) throws(ReportError) in
                    try file.write(piece)
                }
            }
            let page = files.page ?? ReportPage(report: files.report)
            try commit(Self.pageFileName, in: staging) { (file) throws(ReportError) in try file.write(page.html) }
            try commit(Self.reportFileName, in: staging) { (file) throws(ReportError) in
                try file.write([UInt8](reportJSON))
            }
            try AtomicFile.syncDirectory(staging)
            try Self.replace(folder, with: staging)
            try AtomicFile.syncDirectory(outputDirectory)
        } catch {
            Self.removeTree(staging)
            throw error
        }
        return folder
    }

    /// Moves the finished staging folder to `folder`: a rename when there is no folder yet, else an atomic exchange
    /// with the old folder (which is then removed), else (no `RENAME_EXCHANGE`) the old folder renamed aside first.
    private static func replace(_ folder: String, with staging: String) throws(ReportError) {
        if rename(staging, folder) == 0 { return }
        let failure = errno
        guard failure == ENOTEMPTY || failure == EEXIST else {
            throw .system("rename the report folder into place", path: folder, errno: failure)
        }
        if let exchange = renameExchange {
            if exchange(AT_FDCWD, staging, AT_FDCWD, folder, renameExchangeFlag) == 0 {
                removeTree(staging)  // the old folder, now under the staging name
                return
            }
            let failure = errno
            guard failure == EINVAL || failure == ENOSYS || failure == ENOTSUP else {
                throw .system("exchange the report folder with the old one", path: folder, errno: failure)
            }
        }
        let aside = staging + ".old"
        if rename(folder, aside) != 0 { throw .system("move the old report folder aside", path: folder, errno: errno) }
        if rename(staging, folder) != 0 {
            let failure = errno
            _ = rename(aside, folder)
            throw .system("rename the report folder into place", path: folder, errno: failure)
        }
        removeTree(aside)
    }

    /// `renameat2(2)`, looked up at run time (Swift's Glibc module does not declare it); nil where libc lacks it.
    private typealias RenameAt2 =
        @convention(c) (
            Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32
        ) -> Int32
    private static let renameExchange: RenameAt2? = {
        guard let symbol = dlsym(nil, "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: RenameAt2.self)
    }()
    /// `RENAME_EXCHANGE` from `<linux/fs.h>`.
    private static let renameExchangeFlag: UInt32 = 2

    /// Removes a folder and what it holds (best effort).
    private static func removeTree(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

    /// Writes one file through a temporary file and renames it into place.
    private func commit(
        _ name: String, in folder: String, contents: (AtomicFile) throws(ReportError) -> Void
    ) throws(ReportError) {
        let file = try AtomicFile(directory: folder, name: name)
        try contents(file)
        try file.commit()
        onCommit?(name)
    }

    /// Removes the staging folders an interrupted write of this slide's report left behind (best effort).
    private static func removeStagingLeftovers(in outputDirectory: String, folderName: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: outputDirectory) else { return }
        let prefix = AtomicFile.temporaryPrefix + folderName + "."
        for name in names where name.hasPrefix(prefix) {
            // `<pid>.<random>` or `<pid>.<random>.old`, of a process that is gone (not a write in progress).
            let parts = name.dropFirst(prefix.count).split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2 || (parts.count == 3 && parts[2] == "old"), let pid = Int32(parts[0]),
                UInt32(parts[1]) != nil, pid != getpid(), kill(pid, 0) != 0, errno == ESRCH
            else { continue }
            removeTree(outputDirectory + "/" + name)
        }
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
