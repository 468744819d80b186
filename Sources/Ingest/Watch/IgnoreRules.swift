import Glibc

/// The `[watch] ignore` patterns: which names under the watched folder are never slides.
struct IgnoreRules: Sendable, Equatable {
    /// Patterns without `/`, matched against every name of a path below the root.
    private var namePatterns: [String] = []
    /// Patterns with `/`, matched against the whole path relative to the root (`FNM_PATHNAME`).
    private var pathPatterns: [String] = []

    init(_ patterns: [String]) {
        for pattern in patterns {
            if pattern.contains("/") {
                pathPatterns.append(pattern.hasPrefix("/") ? String(pattern.dropFirst()) : pattern)
            } else {
                namePatterns.append(pattern)
            }
        }
    }

    /// Whether `relativePath` (below the watched folder, no leading `/`) or a folder above it is ignored.
    func ignores(relativePath: String) -> Bool {
        if pathPatterns.contains(where: { fnmatch($0, relativePath, FNM_PATHNAME) == 0 }) { return true }
        guard !namePatterns.isEmpty else { return false }
        return relativePath.split(separator: "/").contains { name in
            let name = String(name)
            return namePatterns.contains { fnmatch($0, name, 0) == 0 }
        }
    }
}
