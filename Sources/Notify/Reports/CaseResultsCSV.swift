import Foundation

/// The reference pipeline's `case_results_merge.csv`, for drop-in comparison with its output.
///
/// Source: hrlblab/CS-MIL, `CS-MIL_Docker/src/run_inference.py`, function `Testing` (step 4). For each fold
/// model (one head here) it builds a pandas frame with the columns `case_name, label, prob, acc` and one row
/// `[case name, bag label, mean of the 200 bag probabilities, 1 - |label - (prob > 0.5)|]`, saves it as
/// `case_results_<fold>.csv`, then concatenates the folds into `case_results_merge.csv` and appends a last row
/// `['overall', 0, mean of the prob column, 0]`; `to_csv(index=False)` writes a header and no index.
///
/// So a slide gives one row per head plus the `overall` row. What the reference writes, reproduced here:
/// - `case_name` is the slide's file name without its extension;
/// - `label` is the slide's true class, which inference does not know: the reference's generated `data_list.csv`
///   gives every slide class 0, so it is `0.0` (a float, from a tensor) unless the caller knows better;
/// - `prob` is written as Python's `repr` of the float, which Swift's `Double.description` matches digit for
///   digit; a head computed in `Float` should be passed as `Double(value)`, as torch's `.item()` does;
/// - `acc` uses the reference's strict `prob > threshold` (the report's decision is `≥`, spec §5);
/// - the `overall` row's `label` and `acc` are the integer `0`, as the reference assigns them.
/// Fields are quoted as pandas' default `QUOTE_MINIMAL` does (only when they hold `,`, `"` or a line break).
///
/// csmil's additions, after the reference's four columns (so a reader that selects the reference's columns by name
/// or position sees the same file): with QC on, a column `qc` holds the slide's QC status (`pass` or `review`) on
/// every row; when `[identity] pattern` is configured, every row then ends with the columns `accession`,
/// `specimen`, `block`, `slide`, `patient` (empty where the name gave none).
public struct CaseResultsCSV: Sendable, Equatable {
    /// The reference's columns, in order.
    public static let columns = ["case_name", "label", "prob", "acc"]
    /// The QC column csmil adds when QC ran.
    public static let qcColumn = "qc"

    /// The slide's identity for the extra columns; nil writes the reference's columns only.
    public var identity: SlideIdentity?

    /// One line of the file, as the text of its four fields.
    public struct Row: Sendable, Equatable {
        /// `case_name`.
        public var caseName: String
        /// `label`.
        public var label: String
        /// `prob`.
        public var probability: String
        /// `acc`.
        public var accuracy: String

        /// Makes a row from the text of its fields.
        public init(caseName: String, label: String, probability: String, accuracy: String) {
            self.caseName = caseName
            self.label = label
            self.probability = probability
            self.accuracy = accuracy
        }
    }

    /// The data rows (heads, then `overall`), without the header.
    public var rows: [Row]
    /// The slide's QC status (`pass` or `review`) for the `qc` column; nil (no column) when QC is off.
    public var qc: String?

    /// Makes the file from rows.
    public init(rows: [Row], qc: String? = nil, identity: SlideIdentity? = nil) {
        self.rows = rows
        self.qc = qc
        self.identity = identity
    }

    /// The reference's rows for one slide: one per head, then `overall` (no rows when there are no heads, as
    /// for a slide without tissue or one that failed).
    ///
    /// - Parameters:
    ///   - caseName: the slide's file name without extension (``caseName(forSlideName:)``).
    ///   - headProbabilities: each head's probability (mean of its bag probabilities).
    ///   - threshold: the decision threshold (the reference's 0.5).
    ///   - label: the slide's true class when known; 0 as in the reference otherwise.
    ///   - qc: the slide's QC status for the `qc` column; nil (no column) when QC is off.
    ///   - identity: the slide's identity, for the extra columns (nil: none).
    public init(
        caseName: String, headProbabilities: [Double], threshold: Double = 0.5, label: Double = 0, qc: String? = nil,
        identity: SlideIdentity? = nil
    ) {
        self.identity = identity
        var rows: [Row] = []
        for probability in headProbabilities {
            let predicted: Double = probability > threshold ? 1 : 0
            let accuracy = 1 - abs(label - predicted)
            rows.append(
                Row(
                    caseName: caseName, label: label.description, probability: probability.description,
                    accuracy: accuracy.description))
        }
        if !headProbabilities.isEmpty {
            let mean = headProbabilities.reduce(0, +) / Double(headProbabilities.count)
            rows.append(Row(caseName: "overall", label: "0", probability: mean.description, accuracy: "0"))
        }
        self.rows = rows
        self.qc = qc
    }

    /// The reference's case name: the file name with its last extension removed (`a.b.svs` → `a.b`).
    public static func caseName(forSlideName name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name }
        return String(name[..<dot])
    }

    /// The file's text: the header, then one line per row, each ending in `\n`.
    public var text: String {
        let extra = identity.map { identity in SlideIdentity.groupNames.map { identity[$0] ?? "" } }
        let header = Self.columns + (qc == nil ? [] : [Self.qcColumn]) + (extra == nil ? [] : SlideIdentity.groupNames)
        var text = header.joined(separator: ",") + "\n"
        for row in rows {
            let fields =
                [row.caseName, row.label, row.probability, row.accuracy] + (qc.map { [$0] } ?? []) + (extra ?? [])
            text += fields.map(CSV.quoted).joined(separator: ",")
            text += "\n"
        }
        return text
    }
}
