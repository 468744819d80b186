import Errors
import Foundation

/// The contents of a slide's `report.json` (schema `csmil.report/1`, daemon spec "Reports").
///
/// The spec's fields are always written, with `null` where a value is unknown (`result` when there is no score,
/// a corrupt slide's size), except `error`, which appears only when `status` is `failed`. Everything else is an
/// extra in a clearly named optional field that is left out when nil. The same value is the `data` of the webhook.
public struct SlideReport: Codable, Sendable, Equatable {
    /// The schema identifier this type writes.
    public static let currentSchema = "csmil.report/1"

    /// What happened to the slide.
    public enum Status: String, Codable, Sendable, Equatable {
        /// The slide was scored; `result` holds the answer.
        case scored
        /// The slide holds no tissue tiles; there is no score.
        case noTissue = "no_tissue"
        /// The slide could not be scored; `error` says why.
        case failed
    }

    /// The slide as it was read.
    public struct Slide: Codable, Sendable, Equatable {
        /// The path the slide was read from.
        public var path: String
        /// The slide's file name.
        public var name: String
        /// The content fingerprint, `sha256:…` (the slide's identity).
        public var fingerprint: String
        /// OpenSlide's vendor (`aperio`, `generic-tiff`, …); nil when the file could not be opened.
        public var vendor: String?
        /// Level-0 width in pixels; nil when unknown.
        public var width: Int?
        /// Level-0 height in pixels; nil when unknown.
        public var height: Int?
        /// Level-0 micrometres per pixel; nil when unknown.
        public var mpp: Double?
        /// Level-0 objective magnification (20, 40, …); nil when unknown.
        public var magnification: Double?

        /// Makes a slide description.
        public init(
            path: String, name: String, fingerprint: String, vendor: String? = nil, width: Int? = nil,
            height: Int? = nil, mpp: Double? = nil, magnification: Double? = nil
        ) {
            self.path = path
            self.name = name
            self.fingerprint = fingerprint
            self.vendor = vendor
            self.width = width
            self.height = height
            self.mpp = mpp
            self.magnification = magnification
        }

