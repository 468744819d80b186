import Foundation
import Images
import Ingest
import Notify

#if canImport(Glibc)
import Glibc
#endif

/// Quality control in the pipeline (issue 16): the tiles' measures are taken on the reader thread as they stream
/// (``SlideQualityMeasurements``), the verdict is made once every tile is embedded (``QualityControl``), and the
/// excluded tiles' features are dropped from the spill file before clustering and bags, so the model scores only
/// the usable tiles. With nothing excluded the spill file is not touched: the score is bit for bit the one QC off
/// gives.
extension SlidePipeline {
    /// The report's `qc` object for a verdict.
    static func qualityReport(_ quality: SlideQuality, settings: QualitySettings) -> SlideReport.QualityControl {
        var fractions: [String: Double] = [:]
        for check in QualityCheck.allCases { fractions[check.rawValue] = quality.fractions[check] ?? 0 }
        return SlideReport.QualityControl(
            status: quality.status.rawValue, reasons: quality.reasons.map(\.rawValue), fractions: fractions,
            excluded: quality.excludedCount, usable: quality.usableCount,
            exclude: settings.exclude.sorted().map(\.rawValue),
            focusReference: quality.focusReference.map { ($0 * 1000).rounded() / 1000 },
            densityReference: quality.densityReference.map { ($0 * 1000).rounded() / 1000 })
    }

    /// One line for people: "pass", or "review: pen ink on 12 % of tissue tiles; …".
    static func qualitySummary(_ qc: SlideReport.QualityControl) -> String {
        guard qc.needsReview else { return "pass (\(qc.excluded) of \(qc.excluded + qc.usable) tiles left out)" }
        let words = qc.reasons.map { reason -> String in
            let percent = Int(((qc.fractions[reason] ?? 0) * 100).rounded())
            switch reason {
            case "pen": return "pen ink on \(percent) % of tissue tiles"
            case "blur": return "out of focus on \(percent) % of tissue tiles"
            case "fold": return "tissue folds on \(percent) % of tissue tiles"
            case "too_few_tiles": return "only \(qc.usable) usable tiles"
            case "resolution": return "scanned coarser than 20x"
            default: return reason
            }
        }
        return "review: " + words.joined(separator: "; ")
    }

    /// Rewrites the spill file so that it holds only the rows of `keep` (grid indices, increasing), in that order,
    /// and truncates it: row `keep[i]` moves to row `i`. Reads and writes one row at a time (rows only move
    /// towards the start, so a row is read before anything overwrites it).
    static func compactSpill(path: String, keep: [Int], rowBytes: Int) throws {
        let descriptor = open(path, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw PipelineError(
                code: .spill, subject: path, message: "cannot be opened to drop the tiles QC excluded",
                fix: "check that the state folder's work folder exists and is writable")
        }
        defer { close(descriptor) }
        var row = [UInt8](repeating: 0, count: rowBytes)
        func failure(_ what: String) -> PipelineError {
            PipelineError(
                code: .spill, subject: path,
                message: "\(what) while dropping the tiles QC excluded (\(String(cString: strerror(errno))))",
                fix: "check that the state folder's work folder is writable and has room")
        }
        for (target, source) in keep.enumerated() where target != source {
            try row.withUnsafeMutableBytes { bytes in
                var done = 0
                while done < rowBytes {
                    let count = pread(
                        descriptor, bytes.baseAddress! + done, rowBytes - done, off_t(source * rowBytes + done))
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { throw failure("cannot be read") }
                    done += count
                }
                done = 0
                while done < rowBytes {
                    let count = pwrite(
                        descriptor, bytes.baseAddress! + done, rowBytes - done, off_t(target * rowBytes + done))
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { throw failure("cannot be written") }
                    done += count
                }
            }
        }
        guard ftruncate(descriptor, off_t(keep.count * rowBytes)) == 0 else { throw failure("cannot be truncated") }
    }

    /// `qc_mask.png` over the thumbnail.
    static func qualityMaskPNG(
        thumbnail: RGBImage, slideWidth: Int, slideHeight: Int, tiles: [TileRecord], qc: SlideReport.QualityControl
    ) throws -> Data {
        let image = QualityMaskRenderer().render(
            thumbnail: thumbnail,
            slideWidth: slideWidth, slideHeight: slideHeight, tiles: tiles, summary: qualitySummary(qc))
        return try image.encoded()
    }
}
