import COpenBLAS

/// 3×3 stride-1 convolutions by Winograd's minimal filtering F(4×4, 3×3) (Lavin & Gray 2016):
/// each 4×4 block of output comes from a 6×6 input tile through 36 element-wise products
/// instead of 144 multiplications, so the GEMM work of these layers drops 4×.
///
/// With V = Bᵀ d B (input tile d), U = G g Gᵀ (filter g) and Y = Aᵀ (U ⊙ V) A, on the
/// interpolation points 0, ±1, ±2, ∞:
///
///     Bᵀ = | 4  0 -5  0  1  0 |   G = |  1/4     0     0  |   Aᵀ = | 1  1  1  1  1  0 |
///          | 0 -4 -4  1  1  0 |       | -1/6  -1/6  -1/6  |        | 0  1 -1  2 -2  0 |
///          | 0  4 -4 -1  1  0 |       | -1/6   1/6  -1/6  |        | 0  1  1  4  4  0 |
///          | 0 -2 -1  2  1  0 |       | 1/24  1/12   1/6  |        | 0  1 -1  8 -8  1 |
///          | 0  2 -1 -2  1  0 |       | 1/24 -1/12   1/6  |
///          | 0  4  0 -5  0  1 |       |    0     0     1  |
///
/// The filter transform is done once at load in double precision. The larger coefficients cost
/// accuracy compared with a direct convolution; measured against PyTorch on whole ResNets the
/// features stay within a few 1e-6 of the largest (ResNetTests, bound 1e-4). For each of the
/// 36 positions ξ of the tile the products over channels are one GEMM:
/// M[ξ] (tiles × Cout) = V[ξ] (tiles × Cin) · U[ξ] (Cout × Cin)ᵀ. Activations are NHWC, so the
/// transforms run over contiguous channel vectors, eight channels per SIMD vector.
enum Winograd {
    /// Input tile side, output block side, and positions per tile.
    static let tileSide = 6
    static let block = 4
    static let positions = 36

    /// U[ξ][Cout][Cin] for a folded [Cout][3][3][Cin] filter.
    static func transformWeights(_ weights: [Float], outChannels: Int, inChannels: Int) -> [Float] {
        let g: [[Double]] = [
            [1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
            [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1],
        ]
        var transformed = [Float](repeating: 0, count: positions * outChannels * inChannels)
        let plane = outChannels * inChannels
        for o in 0..<outChannels {
            for i in 0..<inChannels {
                var filter = [[Double]](repeating: [0, 0, 0], count: 3)
                for y in 0..<3 {
                    for x in 0..<3 { filter[y][x] = Double(weights[((o * 3 + y) * 3 + x) * inChannels + i]) }
                }
                for a in 0..<6 {
                    for b in 0..<6 {
                        var sum = 0.0
                        for y in 0..<3 {
                            for x in 0..<3 { sum += g[a][y] * filter[y][x] * g[b][x] }
                        }
                        transformed[(a * 6 + b) * plane + o * inChannels + i] = Float(sum)
                    }
                }
            }
        }
        return transformed
    }

    /// The floats of V and M scratch one tile needs.
    static func scratchPerTile(inChannels: Int, outChannels: Int) -> Int {
        positions * (inChannels + outChannels)
    }

    /// The number of tiles covering a `side`×`side` image.
    static func tiles(side: Int) -> Int {
        let perSide = (side + block - 1) / block
        return perSide * perSide
    }

    /// The tiles one chunk of `totalTiles` holds when V and M of a chunk must fit `scratchFloats` floats.
    static func chunk(totalTiles: Int, inChannels: Int, outChannels: Int, scratchFloats: Int) -> Int {
        max(1, min(totalTiles, scratchFloats / scratchPerTile(inChannels: inChannels, outChannels: outChannels)))
    }

    /// Convolves an NHWC batch (`side`×`side`, padding 1) with transformed weights `u`, writing
    /// `bias` (+ `residual`) + convolution, then ReLU if asked, into `output` (same side).
    /// Tiles are processed in chunks that fit `scratch`. `zeros` holds at least `cin` zeros (the
    /// padding); `edges` at least 16 × `cout` floats (outputs of tiles that cross the edge).
    /// The 36 products of a chunk are OpenBLAS sgemm calls.
    static func convolve(
        input: UnsafePointer<Float>, batch: Int, side: Int, inChannels cin: Int, outChannels cout: Int,
        u: UnsafePointer<Float>, bias: UnsafePointer<Float>, residual: UnsafePointer<Float>?, relu: Bool,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutableBufferPointer<Float>,
        zeros: UnsafePointer<Float>, edges: UnsafeMutablePointer<Float>, threads: Int
    ) {
        convolve(
            input: input, batch: batch, side: side, inChannels: cin, outChannels: cout, bias: bias,
            residual: residual, relu: relu, output: output, scratch: scratch, zeros: zeros, edges: edges,
            threads: threads
        ) { rows, v, m in
            for xi in 0..<positions {
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(cout), Int32(cin), 1,
                    v + xi * rows * cin, Int32(cin), u + xi * cout * cin, Int32(cin), 0, m + xi * rows * cout,
                    Int32(cout))
            }
        }
    }

