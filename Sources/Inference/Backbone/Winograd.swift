import COpenBLAS

/// 3×3 stride-1 convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray 2016):
/// each 2×2 block of output comes from a 4×4 input tile through 16 element-wise products
/// instead of 36 multiplications, so the GEMM work of these layers drops 2.25×.
///
/// With V = Bᵀ d B (input tile d), U = G g Gᵀ (filter g) and Y = Aᵀ (U ⊙ V) A:
///
///     Bᵀ = | 1  0 -1  0 |    G = | 1    0    0  |    Aᵀ = | 1  1  1  0 |
///          | 0  1  1  0 |        | ½    ½    ½  |         | 0  1 -1 -1 |
///          | 0 -1  1  0 |        | ½   -½    ½  |
///          | 0  1  0 -1 |        | 0    0    1  |
///
/// All transform coefficients are 0, ±1 and ±½, so the transforms add no rounding beyond a
/// few float additions; measured against PyTorch the backbones stay within a few 1e-7 of the
/// largest feature (ResNetTests). For each of the 16 positions ξ of the tile the products over
/// channels are one GEMM: M[ξ] (tiles × Cout) = V[ξ] (tiles × Cin) · U[ξ] (Cout × Cin)ᵀ.
/// Activations are NHWC, so every transform runs over contiguous channel vectors.
enum Winograd {
    /// U[ξ][Cout][Cin] for a folded [Cout][3][3][Cin] filter.
    static func transformWeights(_ weights: [Float], outChannels: Int, inChannels: Int) -> [Float] {
        var transformed = [Float](repeating: 0, count: 16 * outChannels * inChannels)
        let plane = outChannels * inChannels
        for o in 0..<outChannels {
            for i in 0..<inChannels {
                var g = [[Double]](repeating: [0, 0, 0], count: 3)
                for y in 0..<3 {
                    for x in 0..<3 { g[y][x] = Double(weights[((o * 3 + y) * 3 + x) * inChannels + i]) }
                }
                // t = G g (4×3), then u = t Gᵀ (4×4).
                var t = [[Double]](repeating: [0, 0, 0], count: 4)
                for x in 0..<3 {
                    t[0][x] = g[0][x]
                    t[1][x] = 0.5 * (g[0][x] + g[1][x] + g[2][x])
                    t[2][x] = 0.5 * (g[0][x] - g[1][x] + g[2][x])
                    t[3][x] = g[2][x]
                }
                for y in 0..<4 {
                    let u = [
                        t[y][0], 0.5 * (t[y][0] + t[y][1] + t[y][2]), 0.5 * (t[y][0] - t[y][1] + t[y][2]), t[y][2],
                    ]
                    for x in 0..<4 { transformed[(y * 4 + x) * plane + o * inChannels + i] = Float(u[x]) }
                }
            }
        }
        return transformed
    }

    /// The floats of V and M scratch needed for `tiles` tiles of a layer.
    static func scratch(tiles: Int, inChannels: Int, outChannels: Int) -> Int {
        16 * tiles * (inChannels + outChannels)
    }

