import Testing

@testable import Notify

@Suite("case_results_merge.csv")
struct CaseResultsCSVTests {
    @Test("the header is the reference's columns; one row per head and an overall row")
    func referenceLayout() {
        let csv = CaseResultsCSV(caseName: "S18-2001", headProbabilities: [0.25, 0.75, Double(Float(0.3))])
        let lines = csv.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "case_name,label,prob,acc")
        #expect(lines[1] == "S18-2001,0.0,0.25,1.0")
        #expect(lines[2] == "S18-2001,0.0,0.75,0.0")
        #expect(lines[3] == "S18-2001,0.0,0.30000001192092896,1.0")
        #expect(lines[4].hasPrefix("overall,0,0.4333333373069763") && lines[4].hasSuffix(",0"))
        #expect(lines.count == 6 && lines[5].isEmpty)
    }

    @Test("acc uses the reference's strict comparison and a known label")
    func accuracy() {
        let atThreshold = CaseResultsCSV(caseName: "a", headProbabilities: [0.5], threshold: 0.5, label: 1)
        #expect(
            atThreshold.rows[0] == CaseResultsCSV.Row(caseName: "a", label: "1.0", probability: "0.5", accuracy: "0.0"))
    }

    @Test("case names lose their extension and are quoted when they must be")
    func caseNames() {
        #expect(CaseResultsCSV.caseName(forSlideName: "a.b.svs") == "a.b")
        #expect(CaseResultsCSV.caseName(forSlideName: ".hidden") == ".hidden")
        let csv = CaseResultsCSV(caseName: "x, \"y\"", headProbabilities: [0.1])
        #expect(csv.text.contains("\n\"x, \"\"y\"\"\",0.0,0.1,1.0\n"))
        #expect(CaseResultsCSV(caseName: "none", headProbabilities: []).text == "case_name,label,prob,acc\n")
    }

    @Test("what the writer quotes, the reader reads back: commas, quotes and line breaks in a field")
    func readsWhatItWrites() {
        let fields = ["a, b.svs", "say \"hi\"", "two\nlines", " plain ", ""]
        let text = "slide,label\r\n" + fields.map(CSV.quoted).joined(separator: ",") + "\n\n1,2"
        let records = CSV.records(text)
        #expect(
            records.map(\.fields) == [
                ["slide", "label"], ["a, b.svs", "say \"hi\"", "two\nlines", "plain", ""], ["1", "2"],
            ])
        #expect(records.map(\.line) == [1, 2, 5])
    }
}
