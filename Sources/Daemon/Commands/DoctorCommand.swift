import ArgumentParser

/// `csmil doctor`: what is wrong with this installation, and how to fix it.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check libraries, CPU, configuration, folders, model files and the webhook secret.",
        discussion: """
            Prints one line per check and a fix for each problem. Exit status 0 only if nothing is \
            wrong. Run it as the service user (sudo -u csmil csmil doctor --config /etc/csmil/csmil.toml) \
            so the permission checks are the daemon's.
            """
    )

    @Option(name: .long, help: "A configuration file to check, with the folders and files it names.")
    var config: String?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var findings = Doctor.libraries()
        findings.append(Doctor.cpu())
        findings.append(Doctor.precisions())
        if let config { findings += Doctor.configuration(path: config) }
        print(render(findings))
        if findings.contains(where: { $0.severity == .problem }) { throw ExitCode.failure }
    }

    /// One aligned line per finding, the fix indented below it, and a closing count.
    func render(_ findings: [Finding]) -> String {
        let width = (findings.map(\.subject.count).max() ?? 0) + 2
        var lines: [String] = []
        for finding in findings {
            let mark = finding.severity.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            let detail = finding.detail + (finding.code.map { " [\($0)]" } ?? "")
            lines.append(mark + finding.subject.padding(toLength: width, withPad: " ", startingAt: 0) + detail)
            if let fix = finding.fix { lines.append(String(repeating: " ", count: 8 + width) + "fix: " + fix) }
        }
        let problems = findings.filter { $0.severity == .problem }.count
        let warnings = findings.filter { $0.severity == .warning }.count
        lines.append(
            problems == 0 && warnings == 0
                ? "All checks passed."
                : "\(problems) problem(s), \(warnings) warning(s).")
        return lines.joined(separator: "\n")
    }
}