    /// Convolves an NHWC batch (`side`×`side`, padding 1) with transformed weights `u`, writing
    /// `bias` (+ `residual`) + convolution, then ReLU if asked, into `output` (same side).
    /// Tiles are processed in chunks that fit `scratch`. `zeros` holds at least `cin` zeros (the
    /// padding); `edges` at least 4 × `cout` floats (outputs of tiles that cross an odd edge).
    static func convolve(
        input: UnsafePointer<Float>, batch: Int, side: Int, inChannels cin: Int, outChannels cout: Int,
        u: UnsafePointer<Float>, bias: UnsafePointer<Float>, residual: UnsafePointer<Float>?, relu: Bool,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutableBufferPointer<Float>,
        zeros: UnsafePointer<Float>, edges: UnsafeMutablePointer<Float>, threads: Int
    ) {
        let tilesPerSide = (side + 1) / 2
        let tilesPerImage = tilesPerSide * tilesPerSide
        let totalTiles = batch * tilesPerImage
        let chunk = max(1, min(totalTiles, scratch.count / (16 * (cin + cout))))
        let v = scratch.baseAddress!
        let m = v + 16 * chunk * cin
        var first = 0
        while first < totalTiles {
            let count = min(chunk, totalTiles - first)
            Parallel.ranges(count, threads: threads) { range in
                for local in range {
                    transformInput(
                        tile: first + local, slot: local, chunk: chunk, input: input, side: side,
                        tilesPerSide: tilesPerSide, tilesPerImage: tilesPerImage, cin: cin, zeros: zeros, v: v)
                }
            }
            for xi in 0..<16 {
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(count), Int32(cout), Int32(cin), 1,
                    v + xi * chunk * cin, Int32(cin), u + xi * cout * cin, Int32(cin), 0, m + xi * chunk * cout,
                    Int32(cout))
            }
            Parallel.ranges(count, threads: threads) { range in
                for local in range {
                    transformOutput(
                        tile: first + local, slot: local, chunk: chunk, m: m, side: side, tilesPerSide: tilesPerSide,
                        tilesPerImage: tilesPerImage, cout: cout, bias: bias, residual: residual, relu: relu,
                        scratch: edges, output: output)
                }
            }
            first += count
        }
    }

    /// V[ξ][slot][c] = (Bᵀ d B)[ξ] for the 4×4 input tile at `tile`; pixels in the padding
    /// read from `zeros` (at least `cin` zero floats). Written with scalar locals per channel
    /// so the compiler vectorises across the contiguous channels.
    @inline(__always)
    private static func transformInput(
        tile: Int, slot: Int, chunk: Int, input: UnsafePointer<Float>, side: Int, tilesPerSide: Int,
        tilesPerImage: Int, cin: Int, zeros: UnsafePointer<Float>, v: UnsafeMutablePointer<Float>
    ) {
        let image = tile / tilesPerImage
        let y0 = ((tile % tilesPerImage) / tilesPerSide) * 2 - 1
        let x0 = (tile % tilesPerSide) * 2 - 1
        let base = input + image * side * side * cin
        func pixel(_ y: Int, _ x: Int) -> UnsafePointer<Float> {
            let iy = y0 + y
            let ix = x0 + x
            return iy >= 0 && iy < side && ix >= 0 && ix < side ? base + (iy * side + ix) * cin : zeros
        }
        let (p00, p01, p02, p03) = (pixel(0, 0), pixel(0, 1), pixel(0, 2), pixel(0, 3))
        let (p10, p11, p12, p13) = (pixel(1, 0), pixel(1, 1), pixel(1, 2), pixel(1, 3))
        let (p20, p21, p22, p23) = (pixel(2, 0), pixel(2, 1), pixel(2, 2), pixel(2, 3))
        let (p30, p31, p32, p33) = (pixel(3, 0), pixel(3, 1), pixel(3, 2), pixel(3, 3))
        let s = chunk * cin
        let o = v + slot * cin
        // Eight channels at a time as SIMD vectors, then the remainder one by one.
        var c = 0
        while c + 8 <= cin {
            func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
                UnsafeRawPointer(p + c).loadUnaligned(as: SIMD8<Float>.self)
            }
            func store(_ plane: Int, _ value: SIMD8<Float>) {
                UnsafeMutableRawPointer(o + plane * s + c).storeBytes(of: value, as: SIMD8<Float>.self)
            }
            let d10 = load(p10), d11 = load(p11), d12 = load(p12), d13 = load(p13)
            let d20 = load(p20), d21 = load(p21), d22 = load(p22), d23 = load(p23)
            // t = Bᵀ d: combine rows.
            let t00 = load(p00) - d20, t01 = load(p01) - d21, t02 = load(p02) - d22, t03 = load(p03) - d23
            let t10 = d10 + d20, t11 = d11 + d21, t12 = d12 + d22, t13 = d13 + d23
            let t20 = d20 - d10, t21 = d21 - d11, t22 = d22 - d12, t23 = d23 - d13
            let t30 = d10 - load(p30), t31 = d11 - load(p31), t32 = d12 - load(p32), t33 = d13 - load(p33)
            // V = t B: combine columns.
            store(0, t00 - t02)
            store(1, t01 + t02)
            store(2, t02 - t01)
            store(3, t01 - t03)
            store(4, t10 - t12)
            store(5, t11 + t12)
            store(6, t12 - t11)
            store(7, t11 - t13)
            store(8, t20 - t22)
            store(9, t21 + t22)
            store(10, t22 - t21)
            store(11, t21 - t23)
            store(12, t30 - t32)
            store(13, t31 + t32)
            store(14, t32 - t31)
            store(15, t31 - t33)
            c += 8
        }
        while c < cin {
            let t00 = p00[c] - p20[c], t01 = p01[c] - p21[c], t02 = p02[c] - p22[c], t03 = p03[c] - p23[c]
            let t10 = p10[c] + p20[c], t11 = p11[c] + p21[c], t12 = p12[c] + p22[c], t13 = p13[c] + p23[c]
            let t20 = p20[c] - p10[c], t21 = p21[c] - p11[c], t22 = p22[c] - p12[c], t23 = p23[c] - p13[c]
            let t30 = p10[c] - p30[c], t31 = p11[c] - p31[c], t32 = p12[c] - p32[c], t33 = p13[c] - p33[c]
            o[c] = t00 - t02
            o[s + c] = t01 + t02
            o[2 * s + c] = t02 - t01
            o[3 * s + c] = t01 - t03
            o[4 * s + c] = t10 - t12
            o[5 * s + c] = t11 + t12
            o[6 * s + c] = t12 - t11
            o[7 * s + c] = t11 - t13
            o[8 * s + c] = t20 - t22
            o[9 * s + c] = t21 + t22
            o[10 * s + c] = t22 - t21
            o[11 * s + c] = t21 - t23
            o[12 * s + c] = t30 - t32
            o[13 * s + c] = t31 + t32
            o[14 * s + c] = t32 - t31
            o[15 * s + c] = t31 - t33
            c += 1
        }
    }

    /// Y = Aᵀ M A for one tile, plus bias and residual, ReLU, into its 2×2 output block
    /// (positions past the edge of an odd-sized image are dropped).
    @inline(__always)
    private static func transformOutput(
        tile: Int, slot: Int, chunk: Int, m: UnsafePointer<Float>, side: Int, tilesPerSide: Int,
        tilesPerImage: Int, cout: Int, bias: UnsafePointer<Float>, residual: UnsafePointer<Float>?, relu: Bool,
        scratch: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        let image = tile / tilesPerImage
        let y0 = ((tile % tilesPerImage) / tilesPerSide) * 2
        let x0 = (tile % tilesPerSide) * 2
        let s = chunk * cout
        let q = m + slot * cout
        let o00 = ((image * side + y0) * side + x0) * cout
        let o01 = o00 + cout
        let o10 = o00 + side * cout
        let o11 = o10 + cout
        let complete = y0 + 1 < side && x0 + 1 < side
        // Complete tiles are written in place; tiles crossing an odd edge go through `scratch`.
        let d00 = complete ? output + o00 : scratch
        let d01 = complete ? output + o01 : scratch + cout
        let d10 = complete ? output + o10 : scratch + 2 * cout
        let d11 = complete ? output + o11 : scratch + 3 * cout
        let floor: Float = relu ? 0 : -.infinity
        let addResidual = complete && residual != nil
        let r = residual ?? UnsafePointer(scratch)
        @inline(__always) func row(_ plane: Int, _ c: Int) -> SIMD8<Float> {
            UnsafeRawPointer(q + plane * s + c).loadUnaligned(as: SIMD8<Float>.self)
        }
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
            UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
        }
        @inline(__always) func store(_ p: UnsafeMutablePointer<Float>, _ value: SIMD8<Float>) {
            UnsafeMutableRawPointer(p).storeBytes(of: value, as: SIMD8<Float>.self)
        }
        let lower = SIMD8<Float>(repeating: complete ? floor : -.infinity)
        var c = 0
        while c + 8 <= cout {
            // Aᵀ M: rows 0+1+2 and 1−2−3.
            let a0 = row(0, c) + row(4, c) + row(8, c)
            let a1 = row(1, c) + row(5, c) + row(9, c)
            let a2 = row(2, c) + row(6, c) + row(10, c)
            let a3 = row(3, c) + row(7, c) + row(11, c)
            let b0 = row(4, c) - row(8, c) - row(12, c)
            let b1 = row(5, c) - row(9, c) - row(13, c)
            let b2 = row(6, c) - row(10, c) - row(14, c)
            let b3 = row(7, c) - row(11, c) - row(15, c)
            // (·) A: columns 0+1+2 and 1−2−3, plus bias and residual, then ReLU.
            let beta = load(bias + c)
            var y00 = a0 + a1 + a2 + beta
            var y01 = a1 - a2 - a3 + beta
            var y10 = b0 + b1 + b2 + beta
            var y11 = b1 - b2 - b3 + beta
            if addResidual {
                y00 += load(r + o00 + c)
                y01 += load(r + o01 + c)
                y10 += load(r + o10 + c)
                y11 += load(r + o11 + c)
            }
            store(d00 + c, pointwiseMax(y00, lower))
            store(d01 + c, pointwiseMax(y01, lower))
            store(d10 + c, pointwiseMax(y10, lower))
            store(d11 + c, pointwiseMax(y11, lower))
            c += 8
        }
        while c < cout {
            let a0 = q[c] + q[4 * s + c] + q[8 * s + c]
            let a1 = q[s + c] + q[5 * s + c] + q[9 * s + c]
            let a2 = q[2 * s + c] + q[6 * s + c] + q[10 * s + c]
            let a3 = q[3 * s + c] + q[7 * s + c] + q[11 * s + c]
            let b0 = q[4 * s + c] - q[8 * s + c] - q[12 * s + c]
            let b1 = q[5 * s + c] - q[9 * s + c] - q[13 * s + c]
            let b2 = q[6 * s + c] - q[10 * s + c] - q[14 * s + c]
            let b3 = q[7 * s + c] - q[11 * s + c] - q[15 * s + c]
            var y00 = a0 + a1 + a2 + bias[c]
            var y01 = a1 - a2 - a3 + bias[c]
            var y10 = b0 + b1 + b2 + bias[c]
            var y11 = b1 - b2 - b3 + bias[c]
            if addResidual {
                y00 += r[o00 + c]
                y01 += r[o01 + c]
                y10 += r[o10 + c]
                y11 += r[o11 + c]
            }
            d00[c] = complete ? max(y00, floor) : y00
            d01[c] = complete ? max(y01, floor) : y01
            d10[c] = complete ? max(y10, floor) : y10
            d11[c] = complete ? max(y11, floor) : y11
            c += 1
        }
        guard !complete else { return }
        for (index, (dy, dx)) in [(0, 0), (0, 1), (1, 0), (1, 1)].enumerated() where y0 + dy < side && x0 + dx < side {
            let offset = o00 + (dy * side + dx) * cout
            let source = scratch + index * cout
            for c in 0..<cout { output[offset + c] = max(source[c] + (residual?[offset + c] ?? 0), floor) }
        }
    }
}
