import Crypto
import Errors
import Foundation
import Images
import Inference
import Ingest
import Logging
import Notify
import Synchronization
import Threads

#if canImport(Glibc)
import Glibc
#endif

/// Scores one slide end to end (model spec §2–§5, daemon spec "Reports") and writes its report folder:
/// fingerprint → open → resolution → tissue mask → tile grid → tiles streamed by a reader thread through a bounded
/// queue into the embedder → features spilled to `<work>/<fingerprint>.features` → memory-mapped → clustering, bags
/// and heads → tile records, heatmap, report.
///
/// Every failure becomes a `failed` report with a code and a message naming the slide; nothing here crashes on bad
/// input. Blocks for the whole slide (OpenSlide, BLAS): call it from a thread of your own.
struct SlidePipeline: Sendable {
    /// The model's spec §2 "Our choice" deviations from the reference that every scored slide uses.
    static let deviations = ["centred_contexts", "no_tile_skipped", "white_padding", "uninverted_hsv_tissue"]

    /// What happened to one slide.
    struct Outcome: Sendable {
        /// The report (also when it could not be written).
        var report: SlideReport
        /// The report folder; nil when writing it failed.
        var folder: String?
        /// Why the report could not be written (`report.write`), if it could not.
        var writeError: PipelineError?
        /// The observer asked to stop: nothing was written, the slide is to be scored again later.
        var cancelled = false
        /// A folder csmil writes to is full or refuses writes: not a result of the slide. The daemon waits until the
        /// folder takes writes, then writes `files` (when scoring got that far) or scores the slide again.
        var resource: ResourceProblem? = nil
        /// The report's files when only writing them failed (kept so that they can be written once there is room).
        var files: ReportFiles? = nil
    }

    /// Told how a slide advances, and asked whether to stop (the daemon's shutdown). Called on the scoring thread.
    protocol Observer: AnyObject {
        /// The slide has `total` tiles to embed (after the tissue mask).
        func tilesFound(_ total: Int)
        /// `count` more tiles were embedded.
        func tilesEmbedded(_ count: Int)
        /// Whether to stop the slide now (checked between batches): true makes `score` return a cancelled outcome.
        var shouldStop: Bool { get }
    }

    /// The model, loaded once.
    var model: Model
    /// The `model` object of every report: the manifest's name and architecture and each file's digest.
    var modelReport: SlideReport.Model
    /// Writes report folders under the output directory.
    let writer: ReportWriter
    /// Where spill files go while a slide is scored.
    let workDirectory: String
    let logger: Logger
    /// The level-0 µm per pixel assumed for slides without resolution metadata (`[ingest] assume_mpp`,
    /// `--assume-mpp`); nil refuses them with `slide.no_resolution`.
    var assumeMPP: Double?
    /// Threads that share each embedder batch (`[pipeline] threads`; default one per core).
    var workers = Parallel.workers
    /// Tiles per embedder batch (`[pipeline] batch`); nil: 4 per thread (`TripletEmbedder.defaultBatchSize`).
    var batch: Int?
    /// Tiles per embedder batch.
    var batchSize: Int { batch ?? TripletEmbedder.defaultBatchSize(threads: workers) }
    /// Batches the reader may have ready ahead of the embedder.
    var queuedBatches = 2
    /// Quality control (`[qc]`): measured as tiles stream, excluded tiles left out of clustering and bags.
    var quality = QualitySettings()
    /// `[identity] pattern`: the laboratory's identifiers from the file name; nil writes no identity.
    var identityPattern: IdentityPattern?
    /// `[identity] required`: a name without an accession fails the slide with `slide.no_accession`.
    var identityRequired = false
    /// At bf16: the same model at fp32, for slides whose bf16 probability is close to the threshold.
    var recheck: Recheck?
    /// The event id's result key when it is not this pipeline's own (the fp32 pass of a recheck keeps the bf16
    /// pipeline's: one slide version and one configuration are one event, whichever pass gave the result).
    var resultKeyOverride: String?

