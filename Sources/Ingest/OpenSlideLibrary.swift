import COpenSlide

/// Facts about the libopenslide this process loaded.
public enum OpenSlideLibrary {
    /// The library's version string (`openslide_get_version`), such as "3.4.1".
    public static var version: String {
        guard let version = openslide_get_version() else { return "unknown" }
        return String(cString: version)
    }
}
