import Ingest

extension Configuration {
    /// The keys of `[qc]`.
    static let qcKeys = [
        "enabled", "exclude", "review_fraction", "min_tiles", "pen_fraction", "blur_relative", "blur_floor",
        "blur_fraction",
        "fold_density", "fold_fraction", "max_mpp",
    ]
}

extension TOMLReader {
    /// The `[qc]` section as QC settings (defaults for keys not set); nil when a key is wrong (the problem is
    /// recorded).
    mutating func qualitySettings(_ table: TOMLTable) -> QualitySettings? {
        var settings = QualitySettings()
        let problems = self.problems.count
        func line(_ key: String) -> Int? { TOMLReader.line(of: key, in: table) }

        if let enabled = boolean(table, "enabled", section: "qc", default: settings.enabled) {
            settings.enabled = enabled
        }
        if let names = strings(table, "exclude", section: "qc", default: settings.exclude.sorted().map(\.rawValue)) {
            var checks = Set<QualityCheck>()
            for name in names {
                if let check = QualityCheck(rawValue: name) {
                    checks.insert(check)
                } else {
                    invalid(
                        "qc.exclude", line: line("exclude"), "\"\(name)\" is not a QC check",
                        fix: "list checks among \"pen\", \"blur\" and \"fold\" (or [] to exclude no tile)")
                }
            }
            settings.exclude = checks
        }
        // Shares of tiles or pixels: 0…1.
        let shares: [(String, WritableKeyPath<QualitySettings, Double>, String)] = [
            ("review_fraction", \.reviewFraction, "0.1: review when more than a tenth of the tissue is excluded"),
            ("pen_fraction", \.penFraction, "0.05: a tile with ink on 5 % of it is pen"),
            ("blur_relative", \.blurRelative, "0.3: blurred below 30 % of the slide's median focus"),
            ("blur_fraction", \.blurFraction, "0.375: a tile is blurred when 6 of its 16 blocks are"),
            ("fold_fraction", \.foldFraction, "0.5: a fold when half of the tile's tissue is dense"),
        ]
        for (key, path, example) in shares {
            guard let value = number(table, key, section: "qc", default: settings[keyPath: path]) else { continue }
            if value < 0 || value > 1 {
                invalid(
                    "qc.\(key)", line: line(key), "must be between 0 and 1 (is \(value))", fix: "use e.g. \(example)")
            } else {
                settings[keyPath: path] = value
            }
        }
        if let floor = number(table, "blur_floor", section: "qc", default: settings.blurFloor) {
            if floor < 0 {
                invalid(
                    "qc.blur_floor", line: line("blur_floor"), "must not be negative (is \(floor))",
                    fix: "use the focus below which a block is always out of focus, e.g. 0.2 (0 turns the floor off)")
            } else {
                settings.blurFloor = floor
            }
        }
        if let density = number(table, "fold_density", section: "qc", default: settings.foldDensity) {
            if density <= 1 {
                invalid(
                    "qc.fold_density", line: line("fold_density"), "must be greater than 1 (is \(density))",
                    fix: "use how many times the slide's median tissue density a folded pixel reaches, e.g. 1.6")
            } else {
                settings.foldDensity = density
            }
        }
        if let minimum = integer(table, "min_tiles", section: "qc", default: Int64(settings.minTiles)) {
            if minimum < 0 || minimum > 1_000_000 {
                invalid(
                    "qc.min_tiles", line: line("min_tiles"), "must be between 0 and 1000000 (is \(minimum))",
                    fix: "use the fewest usable tiles a score may rest on, e.g. 16")
            } else {
                settings.minTiles = Int(minimum)
            }
        }
        if let mpp = number(table, "max_mpp", section: "qc", default: settings.maxMPP) {
            if mpp <= 0 {
                invalid(
                    "qc.max_mpp", line: line("max_mpp"), "must be greater than 0 (is \(mpp))",
                    fix: "use the coarsest scan resolution in µm per pixel to score without review, e.g. 0.6")
            } else {
                settings.maxMPP = mpp
            }
        }
        return self.problems.count == problems ? settings : nil
    }
}