    /// The same with the products left to `multiply(rows, V, M)`: for each position ξ, M[ξ] (`rows` × Cout) =
    /// V[ξ] (`rows` × Cin) · U[ξ], both row-major and packed (V[ξ] starts at ξ · rows · Cin, M[ξ] at
    /// ξ · rows · Cout). `rows` is `chunk(…)` of the batch's tiles, or fewer for the last chunk; V lies at the
    /// start of `scratch`, M at 36 · chunk · Cin floats into it.
    static func convolve(
        input: UnsafePointer<Float>, batch: Int, side: Int, inChannels cin: Int, outChannels cout: Int,
        bias: UnsafePointer<Float>, residual: UnsafePointer<Float>?, relu: Bool,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutableBufferPointer<Float>,
        zeros: UnsafePointer<Float>, edges: UnsafeMutablePointer<Float>, threads: Int,
        multiply: (_ rows: Int, _ v: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>) -> Void
    ) {
        let tilesPerSide = (side + block - 1) / block
        let tilesPerImage = tilesPerSide * tilesPerSide
        let totalTiles = batch * tilesPerImage
        let chunk = Self.chunk(totalTiles: totalTiles, inChannels: cin, outChannels: cout, scratchFloats: scratch.count)
        let v = scratch.baseAddress!
        let m = v + positions * chunk * cin
        var first = 0
        while first < totalTiles {
            let count = min(chunk, totalTiles - first)
            let geometry = Geometry(side: side, tilesPerSide: tilesPerSide, tilesPerImage: tilesPerImage, chunk: count)
            Parallel.ranges(count, threads: threads) { range in
                for local in range {
                    transformInput(
                        tile: first + local, slot: local, geometry, input: input, cin: cin, zeros: zeros, v: v)
                }
            }
            multiply(count, UnsafePointer(v), m)
            Parallel.ranges(count, threads: threads) { range in
                for local in range {
                    transformOutput(
                        tile: first + local, slot: local, geometry, m: m, cout: cout, bias: bias, residual: residual,
                        relu: relu, edges: edges, output: output)
                }
            }
            first += count
        }
    }

    /// Where tiles lie in the batch and in the scratch matrices.
    struct Geometry {
        var side: Int
        var tilesPerSide: Int
        var tilesPerImage: Int
        /// The tiles of this chunk: the rows of V[ξ] and M[ξ].
        var chunk: Int

        /// The image of `tile` and the top-left corner of its output block.
        func origin(_ tile: Int) -> (image: Int, y: Int, x: Int) {
            let within = tile % tilesPerImage
            return (tile / tilesPerImage, (within / tilesPerSide) * block, (within % tilesPerSide) * block)
        }
    }

