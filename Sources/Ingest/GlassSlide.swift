import Foundation

/// What a glass slide can hold: the bound a slide's declared size is checked against before anything is allocated
/// for it.
///
/// A slide's header says how many pixels level 0 has, and its resolution metadata how wide a pixel is; a header
/// can say anything (a damaged file, a hostile one: a few megabytes declaring 10⁶ × 10⁶ pixels). Every allocation
/// csmil makes for a slide (the tissue mask, the tile grid, the spill file) grows with the declared area, so the
/// declared physical size is checked against the largest glass slide first and refused with
/// ``SlideError/Code/implausibleSize`` when it cannot be one.
public enum GlassSlide {
    /// The longer side of the largest glass slide, millimetres: whole-mount slides are 5 × 4 inches (127 × 102 mm);
    /// standard slides are 75 × 25 mm, large-format ones 75 × 50 mm. A few millimetres of margin on top.
    public static let longerSideMillimetres = 130.0
    /// The shorter side of the largest glass slide, millimetres (see ``longerSideMillimetres``).
    public static let shorterSideMillimetres = 105.0

    /// Throws `slide.implausible_size` when level 0, `width × height` pixels of `mpp` µm, is larger than a glass
    /// slide; `source` names where the resolution came from (for the message).
    public static func checkSize(
        width: Int, height: Int, mpp: Double, source: String, file: String
    ) throws(SlideError) {
        let longer = Double(max(width, height)) * mpp / 1000
        let shorter = Double(min(width, height)) * mpp / 1000
        guard longer > longerSideMillimetres || shorter > shorterSideMillimetres else { return }
        throw SlideError(
            code: .implausibleSize, file: file,
            message: "declares \(width) × \(height) pixels of \(format(mpp)) µm (from \(source)), that is "
                + "\(format(Double(width) * mpp / 1000)) × \(format(Double(height) * mpp / 1000)) mm; a glass slide "
                + "holds at most \(format(longerSideMillimetres)) × \(format(shorterSideMillimetres)) mm",
            fix: "the file's header or its resolution metadata is wrong (a damaged or hostile file): re-export the "
                + "slide from the scanner software")
    }

    private static func format(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}
