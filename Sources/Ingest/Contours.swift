/// The contour filtering of the tissue recipe (model spec §3), done with connected components.
///
/// The reference runs OpenCV's `findContours(RETR_CCOMP)` on the thresholded mask, keeps outer
/// contours whose area minus their holes' area exceeds a threshold, keeps each one's largest holes
/// above a second threshold, fills the kept contours and punches the kept holes. Suzuki's border
/// following, which OpenCV implements, traces borders of 8-connected foreground components and of
/// 4-connected background components, so the same structure can be had from labelling:
///
/// - an outer contour ↔ a foreground component (8-connectivity);
/// - a hole contour ↔ a background component (4-connectivity) that does not touch the image border;
///   its parent is the foreground component holding the pixel just above the hole's first pixel
///   in raster order (that pixel lies above every hole pixel, so it cannot be inside the hole);
/// - the area a contour encloses ↔ the component's pixels plus everything inside its holes (for a
///   hole: its pixels plus the components inside it, recursively). Hence "outer area minus holes'
///   area" is exactly the component's own pixel count.
///
/// Areas are pixel counts where OpenCV measures the polygon through the border pixels' centres
/// (smaller by about half the perimeter); at the thresholds used (a few pixels) this only matters
/// for specks. A foreground island inside a punched hole is kept if it passes the area test
/// itself, as a separate outer contour drawn after the holes are punched would be.
enum Contours {
    /// Filters a 0/1 mask (`width × height`, row-major): keeps foreground components with more than
    /// `minimumArea` pixels, fills them, and re-opens at most `maximumHoles` of each one's holes
    /// (largest first) enclosing more than `minimumHoleArea` pixels. Returns a 0/1 mask.
    static func filter(
        _ mask: [UInt8], width: Int, height: Int, minimumArea: Double, minimumHoleArea: Double, maximumHoles: Int
    ) -> [UInt8] {
        var output = mask
        filter(
            &output, width: width, height: height, minimumArea: minimumArea, minimumHoleArea: minimumHoleArea,
            maximumHoles: maximumHoles)
        return output
    }

    /// The same, overwriting `mask` with the result (no second mask-sized array).
    static func filter(
        _ mask: inout [UInt8], width: Int, height: Int, minimumArea: Double, minimumHoleArea: Double,
        maximumHoles: Int
    ) {
        precondition(mask.count == width * height)
        let components = label(mask, width: width, height: height)
        let count = components.nodes.count
        let nodes = components.nodes

        // Enclosed ("filled") area, children before parents: a parent's seed precedes its children's.
        var filled = nodes.map { $0.pixels }
        for id in stride(from: count - 1, through: 0, by: -1) {
            if let parent = nodes[id].parent { filled[parent] += filled[id] }
        }

        // Holes kept per foreground component: the largest `maximumHoles` above the threshold.
        var holes: [Int: [Int]] = [:]
        for id in 0..<count where !nodes[id].foreground {
            if let parent = nodes[id].parent { holes[parent, default: []].append(id) }
        }
        var keptHole = [Bool](repeating: false, count: count)
        for (_, list) in holes {
            let largest = list.sorted { filled[$0] != filled[$1] ? filled[$0] > filled[$1] : $0 < $1 }
            for hole in largest.prefix(max(maximumHoles, 0)) where Double(filled[hole]) > minimumHoleArea {
                keptHole[hole] = true
            }
        }

        // Tissue per node, parents before children (see `Node.parent` for the tree).
        var tissue = [Bool](repeating: false, count: count)
        for id in 0..<count {
            let node = nodes[id]
            if node.foreground {
                let kept = Double(node.pixels) > minimumArea
                tissue[id] = kept || node.parent.map { tissue[$0] } == true
            } else if let owner = node.parent {
                let ownerKept = Double(nodes[owner].pixels) > minimumArea
                let inherited = nodes[owner].parent.map { tissue[$0] } == true
                tissue[id] = (ownerKept && !keptHole[id]) || inherited
            }
        }

        for index in 0..<mask.count { mask[index] = tissue[Int(components.labels[index])] ? 1 : 0 }
    }

    /// A connected component of foreground or background.
    struct Node {
        var foreground: Bool
        var pixels: Int
        /// For a foreground component: the hole it sits in (nil: the outside background). For a
        /// hole: the foreground component around it. Nil for background touching the border.
        var parent: Int?
    }

    /// Labels every pixel with its component, numbered in raster order of their first pixels.
    static func label(_ mask: [UInt8], width: Int, height: Int) -> (labels: [Int32], nodes: [Node]) {
        var labels = [Int32](repeating: -1, count: mask.count)
        var nodes: [Node] = []
        var stack: [Int32] = []
        var touchesBorder: [Bool] = []
        for seed in 0..<mask.count where labels[seed] < 0 {
            let id = Int32(nodes.count)
            let foreground = mask[seed] != 0
            var pixels = 0
            var border = false
            labels[seed] = id
            stack.append(Int32(seed))
            while let top = stack.popLast() {
                let index = Int(top)
                pixels += 1
                let x = index % width
                let y = index / width
                if x == 0 || y == 0 || x == width - 1 || y == height - 1 { border = true }
                for dy in -1...1 {
                    let ny = y + dy
                    guard ny >= 0, ny < height else { continue }
                    for dx in -1...1 where dx != 0 || dy != 0 {
                        // Foreground: 8-connected; background: 4-connected.
                        if !foreground && dx != 0 && dy != 0 { continue }
                        let nx = x + dx
                        guard nx >= 0, nx < width else { continue }
                        let neighbour = ny * width + nx
                        if labels[neighbour] < 0 && (mask[neighbour] != 0) == foreground {
                            labels[neighbour] = id
                            stack.append(Int32(neighbour))
                        }
                    }
                }
            }
            // The pixel above the seed (the component's first pixel) is of the other kind, and
            // already labelled: it is the enclosing component.
            var parent: Int?
            if seed >= width {
                let above = Int(labels[seed - width])
                parent = nodes[above].foreground || !touchesBorder[above] ? above : nil
            }
            if !foreground && border { parent = nil }
            nodes.append(Node(foreground: foreground, pixels: pixels, parent: parent))
            touchesBorder.append(border)
        }
        return (labels, nodes)
    }
}