    /// `[pipeline] bf16_recheck_margin` in force: bf16 moves a slide's probability by up to a few hundredths where
    /// k-means partitions the slide's tiles differently (docs/precision.md), so a bf16 probability within `margin`
    /// of the threshold is not trusted for the decision: the slide is scored again with `model` (fp32) and the
    /// report carries fp32's result, with the bf16 probability in `model.recheck`.
    struct Recheck: Sendable {
        /// The model at fp32 (its backbones loaded a second time: about 50 MB with ResNet-18, 300 MB with ResNet-50).
        var model: Model
        /// The report's `model` object for the fp32 pass.
        var modelReport: SlideReport.Model
        /// How close to the threshold a bf16 probability must be (strictly less) to be scored again.
        var margin: Double

        /// The recheck for a pipeline at `precision` (nil at fp32, or when `margin` is 0): loads the model at fp32.
        static func load(
            manifest: ModelManifest, precision: Precision, margin: Double, modelReport: SlideReport.Model
        ) throws -> Recheck? {
            guard precision == .bf16, margin > 0 else { return nil }
            var report = modelReport
            report.precision = Precision.fp32.rawValue
            report.kernels = Precision.fp32.kernelsDescription()
            return Recheck(model: try Model(manifest: manifest, precision: .fp32), modelReport: report, margin: margin)
        }

        /// Whether `report` (of the bf16 pass) is to be scored again.
        func applies(to report: SlideReport) -> Bool {
            guard report.status == .scored, let result = report.result else { return false }
            return abs(result.probability - result.threshold) < margin
        }
    }

    /// The `model` object of a report: SHA-256 of each file the manifest names, keyed by its path in `model.toml`.
    static func modelReport(for manifest: ModelManifest, precision: Precision = .fp32) throws -> SlideReport.Model {
        var files: [String: String] = [:]
        for file in manifest.files {
            guard let handle = FileHandle(forReadingAtPath: file.resolvedPath) else {
                throw ModelError(
                    code: .unreadable, role: file.role, file: file.resolvedPath, message: "\(file.role) cannot be read",
                    fix: "check the model folder and that the user running csmil may read it")
            }
            defer { try? handle.close() }
            files[file.path] = "sha256:" + (try FileDigest.sha256(of: handle)).digest
        }
        return SlideReport.Model(
            name: manifest.name, architecture: manifest.architecture.rawValue, files: files,
            precision: precision.rawValue, kernels: precision.kernelsDescription())
    }

