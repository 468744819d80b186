import Foundation
import Glibc

/// Which files under the watched folder make up one slide, and what a settle check compares.
///
/// A *unit* is what is settled and delivered, named by one path:
/// - a single-file slide (`.svs`, `.tif`, `.ndpi`, …) or any other file: the file itself;
/// - MIRAX: the `.mrxs` file; its same-name folder's files (`Slidedat.ini`, `Index.dat`,
///   `Data*.dat`) belong to it and are never slides on their own, even when they arrive before
///   the `.mrxs`;
/// - Hamamatsu VMS/VMU: the `.vms`/`.vmu` file; the image, map and optimisation files it names
///   belong to it.
///
/// Every file of a set is part of the unit's snapshot, so a set settles only when all its files
/// are quiet.
struct SlideSetLayout: Sendable {
    enum Kind: Equatable, Sendable {
        case single
        case mirax
        case vms
    }

    /// The watched folder, without a trailing `/`.
    let root: String
    let ignore: IgnoreRules

    /// The extensions of files a VMS/VMU may name (JPEG tiles, NGR images, the map and optimisation files).
    static let vmsMemberExtensions: Set<String> = ["jpg", "jpeg", "ngr", "opt", "bmp"]

    init(root: String, ignore: [String]) {
        self.root = Self.normalise(root)
        self.ignore = IgnoreRules(ignore)
    }

    /// `path` without trailing slashes ("/" stays "/").
    static func normalise(_ path: String) -> String {
        var path = path
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }

    /// The kind of unit a unit path names, by its extension.
    static func kind(of unit: String) -> Kind {
        switch Self.pathExtension(unit) {
        case "mrxs": .mirax
        case "vms", "vmu": .vms
        default: .single
        }
    }

    /// The lowercased extension of the last name of `path`, "" when none.
    static func pathExtension(_ path: String) -> String {
        let name = Self.lastName(path)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return name[name.index(after: dot)...].lowercased()
    }

    /// The last name of `path`.
    static func lastName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// The folder holding `path`.
    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `path` relative to the root; nil when it is the root or outside it.
    func relative(_ path: String) -> String? {
        let prefix = root == "/" ? "/" : root + "/"
        guard path.hasPrefix(prefix), path.count > prefix.count else { return nil }
        return String(path.dropFirst(prefix.count))
    }

    /// Whether `path` (a file or folder below the root) is ignored by name; paths outside the root are.
    func isIgnored(_ path: String) -> Bool {
        guard let relative = relative(path) else { return true }
        return ignore.ignores(relativePath: relative)
    }

    /// The unit a file below the root belongs to; nil when it is ignored.
    func unit(for path: String) -> String? {
        guard !isIgnored(path) else { return nil }
        let name = Self.lastName(path)
        let parent = Self.parent(path)
        let pathExtension = Self.pathExtension(name)
        if pathExtension == "mrxs" { return path }
        if parent != root, let index = Self.miraxIndex(forMember: name, in: parent) {
            return isIgnored(index) ? nil : index
        }
        if Self.vmsMemberExtensions.contains(pathExtension), let owner = Self.vmsOwner(of: name, in: parent) {
            return isIgnored(owner) ? nil : owner
        }
        return path
    }

    /// The `.mrxs` a file in `folder` belongs to, if `folder` looks like a MIRAX data folder: its
    /// name is a MIRAX data file's, the folder holds `Slidedat.ini`, or a same-name `.mrxs` lies beside it.
    static func miraxIndex(forMember name: String, in folder: String) -> String? {
        let lowered = name.lowercased()
        let isDataName =
            lowered == "slidedat.ini" || lowered == "index.dat"
            || (lowered.hasPrefix("data") && lowered.hasSuffix(".dat"))
        for candidate in [folder + ".mrxs", folder + ".MRXS"] where access(candidate, F_OK) == 0 {
            return candidate
        }
        return isDataName || access(folder + "/Slidedat.ini", F_OK) == 0 ? folder + ".mrxs" : nil
    }

    /// The `.vms`/`.vmu` in `folder` that names `name`, if any.
    static func vmsOwner(of name: String, in folder: String) -> String? {
        guard let entries = DirectoryEntry.list(folder) else { return nil }
        for entry in entries.sorted(by: { $0.name < $1.name }) where entry.kind == .file {
            let kind = Self.kind(of: entry.name)
            guard kind == .vms else { continue }
            let index = folder + "/" + entry.name
            if Self.vmsMembers(of: index).contains(name) { return index }
        }
        return nil
    }

    /// The file names a Hamamatsu `.vms`/`.vmu` index names: its `ImageFile…`, `MapFile`,
    /// `OptimisationFile` and `MacroImage` keys (an INI file; names are relative to its folder).
    static func vmsMembers(of index: String) -> [String] {
        guard let handle = FileHandle(forReadingAtPath: index) else { return [] }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: 1 << 20)) ?? Data()
        let text = String(decoding: data, as: UTF8.self)
        var names: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard !value.isEmpty else { continue }
            if key.hasPrefix("imagefile") || key == "mapfile" || key == "optimisationfile" || key == "macroimage" {
                names.append(value.split(separator: "\\").last.map(String.init) ?? value)
            }
        }
        return names
    }

    /// The snapshot of a unit now; nil when its main file does not exist or is not a regular file.
    func snapshot(of unit: String) -> UnitSnapshot? {
        guard let main = FileState.of(unit) else { return nil }
        switch Self.kind(of: unit) {
        case .single:
            return UnitSnapshot(main: main)
        case .mirax:
            let folder = String(unit.dropLast(".mrxs".count))
            let members = (DirectoryEntry.list(folder) ?? []).filter { $0.kind == .file }
                .compactMap { FileState.of(folder + "/" + $0.name) }
                .sorted { $0.path < $1.path }
            return UnitSnapshot(main: main, members: members)
        case .vms:
            let folder = Self.parent(unit)
            var members: [FileState] = []
            var missing: [String] = []
            for name in Set(Self.vmsMembers(of: unit)).sorted() {
                let path = folder + "/" + name
                if let state = FileState.of(path) { members.append(state) } else { missing.append(path) }
            }
            return UnitSnapshot(main: main, members: members, missing: missing)
        }
    }
}
