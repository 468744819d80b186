import Foundation
import Logging

extension WatchDaemon {
    /// Creates the [watch], [output] and [state] folders that do not exist yet, with their parents (with this
    /// process's umask: 0750 under the unit's UMask=0027), so a fresh installation starts even where nothing made
    /// them (systemd's StateDirectory= makes only /var/lib/csmil). The Debian package's tmpfiles.d makes them
    /// with their group permissions; this is the fallback.
    static func createMissingFolders(_ configuration: Configuration, logger: Logger) throws(DaemonError) {
        let folders = [
            ("[state] directory", configuration.state.directory),
            ("[output] directory", configuration.output.directory),
            ("[watch] directory", configuration.watch.directory),
        ]
        for (key, path) in folders where !FileManager.default.fileExists(atPath: path) {
            if let reason = makeFolder(path) {
                throw DaemonError(
                    code: .folderUncreatable, subject: path,
                    message: "\(key) does not exist and cannot be created (\(reason))",
                    fix: "create it and give it to the csmil user, or change \(key) in the configuration; a folder "
                        + "outside /var/lib/csmil also needs ReadWritePaths= in a drop-in (systemctl edit csmil)")
            }
            logger.notice("created a missing folder", metadata: ["folder": "\(path)", "key": "\(key)"])
        }
    }

    /// `mkdir -p`: nil when made, else the reason (strerror of the step that failed).
    static func makeFolder(_ path: String) -> String? {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o777) != 0 && errno != EEXIST { return String(cString: strerror(errno)) }
        }
        return nil
    }
}