    /// The slide's content fingerprint (daemon spec "Jobs and state"): `sha256:` + SHA-256 of the file size (8 bytes,
    /// little-endian), its first 1 MiB and its last 1 MiB. For a MIRAX slide (`.mrxs` beside a folder of the same
    /// name) the folder's files count too (name, size, first and last 64 KiB of each, in name order): the small
    /// `.mrxs` index can be byte-identical for two different slides.
    static func fingerprint(path: String) throws(SlideError) -> String {
        let unreadable = { (reason: String) in
            SlideError(
                code: .unreadable, file: path, message: "cannot be read (\(reason))",
                fix: "check that the file exists and that csmil may read it")
        }
        // O_NONBLOCK: a FIFO put in the slide's place must not block the open; it is refused by its type below.
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw unreadable(String(cString: strerror(errno))) }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        defer { try? handle.close() }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw unreadable("not a regular file")
        }
        do {
            let size = try handle.seekToEnd()
            var hasher = SHA256()
            withUnsafeBytes(of: size.littleEndian) { hasher.update(bufferPointer: $0) }
            let chunk: UInt64 = 1 << 20
            try handle.seek(toOffset: 0)
            hasher.update(data: try handle.read(upToCount: Int(chunk)) ?? Data())
            try handle.seek(toOffset: size > chunk ? size - chunk : 0)
            hasher.update(data: try handle.read(upToCount: Int(chunk)) ?? Data())
            if path.lowercased().hasSuffix(".mrxs") {
                let folder = String(path.dropLast(5))
                let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
                for name in names {
                    guard let member = FileHandle(forReadingAtPath: folder + "/" + name) else { continue }
                    defer { try? member.close() }
                    let memberSize = try member.seekToEnd()
                    let piece: UInt64 = 1 << 16
                    hasher.update(data: Data(name.utf8))
                    withUnsafeBytes(of: memberSize.littleEndian) { hasher.update(bufferPointer: $0) }
                    try member.seek(toOffset: 0)
                    hasher.update(data: try member.read(upToCount: Int(piece)) ?? Data())
                    try member.seek(toOffset: memberSize > piece ? memberSize - piece : 0)
                    hasher.update(data: try member.read(upToCount: Int(piece)) ?? Data())
                }
            }
            return "sha256:" + Hex.string(hasher.finalize())
        } catch {
            throw unreadable("\(error.localizedDescription)")
        }
    }

    /// The event id of a slide version scored with `resultKey` (``resultKey``: the model's files, precision and the
    /// settings that change a result): `evt_` + 32 hex digits of SHA-256 of both. Scoring the same bytes again with
    /// the same model and settings gives the same id (the outbox sends it once); another model is another event.
    static func eventID(fingerprint: String, resultKey: String) -> String {
        "evt_" + String(Hex.string(SHA256.hash(data: Data((fingerprint + "\n" + resultKey).utf8))).prefix(32))
    }

    /// This pipeline's event id for a slide's fingerprint.
    func eventID(fingerprint: String) -> String {
        Self.eventID(fingerprint: fingerprint, resultKey: resultKeyOverride ?? resultKey)
    }

    /// Everything beside the slide's bytes that decides what its report says, one `key=value` per line: the model's
    /// architecture, precision and each file's SHA-256 (by its path in `model.toml`), `[ingest] assume_mpp`,
    /// `[identity] pattern` and `required`, the `[qc]` settings (excluded tiles change the score), and the
    /// pipeline's deviations from the reference. Not in it: threads,
    /// batch size, the kernels used (they change no result beyond rounding) and the model's name.
    var resultKey: String {
        var lines = [
            "csmil-result-2", "architecture=\(modelReport.architecture)",
            "precision=\(modelReport.precision ?? "fp32")",
        ]
        for (path, digest) in modelReport.files.sorted(by: { $0.key < $1.key }) {
            lines.append("file:\(path)=\(digest)")
        }
        lines.append("assume_mpp=" + (assumeMPP.map { "\($0)" } ?? "none"))
        lines.append("identity=" + (identityPattern?.source ?? "") + (identityRequired ? " (required)" : ""))
        lines.append("deviations=" + Self.deviations.joined(separator: ","))
        if let recheck {
            // Rechecked slides carry fp32's result: the margin changes which ones.
            lines.append("bf16_recheck_margin=\(recheck.margin)")
        }
        let q = quality
        lines.append(
            "qc=" + (q.enabled ? "on" : "off") + " exclude=" + q.exclude.map { "\($0)" }.sorted().joined(separator: ",")
                + " \([q.reviewFraction, Double(q.minTiles), q.penFraction, q.blurRelative, q.blurFloor, q.blurFraction, q.foldDensity, q.foldFraction, q.maxMPP])"
        )
        return lines.joined(separator: "\n")
    }

    /// Scores the slide at `path` and writes its report folder; never throws. With an `observer` that asks to stop,
    /// returns a cancelled outcome and writes nothing.
    ///
    /// `fingerprint`: the slide's content fingerprint when the caller already has it (the daemon's job, taken when
    /// the slide settled; the worker checks it again after scoring); nil computes it.
    func score(path: String, fingerprint: String? = nil, observer: (any Observer)? = nil) -> Outcome {
        let started = Date()
        let name = URL(fileURLWithPath: path).lastPathComponent
        var progress = Progress(
            slide: SlideReport.Slide(path: path, name: name, fingerprint: "unreadable:" + Self.pathDigest(path)),
            eventID: "", identity: identityPattern?.identity(forSlideName: name))
        progress.eventID = eventID(fingerprint: progress.slide.fingerprint)
        var files: ReportFiles
        do {
            files = try run(
                path: path, fingerprint: fingerprint, progress: &progress, started: started, observer: observer)
            if let recheck, recheck.applies(to: files.report), let bf16 = files.report.result?.probability {
                logger.notice(
                    "bf16 probability close to the threshold: scoring the slide again at fp32",
                    metadata: [
                        "slide": "\(name)", "event_id": "\(progress.eventID)", "probability": "\(bf16)",
                        "margin": "\(recheck.margin)",
                    ])
                var fp32 = self
                fp32.model = recheck.model
                fp32.modelReport = recheck.modelReport
                fp32.modelReport.recheck = .init(
                    from: Precision.bf16.rawValue, probability: bf16, margin: recheck.margin)
                fp32.recheck = nil
                fp32.resultKeyOverride = resultKey
                files = try fp32.run(
                    path: path, fingerprint: files.report.slide.fingerprint, progress: &progress, started: started,
                    observer: observer)
            }
        } catch let error where PipelineError.isCancellation(error) {
            logger.info(
                "slide interrupted",
                metadata: ["slide": "\(name)", "event_id": "\(progress.eventID)", "stage": "\(progress.stage)"])
            return Outcome(
                report: SlideReport(
                    eventID: progress.eventID, status: .failed, slide: progress.slide, model: modelReport,
                    tiles: .init(count: progress.tileCount), timing: timing(started, progress.stages),
                    error: .init(error), identity: progress.identity),
                folder: nil, cancelled: true)
        } catch let error
            where ResourceProblem.classify(
                error, outputDirectory: writer.outputDirectory, stateDirectory: workDirectory) != nil
        {
            // The state folder has no room for the spill file (or refuses it): the slide did not fail.
            logger.warning(
                "slide not scored: a folder is full or refuses writes",
                metadata: ["slide": "\(name)", "event_id": "\(progress.eventID)"].merging(.error(error)) { $1 })
            return Outcome(
                report: SlideReport(
                    eventID: progress.eventID, status: .failed, slide: progress.slide, model: modelReport,
                    tiles: .init(count: progress.tileCount), timing: timing(started, progress.stages),
                    error: .init(error), identity: progress.identity),
                folder: nil,
                resource: ResourceProblem.classify(
                    error, outputDirectory: writer.outputDirectory, stateDirectory: workDirectory))
        } catch {
            logger.error(
                "slide failed",
                metadata: ["slide": "\(name)", "event_id": "\(progress.eventID)"].merging(.error(error)) { $1 })
            let report = SlideReport(
                eventID: progress.eventID, status: .failed, slide: progress.slide, model: modelReport,
                tiles: .init(count: progress.tileCount), timing: timing(started, progress.stages), error: .init(error),
                tissue: progress.tissue, resolution: progress.resolution, versions: Self.versions,
                identity: progress.identity)
            files = ReportFiles(report: report, tissueMaskPNG: progress.tissueMaskPNG)
        }
        return write(files)
    }

    /// Writes a report folder; a failure is the outcome's `writeError` (and its `resource` problem, with the files
    /// kept, when the output folder is full or refuses writes).
    func write(_ files: ReportFiles) -> Outcome {
        do {
            let folder = try writer.write(files)
            recordInIndex(files.report, folder: folder)
            return Outcome(report: files.report, folder: folder)
        } catch {
            let resource = ResourceProblem.classify(
                error, outputDirectory: writer.outputDirectory, stateDirectory: workDirectory)
            return Outcome(
                report: files.report, folder: nil, writeError: .reportNotWritten(error), resource: resource,
                files: resource == nil ? nil : files)
        }
    }

    /// Writes a `failed` report for the slide at `path` without reading it as a slide (only its fingerprint, when the
    /// file can be read): for a slide that crashed the process on every attempt.
    func fail(path: String, error: PipelineError) -> Outcome {
        let name = URL(fileURLWithPath: path).lastPathComponent
        let fingerprint = (try? Self.fingerprint(path: path)) ?? "unreadable:" + Self.pathDigest(path)
        let report = SlideReport(
            eventID: eventID(fingerprint: fingerprint), status: .failed,
            slide: SlideReport.Slide(path: path, name: name, fingerprint: fingerprint), model: modelReport,
            tiles: .init(count: 0), timing: .init(seconds: 0), error: .init(error),
            versions: Self.versions, identity: identityPattern?.identity(forSlideName: name))
        return write(ReportFiles(report: report))
    }

    /// Puts a written report at the top of the output folder's `index.html`; a failure there is logged and leaves
    /// the report as written.
    private func recordInIndex(_ report: SlideReport, folder: String) {
        do {
            try ReportIndex(outputDirectory: writer.outputDirectory).record(report, folder: folder)
        } catch {
            logger.warning(
                "index.html not updated", metadata: ["slide": "\(report.slide.name)"].merging(.error(error)) { $1 })
        }
    }

    /// What is known about the slide so far, for the failed report when a later stage fails.
    struct Progress {
        var slide: SlideReport.Slide
        var eventID: String
        var stages: [String: Double] = [:]
        var tileCount = 0
        var tissue: SlideReport.Tissue?
        var resolution: SlideReport.Resolution?
        var tissueMaskPNG: Data?
        var identity: SlideIdentity?
        /// The stage in progress (for logs).
        var stage = "start"
    }

    private func run(
        path: String, fingerprint known: String?, progress: inout Progress, started: Date, observer: (any Observer)?
    ) throws -> ReportFiles {
        var clock = Date()
        let shouldStop = { observer?.shouldStop == true }
        /// Ends one stage (its seconds go into the report) and starts the next, unless the observer asks to stop.
        func lap(_ stage: String, _ progress: inout Progress, next: String) throws {
            progress.stages[stage] = Date().timeIntervalSince(clock)
            clock = Date()
            try enter(next, &progress)
        }
        func enter(_ stage: String, _ progress: inout Progress) throws {
            if shouldStop() {
                throw PipelineError(
                    code: .cancelled, subject: path, message: "stopped before \(stage)",
                    fix: "nothing: it is scored again at the next start")
            }
            progress.stage = stage
            logger.debug("slide stage", metadata: ["slide": "\(progress.slide.name)", "stage": "\(stage)"])
        }
        try enter("fingerprint", &progress)
        let fingerprint = try known ?? Self.fingerprint(path: path)
        progress.slide.fingerprint = fingerprint
        progress.eventID = eventID(fingerprint: fingerprint)
        try lap("fingerprint", &progress, next: "open")
        if identityRequired, let pattern = identityPattern, progress.identity?.accession == nil {
            throw PipelineError(
                code: .noAccession, subject: progress.slide.name,
                message: "the file name gives no accession number by [identity] pattern '\(pattern.source)'",
                fix: "rename the slide so that its name carries the accession, or change [identity] pattern "
                    + "(or set required = false to score slides without one)")
        }

        let slide = try Slide(path: path)
        let (width, height) = slide.dimensions(level: 0)
        progress.slide.vendor = slide.vendor
        progress.slide.width = width
        progress.slide.height = height
        let resolution = try SlideResolution(slide: slide, assumeMPP: assumeMPP)
        progress.slide.mpp = resolution.baseMPP
        progress.slide.magnification = resolution.magnification
        progress.resolution = SlideReport.Resolution(
            level: resolution.readLevel, mpp: resolution.targetPixelMPP,
            magnification: 10 / resolution.targetPixelMPP, source: resolution.source, slideMPP: resolution.baseMPP,
            slideMagnification: resolution.magnification, plan: resolution.planDescription)
        try lap("open", &progress, next: "tissue")

        let mask = try TissueMask.compute(slide: slide, resolution: resolution, shouldStop: shouldStop)
        progress.tissue = SlideReport.Tissue(
            areaMM2: mask.tissueArea, fraction: Double(mask.tissuePixelCount) / Double(max(mask.pixels.count, 1)))
        progress.tissueMaskPNG = try mask.png().encoded()
        let grid = TileGrid(slide: slide, resolution: resolution, mask: mask)
        progress.tileCount = grid.tiles.count
        try lap("tissue", &progress, next: "embed")

        guard !grid.tiles.isEmpty else {
            logger.info("no tissue", metadata: ["slide": "\(progress.slide.name)", "event_id": "\(progress.eventID)"])
            let qc =
                quality.enabled
                ? Self.qualityReport(
                    QualityControl.decide(
                        SlideQualityMeasurements(tileCount: 0), settings: quality, baseMPP: resolution.baseMPP),
                    settings: quality) : nil
            let report = SlideReport(
                eventID: progress.eventID, status: .noTissue, slide: progress.slide, model: modelReport,
                tiles: .init(count: 0, size: TileGrid.tileSize), timing: timing(started, progress.stages),
                tissue: progress.tissue, resolution: progress.resolution, versions: Self.versions,
                deviations: Self.deviations, qc: qc, identity: progress.identity)
            return ReportFiles(report: report, tissueMaskPNG: progress.tissueMaskPNG)
        }

        let stream = try TileStream(slide: slide, resolution: resolution, grid: grid)
        // One file per scoring run, not per slide: two processes scoring the same content at once (a `csmil score`
        // beside the daemon, two hosts sharing a work folder) must not read or remove each other's features.
        let spillPath =
            workDirectory + "/" + fingerprint.replacingOccurrences(of: "sha256:", with: "") + "-"
            + UUID().uuidString.lowercased() + ".features"
        defer { unlink(spillPath) }
        observer?.tilesFound(grid.tiles.count)
        let measurements = quality.enabled ? SlideQualityMeasurements(tileCount: grid.tiles.count) : nil
        do {
            try embed(
                stream: stream, slidePath: path, spillPath: spillPath, observer: observer, measurements: measurements)
        } catch var error as PipelineError where error.code == .spill {
            // What the spill file needs, so that a full state folder is waited out until it has that much room.
            error.neededBytes = UInt64(grid.tiles.count * 3 * model.featureSize * MemoryLayout<Float>.stride)
            throw error
        }
        try lap("embed", &progress, next: "qc")

        // QC's verdict; the excluded tiles' features leave the spill file (nothing moves when none is excluded).
        let verdict = measurements.map { QualityControl.decide($0, settings: quality, baseMPP: resolution.baseMPP) }
        let qc = verdict.map { Self.qualityReport($0, settings: quality) }
        let scored = verdict?.usableTiles ?? Array(grid.tiles.indices)
        if scored.count < grid.tiles.count {
            try Self.compactSpill(path: spillPath, keep: scored, rowBytes: 3 * model.featureSize * 4)
        }
        if let verdict, let qc {
            logger.info(
                "slide QC",
                metadata: [
                    "slide": "\(progress.slide.name)", "event_id": "\(progress.eventID)", "qc": "\(qc.status)",
                    "reasons": "\(qc.reasons.joined(separator: ","))", "excluded": "\(verdict.excludedCount)",
                ])
        }
        try lap("qc", &progress, next: "score")
        // Every grid tile's QC flags and report record; excluded ones carry no attention and no scale weights.
        func baseRecord(_ index: Int) -> TileRecord {
            let tile = grid.tiles[index]
            var record = TileRecord(
                x: Int(tile.level0.x.rounded()), y: Int(tile.level0.y.rounded()),
                width: Int(tile.level0.width.rounded()), height: Int(tile.level0.height.rounded()),
                column: tile.column, row: tile.row, attention: nil, scaleWeights: [.nan, .nan, .nan],
                scaleAttention: [.nan, .nan, .nan])
            record.qc = verdict?.flags[index].names ?? []
            record.excluded = verdict?.excluded[index] ?? false
            return record
        }
        guard !scored.isEmpty else {
            // QC left nothing to score: like a slide without tissue, but saying why.
            logger.info(
                "no usable tissue", metadata: ["slide": "\(progress.slide.name)", "event_id": "\(progress.eventID)"])
            let records = grid.tiles.indices.map(baseRecord)
            let thumbnail = try slide.thumbnail()
            let report = SlideReport(
                eventID: progress.eventID, status: .noTissue, slide: progress.slide, model: modelReport,
                tiles: .init(count: grid.tiles.count, drawn: 0, size: TileGrid.tileSize),
                timing: timing(started, progress.stages), tissue: progress.tissue, resolution: progress.resolution,
                versions: Self.versions, deviations: Self.deviations, qc: qc, identity: progress.identity)
            return ReportFiles(
                report: report, tissueMaskPNG: progress.tissueMaskPNG,
                qcMaskPNG: try qc.map {
                    try Self.qualityMaskPNG(
                        thumbnail: thumbnail, slideWidth: width, slideHeight: height, tiles: records, qc: $0)
                }, tiles: records,
                page: try reportPage(
                    report: report, slide: slide, resolution: resolution, grid: grid, records: records,
                    thumbnail: thumbnail))
        }

        let spill = try MappedFeatures(path: spillPath, floats: scored.count * 3 * model.featureSize)
        let scoring = model.score(features: spill.buffer, tileCount: scored.count, shouldStop: shouldStop)
        spill.unmap()
        guard let scoring else {
            throw PipelineError(
                code: .cancelled, subject: path, message: "stopped while the slide was clustered",
                fix: "nothing: it is scored again at the next start")
        }
        try lap("score", &progress, next: "report")
        guard let score = scoring.score else {
            throw PipelineError(
                code: .internal, subject: path, message: "the model gave no score for \(scored.count) tiles",
                fix: PipelineError.reportBug)
        }

        var records = grid.tiles.indices.map(baseRecord)
        for (position, index) in scored.enumerated() {
            records[index].attention = score.tileAttention[position]
            records[index].scaleWeights = score.scaleWeights[position]
            records[index].scaleAttention = score.scaleWeightsSoftmax[position]
        }
        let thumbnail = try slide.thumbnail()
        let heatmap = HeatmapRenderer().render(
            thumbnail: thumbnail,
            slideWidth: width, slideHeight: height, tiles: records)
        let heatmapPNG = try heatmap.encoded()
        let qcMaskPNG = try qc.map {
            try Self.qualityMaskPNG(
                thumbnail: thumbnail, slideWidth: width, slideHeight: height, tiles: records, qc: $0)
        }
        progress.stages["report"] = Date().timeIntervalSince(clock)

        let manifest = model.manifest
        let result = SlideReport.Result(
            probability: score.probability,
            label: score.isPositive ? manifest.positiveLabel : manifest.negativeLabel, threshold: score.threshold,
            headProbabilities: score.headProbabilities, positive: score.isPositive, bagCount: manifest.bagsPerHead,
            clusterCount: score.clusterCount, seed: manifest.seed,
            scaleAttention: Self.scaleAttention(records))
        let drawn = score.tileAttention.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        let report = SlideReport(
            eventID: progress.eventID, status: .scored, slide: progress.slide, model: modelReport, result: result,
            tiles: .init(count: grid.tiles.count, drawn: drawn, size: TileGrid.tileSize),
            timing: timing(started, progress.stages), tissue: progress.tissue, resolution: progress.resolution,
            versions: Self.versions, deviations: Self.deviations, qc: qc, identity: progress.identity)
        logger.info(
            "slide scored",
            metadata: [
                "slide": "\(progress.slide.name)", "event_id": "\(progress.eventID)",
                "probability": "\(score.probability)", "tiles": "\(grid.tiles.count)", "qc": "\(qc?.status ?? "off")",
            ])
        let page = try reportPage(
            report: report, slide: slide, resolution: resolution, grid: grid, records: records, thumbnail: thumbnail)
        return ReportFiles(
            report: report, tissueMaskPNG: progress.tissueMaskPNG, heatmapPNG: heatmapPNG, qcMaskPNG: qcMaskPNG,
            tiles: records, page: page)
    }

    /// Streams the tiles on a reader thread through a bounded queue into the embedder (this thread), writing each
    /// tile's `[scale][D]` features to its grid position in the spill file. Batches are recycled through a second queue, so at most
    /// `queuedBatches + 2` batches of triplets exist whatever the slide's size.
    private func embed(
        stream: TileStream, slidePath: String, spillPath: String, observer: (any Observer)?,
        measurements: SlideQualityMeasurements?
    ) throws {
        let filled = BoundedQueue<TileTripletBatch>(capacity: queuedBatches)
        let pool = BoundedQueue<TileTripletBatch>(capacity: queuedBatches + 2)
        for _ in 0..<(queuedBatches + 2) { pool.put(TileTripletBatch(capacity: batchSize)) }
        let readerError = ReaderError()
        let reader = DedicatedThread(name: "csmil-tile-reader")
        reader.execute {
            defer { filled.close() }
            while let batch = pool.take() {
                do {
                    guard try stream.fill(batch) else { return }
                    // QC sees each tile's pixels here, once, as it streams by.
                    measurements?.measure(batch)
                } catch {
                    readerError.value.withLock { $0 = error }
                    return
                }
                guard filled.put(batch) else { return }
            }
        }
        reader.finish()

        let writer = SpillWriter(path: spillPath)
        let embedder = model.makeTripletEmbedder(batchSize: batchSize, threads: workers)
        let featureCount = 3 * model.featureSize
        var features = [Float](repeating: 0, count: batchSize * featureCount)
        var writeError: (any Error)?
        do {
            try writer.open()
            while let batch = filled.take() {
                if observer?.shouldStop == true {
                    throw PipelineError(
                        code: .cancelled, subject: slidePath, message: "stopped before the slide was done",
                        fix: "nothing: it is scored again at the next start")
                }
                features.withUnsafeMutableBufferPointer { output in
                    embedder.embed(count: batch.count, into: output.baseAddress!) { item in
                        TileTriplet(
                            tile: batch.view(scale: 0, item: item), context10x: batch.view(scale: 1, item: item),
                            context5x: batch.view(scale: 2, item: item))
                    }
                }
                // Each tile's features go to its place in grid order, where scoring and the reports expect them.
                try features.withUnsafeBytes { bytes in
                    let tileBytes = featureCount * 4
                    for (item, tile) in batch.tileIndices.enumerated() {
                        try writer.write(
                            UnsafeRawBufferPointer(rebasing: bytes[(item * tileBytes)..<((item + 1) * tileBytes)]),
                            at: tile * tileBytes)
                    }
                }
                observer?.tilesEmbedded(batch.count)
                pool.put(batch)
            }
            try writer.close()
        } catch {
            writeError = error
        }
        // Unblock the reader whatever happened, then wait for it: it must not outlive the slide.
        pool.close()
        filled.close()
        reader.join()
        if let error = readerError.value.withLock({ $0 }) { throw error }
        if let writeError { throw writeError }
        guard stream.isFinished else {
            throw PipelineError(
                code: .internal, subject: slidePath,
                message: "\(stream.grid.tiles.count) tiles expected, not all read", fix: PipelineError.reportBug)
        }
    }

    /// The slide's per-scale attention summary: each drawn tile's scale attention (softmax of its scale weights),
    /// weighted by its instance attention, averaged and normalised to sum to 1; nil when no tile was drawn.
    static func scaleAttention(_ tiles: [TileRecord]) -> [Double]? {
        var sums = [Double](repeating: 0, count: 3)
        var total = 0.0
        for tile in tiles {
            guard let attention = tile.attention, attention.isFinite, attention > 0, tile.scaleAttention.count == 3
            else { continue }
            for scale in 0..<3 { sums[scale] += Double(attention) * Double(tile.scaleAttention[scale]) }
            total += Double(attention)
        }
        guard total > 0 else { return nil }
        let normaliser = sums.reduce(0, +)
        guard normaliser > 0, normaliser.isFinite else { return nil }
        return sums.map { $0 / normaliser }
    }

    static let versions = SlideReport.Versions(
        csmil: Product.version, openslide: OpenSlideLibrary.version, openblas: BLASRuntime.configuration)

    private func timing(_ started: Date, _ stages: [String: Double]) -> SlideReport.Timing {
        SlideReport.Timing(seconds: Date().timeIntervalSince(started), stages: stages)
    }

    private static func pathDigest(_ path: String) -> String {
        String(Hex.string(SHA256.hash(data: Data(path.utf8))).prefix(16))
    }

}

