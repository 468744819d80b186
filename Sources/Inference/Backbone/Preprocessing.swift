/// Spec §2: RGB u8 tiles (256, 512 or 1024 px square at 20x) → the normalised 256×256 float
/// image the backbones were trained on.
///
/// The reference resizes float tensors with torchvision `Resize([256])` (bilinear,
/// `align_corners=False`, no antialiasing). For a factor of 2 that is exactly the mean of each
/// 2×2 block; for a factor of 4 it is the mean of the central 2×2 pixels of each 4×4 block
/// (source pixels 4i+1 and 4i+2 in each axis). Both are computed here as integer sums of the
/// u8 values, then one float scale, so no rounding happens before normalisation.
public enum Preprocessing {
    /// ImageNet channel means and standard deviations (RGB), as the reference normalises.
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// The side of the network input.
    public static let outputSide = 256

    /// The input sides spec §2 defines: the 20x tile and its 10x and 5x contexts.
    public static let inputSides = [256, 512, 1024]

    /// Converts one interleaved RGB u8 image of `side`×`side` (256, 512 or 1024) into a
    /// normalised 256×256×3 float image (HWC) at `output`.
    public static func normalise(rgb: UnsafePointer<UInt8>, side: Int, into output: UnsafeMutablePointer<Float>) {
        precondition(inputSides.contains(side), "tile side \(side) is not 256, 512 or 1024")
        let n = outputSide
        let factor = side / n
        // (v/255 − mean) / std  =  v · scale + offset, with v the mean of the sampled pixels.
        let samples: Float = factor == 1 ? 1 : 4
        var scale = [Float](repeating: 0, count: 3)
        var offset = [Float](repeating: 0, count: 3)
        for c in 0..<3 {
            scale[c] = 1 / (255 * samples * std[c])
            offset[c] = -mean[c] / std[c]
        }
        // Which source rows/columns are summed: factor 1 → i; 2 → 2i, 2i+1; 4 → 4i+1, 4i+2.
        let first = factor == 4 ? 1 : 0
        for y in 0..<n {
            let row0 = rgb + ((y * factor + first) * side) * 3
            let row1 = factor == 1 ? row0 : row0 + side * 3
            let out = output + y * n * 3
            for x in 0..<n {
                let column = (x * factor + first) * 3
                for c in 0..<3 {
                    var sum = Int(row0[column + c])
                    if factor > 1 {
                        sum += Int(row0[column + 3 + c]) + Int(row1[column + c]) + Int(row1[column + 3 + c])
                    }
                    out[x * 3 + c] = Float(sum) * scale[c] + offset[c]
                }
            }
        }
    }
}