    /// The 1-D input transform Bᵀ x of six vectors.
    @inline(__always)
    private static func inputRows(
        _ x0: SIMD8<Float>, _ x1: SIMD8<Float>, _ x2: SIMD8<Float>, _ x3: SIMD8<Float>, _ x4: SIMD8<Float>,
        _ x5: SIMD8<Float>
    ) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let four: SIMD8<Float> = .init(repeating: 4)
        let five: SIMD8<Float> = .init(repeating: 5)
        let two: SIMD8<Float> = .init(repeating: 2)
        let a = x4 - x2 * four  // shared by r1, r2
        let b = x3 - x1 * four
        let c = x4 - x2  // shared by r3, r4
        let d = (x3 - x1) * two
        return (
            x0 * four - x2 * five + x4, a + b, a - b, c + d, c - d, x1 * four - x3 * five + x5
        )
    }

    /// V[ξ][slot][c] = (Bᵀ d B)[ξ] for the 6×6 input tile of `tile`; pixels in the padding read
    /// from `zeros`.
    @inline(__always)
    private static func transformInput(
        tile: Int, slot: Int, _ geometry: Geometry, input: UnsafePointer<Float>, cin: Int,
        zeros: UnsafePointer<Float>, v: UnsafeMutablePointer<Float>
    ) {
        let side = geometry.side
        let (image, oy, ox) = geometry.origin(tile)
        let base = input + image * side * side * cin
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: positions) { pixels in
            pixels.initialize(repeating: zeros)
            for y in 0..<tileSide {
                let iy = oy - 1 + y
                guard iy >= 0 && iy < side else { continue }
                for x in 0..<tileSide {
                    let ix = ox - 1 + x
                    if ix >= 0 && ix < side { pixels[y * tileSide + x] = base + (iy * side + ix) * cin }
                }
            }
            let stride = geometry.chunk * cin
            let out = v + slot * cin
            let p = UnsafeBufferPointer(pixels)
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: positions) { t in
                var c = 0
                while c + 8 <= cin {
                    func load(_ index: Int) -> SIMD8<Float> {
                        UnsafeRawPointer(p[index] + c).loadUnaligned(as: SIMD8<Float>.self)
                    }
                    // t = Bᵀ d, column by column.
                    for x in 0..<6 {
                        let r = inputRows(load(x), load(6 + x), load(12 + x), load(18 + x), load(24 + x), load(30 + x))
                        t[x] = r.0
                        t[6 + x] = r.1
                        t[12 + x] = r.2
                        t[18 + x] = r.3
                        t[24 + x] = r.4
                        t[30 + x] = r.5
                    }
                    // V = t B, row by row.
                    for y in 0..<6 {
                        let r = inputRows(
                            t[y * 6], t[y * 6 + 1], t[y * 6 + 2], t[y * 6 + 3], t[y * 6 + 4], t[y * 6 + 5])
                        let destination = out + (y * 6) * stride + c
                        UnsafeMutableRawPointer(destination).storeBytes(of: r.0, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(destination + stride).storeBytes(of: r.1, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(destination + 2 * stride).storeBytes(of: r.2, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(destination + 3 * stride).storeBytes(of: r.3, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(destination + 4 * stride).storeBytes(of: r.4, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(destination + 5 * stride).storeBytes(of: r.5, as: SIMD8<Float>.self)
                    }
                    c += 8
                }
                // Fewer than eight channels left: the same on one lane.
                while c < cin {
                    var d = [Float](repeating: 0, count: positions)
                    for index in 0..<positions { d[index] = p[index][c] }
                    func lanes(_ i: Int) -> SIMD8<Float> { SIMD8(repeating: d[i]) }
                    for x in 0..<6 {
                        let r = inputRows(
                            lanes(x), lanes(6 + x), lanes(12 + x), lanes(18 + x), lanes(24 + x), lanes(30 + x))
                        (t[x], t[6 + x], t[12 + x], t[18 + x], t[24 + x], t[30 + x]) = r
                    }
                    for y in 0..<6 {
                        let r = inputRows(
                            t[y * 6], t[y * 6 + 1], t[y * 6 + 2], t[y * 6 + 3], t[y * 6 + 4], t[y * 6 + 5])
                        for (x, value) in [r.0, r.1, r.2, r.3, r.4, r.5].enumerated() {
                            out[(y * 6 + x) * stride + c] = value[0]
                        }
                    }
                    c += 1
                }
            }
        }
    }

    /// The 1-D output transform Aᵀ x of six vectors.
    @inline(__always)
    private static func outputRows(
        _ x0: SIMD8<Float>, _ x1: SIMD8<Float>, _ x2: SIMD8<Float>, _ x3: SIMD8<Float>, _ x4: SIMD8<Float>,
        _ x5: SIMD8<Float>
    ) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let a = x1 + x2
        let b = x1 - x2
        let c = x3 + x4
        let d = x3 - x4
        let two: SIMD8<Float> = .init(repeating: 2)
        let four: SIMD8<Float> = .init(repeating: 4)
        let eight: SIMD8<Float> = .init(repeating: 8)
        return (x0 + a + c, b + d * two, a + c * four, b + d * eight + x5)
    }

    /// Y = Aᵀ M A for one tile, plus bias and residual, ReLU, into its 4×4 output block
    /// (positions past the edge of the image are dropped).
    @inline(__always)
    private static func transformOutput(
        tile: Int, slot: Int, _ geometry: Geometry, m: UnsafePointer<Float>, cout: Int, bias: UnsafePointer<Float>,
        residual: UnsafePointer<Float>?, relu: Bool, edges: UnsafeMutablePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        let side = geometry.side
        let (image, oy, ox) = geometry.origin(tile)
        let stride = geometry.chunk * cout
        let q = m + slot * cout
        let complete = oy + block <= side && ox + block <= side
        let corner = ((image * side + oy) * side + ox) * cout
        // A complete tile writes straight into the image; one crossing the edge into `edges`.
        @inline(__always) func destination(_ y: Int, _ x: Int) -> Int {
            complete ? corner + (y * side + x) * cout : (y * block + x) * cout
        }
        let target = complete ? output : edges
        let floor = SIMD8<Float>(repeating: relu ? 0 : -.infinity)
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 24) { s in
            @inline(__always) func put(_ y: Int, _ x: Int, _ c: Int, _ value: SIMD8<Float>) {
                let at = destination(y, x) + c
                var result = value
                if complete {
                    if let residual { result += UnsafeRawPointer(residual + at).loadUnaligned(as: SIMD8<Float>.self) }
                    // Not `pointwiseMax`: the standard library's is an unspecialised call per vector here (2 % of
                    // a ResNet-50's time in a profile); a compare and select inlines.
                    result.replace(with: floor, where: result .< floor)
                }
                UnsafeMutableRawPointer(target + at).storeBytes(of: result, as: SIMD8<Float>.self)
            }
            var c = 0
            while c + 8 <= cout {
                func load(_ index: Int) -> SIMD8<Float> {
                    UnsafeRawPointer(q + index * stride + c).loadUnaligned(as: SIMD8<Float>.self)
                }
                // s = Aᵀ M, column by column (4×6).
                for x in 0..<6 {
                    let r = outputRows(load(x), load(6 + x), load(12 + x), load(18 + x), load(24 + x), load(30 + x))
                    s[x] = r.0
                    s[6 + x] = r.1
                    s[12 + x] = r.2
                    s[18 + x] = r.3
                }
                let beta = UnsafeRawPointer(bias + c).loadUnaligned(as: SIMD8<Float>.self)
                // Y = s A, row by row, plus bias, residual and ReLU.
                for y in 0..<4 {
                    let r = outputRows(s[y * 6], s[y * 6 + 1], s[y * 6 + 2], s[y * 6 + 3], s[y * 6 + 4], s[y * 6 + 5])
                    put(y, 0, c, r.0 + beta)
                    put(y, 1, c, r.1 + beta)
                    put(y, 2, c, r.2 + beta)
                    put(y, 3, c, r.3 + beta)
                }
                c += 8
            }
            while c < cout {
                func lanes(_ index: Int) -> SIMD8<Float> { SIMD8(repeating: q[index * stride + c]) }
                for x in 0..<6 {
                    let r = outputRows(
                        lanes(x), lanes(6 + x), lanes(12 + x), lanes(18 + x), lanes(24 + x), lanes(30 + x))
                    (s[x], s[6 + x], s[12 + x], s[18 + x]) = r
                }
                for y in 0..<4 {
                    let r = outputRows(s[y * 6], s[y * 6 + 1], s[y * 6 + 2], s[y * 6 + 3], s[y * 6 + 4], s[y * 6 + 5])
                    for (x, value) in [r.0, r.1, r.2, r.3].enumerated() {
                        let at = destination(y, x) + c
                        var result = value[0] + bias[c]
                        if complete {
                            result += residual?[at] ?? 0
                            result = max(result, relu ? 0 : -.infinity)
                        }
                        target[at] = result
                    }
                }
                c += 1
            }
        }
        guard !complete else { return }
        for y in 0..<block where oy + y < side {
            for x in 0..<block where ox + x < side {
                let at = corner + (y * side + x) * cout
                let source = edges + (y * block + x) * cout
                for c in 0..<cout {
                    let value = source[c] + (residual?[at + c] ?? 0)
                    output[at + c] = relu ? max(value, 0) : value
                }
            }
        }
    }
}