        // Spec fields are written as null rather than left out.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(path, forKey: .path)
            try container.encode(name, forKey: .name)
            try container.encode(fingerprint, forKey: .fingerprint)
            try container.encode(vendor, forKey: .vendor)
            try container.encode(width, forKey: .width)
            try container.encode(height, forKey: .height)
            try container.encode(mpp, forKey: .mpp)
            try container.encode(magnification, forKey: .magnification)
        }
    }

    /// The model that scored the slide.
    public struct Model: Codable, Sendable, Equatable {
        /// The model's name from its manifest.
        public var name: String
        /// The backbone architecture, e.g. `resnet50`.
        public var architecture: String
        /// Each model file's name and its digest, `sha256:…`.
        public var files: [String: String]
        /// Extra: the backbones' number format, `fp32` or `bf16` (`[pipeline] precision`), and what computed them.
        public var precision: String?
        /// Extra: the kernels behind `precision`, e.g. "oneDNN 2.6.3 avx512_core_bf16".
        public var kernels: String?
        /// Extra: set when the slide was scored at bf16 first, came out within `[pipeline] bf16_recheck_margin` of
        /// the threshold, and was scored again at fp32 (`precision`, and the result, are then fp32's).
        public var recheck: Recheck?

        /// A slide scored again at fp32 because its bf16 probability was close to the threshold.
        public struct Recheck: Codable, Sendable, Equatable {
            /// The precision of the first scoring, `bf16`.
            public var from: String
            /// The slide probability the first scoring gave.
            public var probability: Double
            /// `[pipeline] bf16_recheck_margin`: how close to the threshold a probability must be to be rechecked.
            public var margin: Double

            public init(from: String, probability: Double, margin: Double) {
                self.from = from
                self.probability = probability
                self.margin = margin
            }
        }

        /// Makes a model description.
        public init(
            name: String, architecture: String, files: [String: String], precision: String? = nil,
            kernels: String? = nil, recheck: Recheck? = nil
        ) {
            self.name = name
            self.architecture = architecture
            self.files = files
            self.precision = precision
            self.kernels = kernels
            self.recheck = recheck
        }
    }

    /// The slide's score.
    public struct Result: Codable, Sendable, Equatable {
        /// The slide probability: the mean of `head_probabilities`.
        public var probability: Double
        /// The decision's label (the model's positive or negative label).
        public var label: String
        /// The decision threshold: positive when `probability ≥ threshold`.
        public var threshold: Double
        /// Each head's probability (mean of its bag probabilities), in head order.
        public var headProbabilities: [Double]
        /// Extra: the decision as a boolean.
        public var positive: Bool?
        /// Extra: bags drawn per head.
        public var bagCount: Int?
        /// Extra: k-means clusters used (fewer than 8 when the slide has fewer distinct tiles).
        public var clusterCount: Int?
        /// Extra: the bag sampler's seed.
        public var seed: UInt64?
        /// Extra: the slide's per-scale attention summary, 20x, 10x, 5x: each tile's softmax of the scale weights
        /// (`scale_attention` in `tiles.geojson`), averaged over the tiles drawn into bags, weighted by their instance
        /// attention; sums to 1.
        public var scaleAttention: [Double]?

        /// Makes a result.
        public init(
            probability: Double, label: String, threshold: Double, headProbabilities: [Double],
            positive: Bool? = nil, bagCount: Int? = nil, clusterCount: Int? = nil, seed: UInt64? = nil,
            scaleAttention: [Double]? = nil
        ) {
            self.probability = probability
            self.label = label
            self.threshold = threshold
            self.headProbabilities = headProbabilities
            self.positive = positive
            self.bagCount = bagCount
            self.clusterCount = clusterCount
            self.seed = seed
            self.scaleAttention = scaleAttention
        }

        enum CodingKeys: String, CodingKey {
            case probability, label, threshold, positive, seed
            case scaleAttention = "scale_attention"
            case headProbabilities = "head_probabilities"
            case bagCount = "bag_count"
            case clusterCount = "cluster_count"
        }
    }

    /// Tile counts.
    public struct Tiles: Codable, Sendable, Equatable {
        /// Tissue tiles at 20x that were embedded.
        public var count: Int
        /// Extra: tiles drawn into at least one bag (those with an attention value).
        public var drawn: Int?
        /// Extra: the tile edge in pixels at 20x (256).
        public var size: Int?

        /// Makes tile counts.
        public init(count: Int, drawn: Int? = nil, size: Int? = nil) {
            self.count = count
            self.drawn = drawn
            self.size = size
        }
    }

    /// How long scoring took.
    public struct Timing: Codable, Sendable, Equatable {
        /// Wall-clock seconds for the whole slide.
        public var seconds: Double
        /// Extra: wall-clock seconds per stage (`open`, `tissue`, `tiles`, `embed`, `cluster`, `heads`, …).
        public var stages: [String: Double]?

        /// Makes a timing record.
        public init(seconds: Double, stages: [String: Double]? = nil) {
            self.seconds = seconds
            self.stages = stages
        }
    }

    /// Why a slide failed.
    public struct Failure: Codable, Sendable, Equatable {
        /// A stable code, e.g. `slide.unreadable`.
        public var code: String
        /// What happened and what to do, for a person.
        public var message: String

        /// Makes a failure record.
        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }

        /// The record of any error: its code and "subject: message — fix" (``ErrorSummary``).
        public init(_ error: any Error) {
            let summary = ErrorSummary(error)
            self.init(code: summary.code, message: summary.text)
        }
    }

    /// Extra: the tissue found by the mask.
    public struct Tissue: Codable, Sendable, Equatable {
        /// Tissue area in square millimetres.
        public var areaMM2: Double
        /// Tissue area as a fraction of the slide area (0…1).
        public var fraction: Double

        /// Makes a tissue record.
        public init(areaMM2: Double, fraction: Double) {
            self.areaMM2 = areaMM2
            self.fraction = fraction
        }

        enum CodingKeys: String, CodingKey {
            case fraction
            case areaMM2 = "area_mm2"
        }
    }

    /// Extra: the resolution tiles were read at (model spec §2).
    ///
    /// Two resolutions, named apart (`working_*` and `slide_*`): a 40x slide is scored from 20x pixels, so its report
    /// says 0.5 µm/px, 20x for the pixels the model saw and 0.25 µm/px, 40x for the slide itself.
    public struct Resolution: Codable, Sendable, Equatable {
        /// The OpenSlide level read.
        public var level: Int
        /// The working resolution: µm per pixel of the "20x" pixels the model saw (`working_mpp`).
        public var mpp: Double
        /// The working magnification, 10 / ``mpp`` (`working_magnification`).
        public var magnification: Double
        /// The slide's own level-0 µm per pixel (`slide_mpp`).
        public var slideMPP: Double?
        /// The slide's own level-0 magnification (`slide_magnification`).
        public var slideMagnification: Double?
        /// Where the slide's resolution came from: `openslide.mpp-x`, `tiff.XResolution`, `aperio.AppMag`, `assume_mpp`, …
        public var source: String
        /// How the working pixels were made from the slide's, in words (`level 1 (downsample 2) read as 20x`).
        public var plan: String?

        /// Makes a resolution record.
        public init(
            level: Int, mpp: Double, magnification: Double, source: String, slideMPP: Double? = nil,
            slideMagnification: Double? = nil, plan: String? = nil
        ) {
            self.level = level
            self.mpp = mpp
            self.magnification = magnification
            self.source = source
            self.slideMPP = slideMPP
            self.slideMagnification = slideMagnification
            self.plan = plan
        }

        enum CodingKeys: String, CodingKey {
            case level, source, plan
            case mpp = "working_mpp"
            case magnification = "working_magnification"
            case slideMPP = "slide_mpp"
            case slideMagnification = "slide_magnification"
        }
    }

    /// Extra: versions of the software that produced the report.
    public struct Versions: Codable, Sendable, Equatable {
        /// csmil's version.
        public var csmil: String?
        /// The OpenSlide library's version.
        public var openslide: String?
        /// The OpenBLAS library's version or configuration.
        public var openblas: String?

        /// Makes a versions record.
        public init(csmil: String? = nil, openslide: String? = nil, openblas: String? = nil) {
            self.csmil = csmil
            self.openslide = openslide
            self.openblas = openblas
        }
    }

    /// Extra: the slide's quality control (issue 16); absent when `[qc] enabled = false`.
    public struct QualityControl: Codable, Sendable, Equatable {
        /// `pass`, or `review` when ``reasons`` is not empty: every output says so before the score.
        public var status: String
        /// Why the slide needs review: `pen`, `blur`, `fold` (too much excluded), `too_few_tiles`, `resolution`.
        public var reasons: [String]
        /// Per check (`pen`, `blur`, `fold`), the share of the slide's tissue tiles it flagged (0…1).
        public var fractions: [String: Double]
        /// Tiles left out of clustering and bags (flagged by a check in `[qc] exclude`).
        public var excluded: Int
        /// Tiles scored: the tissue tiles minus the excluded ones.
        public var usable: Int
        /// The checks whose tiles are excluded (`[qc] exclude`).
        public var exclude: [String]
        /// The slide's median tile focus, the blur check's reference (mean squared Laplacian of 8-bit luma).
        public var focusReference: Double?
        /// The slide's median tissue optical density (summed over R, G, B), the fold check's reference.
        public var densityReference: Double?

        /// Makes a QC record.
        public init(
            status: String, reasons: [String], fractions: [String: Double], excluded: Int, usable: Int,
            exclude: [String], focusReference: Double? = nil, densityReference: Double? = nil
        ) {
            self.status = status
            self.reasons = reasons
            self.fractions = fractions
            self.excluded = excluded
            self.usable = usable
            self.exclude = exclude
            self.focusReference = focusReference
            self.densityReference = densityReference
        }

        /// Whether the slide needs review.
        public var needsReview: Bool { status == "review" }

        enum CodingKeys: String, CodingKey {
            case status, reasons, fractions, excluded, usable, exclude
            case focusReference = "focus_reference"
            case densityReference = "density_reference"
        }
    }

    /// Always `csmil.report/1` for reports this type writes.
    public var schema: String
    /// Stable for this slide version; equals the webhook's `webhook-id`.
    public var eventID: String
    /// What happened to the slide.
    public var status: Status
    /// The slide as it was read.
    public var slide: Slide
    /// The laboratory's identifiers read from the file name by `[identity] pattern`; nil (left out) when no pattern
    /// is configured, empty (`{}`) when the name did not match.
    public var identity: SlideIdentity?
    /// The model that scored (or would have scored) the slide.
    public var model: Model
    /// The score; nil (written as `null`) unless `status` is `scored`.
    public var result: Result?
    /// Tile counts.
    public var tiles: Tiles
    /// How long it took.
    public var timing: Timing
    /// Why it failed; present only when `status` is `failed`.
    public var error: Failure?
    /// Extra: tissue area.
    public var tissue: Tissue?
    /// Extra: the resolution read.
    public var resolution: Resolution?
    /// Extra: software versions.
    public var versions: Versions?
    /// Extra: names of the model spec's "Our choice" deviations from the reference used for this slide.
    public var deviations: [String]?
    /// Extra: quality control (issue 16); nil when QC is off.
    public var qc: QualityControl?

    /// Makes a report; `schema` is always ``currentSchema``.
    public init(
        eventID: String, status: Status, slide: Slide, model: Model, result: Result? = nil, tiles: Tiles,
        timing: Timing, error: Failure? = nil, tissue: Tissue? = nil, resolution: Resolution? = nil,
        versions: Versions? = nil, deviations: [String]? = nil, qc: QualityControl? = nil,
        identity: SlideIdentity? = nil
    ) {
        self.schema = Self.currentSchema
        self.identity = identity
        self.eventID = eventID
        self.status = status
        self.slide = slide
        self.model = model
        self.result = result
        self.tiles = tiles
        self.timing = timing
        self.error = error
        self.tissue = tissue
        self.resolution = resolution
        self.versions = versions
        self.deviations = deviations
        self.qc = qc
    }

    enum CodingKeys: String, CodingKey {
        case schema, status, slide, model, result, tiles, timing, error, tissue, resolution, versions, deviations, qc
        case identity
        case eventID = "event_id"
    }

    // `result` is written as null when absent (a spec field); `error` and the extras are left out when nil.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schema, forKey: .schema)
        try container.encode(eventID, forKey: .eventID)
        try container.encode(status, forKey: .status)
        try container.encode(slide, forKey: .slide)
        try container.encodeIfPresent(identity, forKey: .identity)
        try container.encode(model, forKey: .model)
        try container.encode(result, forKey: .result)
        try container.encode(tiles, forKey: .tiles)
        try container.encode(timing, forKey: .timing)
        try container.encodeIfPresent(error, forKey: .error)
        try container.encodeIfPresent(tissue, forKey: .tissue)
        try container.encodeIfPresent(resolution, forKey: .resolution)
        try container.encodeIfPresent(versions, forKey: .versions)
        try container.encodeIfPresent(deviations, forKey: .deviations)
        try container.encodeIfPresent(qc, forKey: .qc)
    }

    /// Problems that make the report contradict the spec (an `error` on a scored slide, a score without
    /// `scored`, …); empty when it is consistent.
    public var inconsistencies: [String] {
        var problems: [String] = []
        if schema != Self.currentSchema { problems.append("schema is \(schema), expected \(Self.currentSchema)") }
        if eventID.isEmpty { problems.append("event_id is empty") }
        switch status {
        case .scored:
            if result == nil { problems.append("status scored without a result") }
            if error != nil { problems.append("status scored with an error") }
        case .noTissue:
            if result != nil { problems.append("status no_tissue with a result") }
            if error != nil { problems.append("status no_tissue with an error") }
        case .failed:
            if result != nil { problems.append("status failed with a result") }
            if error == nil { problems.append("status failed without an error") }
        }
        return problems
    }

    /// The canonical bytes of `report.json`: pretty printed, keys sorted, slashes unescaped, a final newline.
    /// The same report always gives the same bytes.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// Reads a report from `report.json` bytes.
    public static func decode(from data: Data) throws -> SlideReport {
        try JSONDecoder().decode(SlideReport.self, from: data)
    }
}