/// The tile reader's error, handed to the embedder's thread.
private final class ReaderError: Sendable {
    let value = Mutex<(any Error)?>(nil)
}

/// A failure of the pipeline itself (the spill file, a broken invariant), or the daemon's shutdown.
struct PipelineError: CSMILError, Sendable, Equatable {
    enum Code: String, ErrorCode {
        /// The feature spill file under `<state>/work` cannot be written, read back or mapped.
        case spill = "work.spill"
        /// The observer asked to stop (the daemon is shutting down); not a failure of the slide.
        case cancelled = "pipeline.cancelled"
        /// Something that cannot happen did: a bug.
        case `internal` = "internal"
        /// Scoring the slide ended the process on every attempt (a crash in a decoder, the OOM killer).
        case crashed = "slide.crashed"
        /// The report folder could not be written (the ``ReportError`` inside says why).
        case reportNotWritten = "report.write"
        /// `[identity] required` and the file name gives no accession number.
        case noAccession = "slide.no_accession"
    }

    var code: Code
    /// The slide or spill file.
    var subject: String
    var message: String
    var fix: String
    /// The `errno` behind a spill file's failure, when there is one (a full or read-only state folder is a wait,
    /// not a failure of the slide: ``ResourceProblem``).
    var systemError: Int32? = nil
    /// The bytes the spill file needs in all, when known.
    var neededBytes: UInt64? = nil

    static let reportBug = "this is a bug in csmil; please report it with the slide"

    /// Whether `error` says the work was stopped on request (the daemon's shutdown, SIGTERM), from the pipeline or
    /// from inside Ingest's long loops: not a failure of the slide.
    static func isCancellation(_ error: any Error) -> Bool {
        (error as? PipelineError)?.code == .cancelled || (error as? SlideError)?.code == .cancelled
    }

    /// `report.write`, carrying the writer's subject, message and fix.
    static func reportNotWritten(_ error: any Error) -> PipelineError {
        guard let error = error as? any CSMILError else {
            return PipelineError(code: .reportNotWritten, subject: "report", message: "\(error)", fix: reportBug)
        }
        return PipelineError(code: .reportNotWritten, subject: error.subject, message: error.message, fix: error.fix)
    }
}
