import Errors

/// A slide that could not be opened, read or measured: what happened, to which file, and what to do.
public struct SlideError: CSMILError, Sendable, Equatable {
    /// A stable reason; reports and the job store record it.
    public struct Code: ErrorCode, RawRepresentable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The file does not exist or cannot be read (permissions, not a regular file).
        public static let unreadable = Code(rawValue: "slide.unreadable")
        /// The file is empty or in no format OpenSlide recognises (for example a PNG renamed `.svs`).
        public static let notASlide = Code(rawValue: "slide.not_a_slide")
        /// OpenSlide recognised the format but failed (damaged or truncated file); the message is OpenSlide's.
        public static let openSlideError = Code(rawValue: "slide.openslide_error")
        /// The slide carries no usable resolution metadata and no `assume_mpp` was given.
        public static let noResolution = Code(rawValue: "slide.no_resolution")
        /// The slide (or a requested region) is too small or has an impossible size.
        public static let tooSmall = Code(rawValue: "slide.too_small")
        /// A caller asked for something the slide does not have (a level, an associated image, a region).
        public static let invalidRequest = Code(rawValue: "slide.invalid_request")
        /// The header declares an image larger than any glass slide (a damaged or hostile file, or wrong resolution
        /// metadata), or one that would need more memory than csmil allows itself for it: refused before anything is
        /// allocated for it.
        public static let implausibleSize = Code(rawValue: "slide.implausible_size")
        /// The caller asked to stop (the daemon is shutting down, `csmil score` got SIGTERM): not a failure of the
        /// slide; it is scored again later.
        public static let cancelled = Code(rawValue: "slide.cancelled")
    }

    /// Why it failed.
    public var code: Code
    /// The slide file.
    public var file: String
    /// What happened.
    public var message: String
    /// What the user can do about it.
    public var fix: String

    /// Makes an error; `file` is the slide's path as the user gave it.
    public init(code: Code, file: String, message: String, fix: String) {
        self.code = code
        self.file = file
        self.message = message
        self.fix = fix
    }

    public var subject: String { file }

    /// The work on `file` was stopped at `stage` because the caller asked (``Code/cancelled``).
    public static func cancelled(_ file: String, stage: String) -> SlideError {
        SlideError(
            code: .cancelled, file: file, message: "stopped during \(stage) before the slide was done",
            fix: "nothing: the slide is scored again at the next start")
    }
}
