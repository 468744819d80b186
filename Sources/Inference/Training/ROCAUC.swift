/// The area under the ROC curve, as scikit-learn's `roc_auc_score` gives it for binary labels.
///
/// Computed as the Mann–Whitney statistic: the probability that a random positive scores above a
/// random negative, a tie counting one half. That is exactly the trapezoidal area sklearn computes
/// (its curve joins tied scores with one diagonal segment, whose area is that half).
public enum ROCAUC {
    /// The AUC of `scores` against `labels` (true = positive), or nil when one class is absent
    /// (sklearn raises an error there). NaN scores are not allowed.
    public static func score(labels: [Bool], scores: [Double]) -> Double? {
        precondition(labels.count == scores.count, "one score per label")
        precondition(!scores.contains { $0.isNaN }, "scores must not be NaN")
        let positives = labels.count { $0 }
        let negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }

        // Mid-ranks (1-based) of the scores, ties sharing the mean of their ranks.
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSumOfPositives = 0.0
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count && scores[order[end]] == scores[order[start]] { end += 1 }
            let midRank = Double(start + 1 + end) / 2
            for k in start..<end where labels[order[k]] { rankSumOfPositives += midRank }
            start = end
        }
        let p = Double(positives)
        let u = rankSumOfPositives - p * (p + 1) / 2
        return u / (p * Double(negatives))
    }
}
