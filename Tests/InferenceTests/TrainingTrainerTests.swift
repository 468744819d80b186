import Foundation
import Testing

@testable import Inference

/// Slides of a toy MIL problem: D = 16, random non-negative features at every scale; in positive
/// slides a third of the tiles carry a signal (+2.5 on four 20x dimensions), the "lesion".
private func syntheticSlides(count: Int, folds: Int, seed: UInt64) -> [TrainingSlide] {
    let d = 16
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { index in
        let positive = index % 2 == 0
        let tiles = 24 + generator.nextInt(below: 17)
        var features = [Float](repeating: 0, count: tiles * 3 * d)
        for i in features.indices { features[i] = Float(generator.nextUniform()) }
        if positive {
            for tile in 0..<tiles where generator.nextUniform() < 1.0 / 3 {
                for j in 0..<4 { features[tile * 3 * d + j] += 2.5 }
            }
        }
        let data = features.withUnsafeBytes { Data($0) }
        return TrainingSlide.clustered(
            name: "slide\(index)", label: positive, fold: (index / 2) % folds, tileCount: tiles, features: data,
            featureSize: d, configuration: SlideScorer.Configuration(clusteringRestarts: 2))
    }
}

@Suite("Training: the trainer (spec §6) on cached features")
struct TrainingTrainerTests {
    @Test("an easy synthetic problem: validation loss goes down and every fold's validation AUC is ≥ 0.95")
    func learnsSeparableProblem() throws {
        let slides = syntheticSlides(count: 32, folds: 2, seed: 5)
        var configuration = HeadTrainer.Configuration(epochs: 40)
        configuration.scoring.sampler = BagSampler(bagCount: 50)
        let trainer = HeadTrainer(featureSize: 16, configuration: configuration)
        var reports: [HeadTrainer.Progress] = []
        let start = ContinuousClock.now
        let summary = try trainer.train(slides: slides) { reports.append($0) }
        let seconds = (ContinuousClock.now - start) / .seconds(1)

        #expect(summary.folds.map(\.fold) == [0, 1])
        #expect(reports.count == 2 * 40)
        #expect(reports.last!.estimatedRemaining == 0)
        #expect(reports.allSatisfy { $0.elapsed >= 0 && $0.estimatedRemaining >= 0 })
        for fold in summary.folds {
            let early = fold.validationLosses.prefix(3).reduce(0, +) / 3
            print(
                "fold \(fold.fold): validation loss \(early) → best \(fold.bestValidationLoss) at epoch "
                    + "\(fold.bestEpoch); AUC \(fold.validationAUC ?? .nan); \(seconds) s in all")
            #expect(fold.bestValidationLoss < early / 2)
            #expect(fold.validationLosses[fold.bestEpoch - 1] == fold.bestValidationLoss)
            #expect(try #require(fold.validationAUC) >= 0.95)
            #expect(fold.validationSlides.count == 16)
            // The head kept is the best epoch's, and it loads as a scoring head, its scale weights oriented
            // so that the scale that moves most between negative and positive training slides rises.
            let head = try CSMILHead(stateDict: fold.head.stateDict())
            let training = slides.filter { $0.fold != fold.fold }
            let weights = HeadTrainer.scaleWeights(of: head, over: training)
            #expect(weights == fold.scaleWeights)
            let scale = try #require(weights.evidenceScale)
            #expect(try #require(weights.shift)[scale] > 0)
            #expect(!weights.shouldTurnOver)
            let turned = HeadTrainer.scaleWeights(
                of: try CSMILHead(stateDict: fold.head.flippingScaleWeights().stateDict()), over: training)
            #expect(turned.shouldTurnOver && turned.evidenceScale == scale)
        }
        #expect(try #require(summary.pooledValidationAUC) >= 0.95)
    }

    @Test("turning a head's scale weights over negates r and leaves every bag probability and attention as is")
    func flippingScaleWeightsIsASymmetry() throws {
        let slides = syntheticSlides(count: 2, folds: 2, seed: 9)
        let parameters = try CSMILHeadParameters(stateDict: SeededWeights.head(featureSize: 16, seed: 3))
        let flipped = parameters.flippingScaleWeights()
        #expect(flipped != parameters && flipped.flippingScaleWeights() == parameters)
        let scorer = SlideScorer(
            heads: [try CSMILHead(stateDict: parameters.stateDict())],
            configuration: .init(sampler: BagSampler(bagCount: 30)))
        let turned = SlideScorer(
            heads: [try CSMILHead(stateDict: flipped.stateDict())], configuration: scorer.configuration)
        for slide in slides {
            let scores = try [scorer, turned].map { scorer in
                try #require(
                    slide.withFeatures {
                        scorer.score(
                            features: $0, tileCount: slide.tileCount, labels: slide.clusterLabels,
                            clusterCount: slide.clusterCount)
                    }.score)
            }
            #expect(abs(scores[0].probability - scores[1].probability) <= 1e-12)
            #expect(scores[0].bagProbabilities == scores[1].bagProbabilities)
            #expect(scores[0].tileAttention == scores[1].tileAttention)
            #expect(scores[0].scaleWeights == scores[1].scaleWeights.map { $0.map { -$0 } })
            #expect(scores[0].scaleWeights.contains { $0.contains { $0 != 0 } })
        }
    }

    @Test("the sign convention: the scale that moves most between the classes rises; one class, mean r ≥ 0")
    func scaleWeightConvention() {
        // Micro-like: only 20x moves, downwards → turn over.
        var means = ScaleWeightMeans(
            positive: [-0.6, 1.0, 0.8], negative: [0.9, 0.98, 0.83], positiveTiles: 10, negativeTiles: 30)
        #expect(means.evidenceScale == 0 && means.shouldTurnOver)
        // Macro-like: 10x moves more than 20x, but 5x most, upwards → keep.
        means = ScaleWeightMeans(
            positive: [0.1, 0.1, 0.9], negative: [0.27, 0.32, 0.5], positiveTiles: 10, negativeTiles: 30)
        #expect(means.evidenceScale == 2 && !means.shouldTurnOver)
        // Nothing moves: the mean over all tiles decides (−1·10 + 0.5·30 > 0 → keep; the other way, turn over).
        means = ScaleWeightMeans(
            positive: [-1, -1, -1], negative: [-1, -1, -1], positiveTiles: 10, negativeTiles: 30)
        #expect(means.evidenceScale == nil && means.overall == -1 && means.shouldTurnOver)
        means = ScaleWeightMeans(positive: nil, negative: [0.5, 0.5, 0.5], positiveTiles: 0, negativeTiles: 30)
        #expect(means.shift == nil && means.evidenceScale == nil && !means.shouldTurnOver)
        means = ScaleWeightMeans(positive: [-1, -1, 0.5], negative: nil, positiveTiles: 10, negativeTiles: 0)
        #expect(abs(means.overall + 0.5) < 1e-12 && means.shouldTurnOver)
        means = ScaleWeightMeans(
            positive: [-1, -1, -1], negative: [0.5, 0.5, 0.5], positiveTiles: 10, negativeTiles: 30)
        #expect(abs(means.overall - 0.125) < 1e-12)
    }

    @Test("a fold trains to the same head whether trained alone or with the others (seeded, deterministic)")
    func deterministic() throws {
        let slides = syntheticSlides(count: 12, folds: 2, seed: 9)
        let configuration = HeadTrainer.Configuration(
            epochs: 3, scoring: SlideScorer.Configuration(sampler: BagSampler(bagCount: 5)))
        let trainer = HeadTrainer(featureSize: 16, configuration: configuration)
        let all = try trainer.train(slides: slides)
        let alone = try trainer.trainFold(
            1, training: slides.filter { $0.fold != 1 }, validation: slides.filter { $0.fold == 1 })
        #expect(all.folds[1].head == alone.head)
        #expect(all.folds[1].validationLosses == alone.validationLosses)
        #expect(all.folds[0].head != all.folds[1].head)
    }

    @Test("slides that do not fit are refused with their name; one fold is not enough")
    func refusals() throws {
        let slides = syntheticSlides(count: 4, folds: 1, seed: 2)
        let trainer = HeadTrainer(featureSize: 16, configuration: HeadTrainer.Configuration(epochs: 1))
        #expect(throws: TrainingError.self) { try trainer.train(slides: slides) }
        var broken = syntheticSlides(count: 4, folds: 2, seed: 2)
        broken[3].clusterLabels[0] = 99
        do {
            _ = try trainer.train(slides: broken)
            Issue.record("a cluster label out of range was accepted")
        } catch {
            #expect(error.code == .slide)
            #expect(error.description.contains("slide3"))
        }
        let wrongSize = HeadTrainer(featureSize: 32, configuration: HeadTrainer.Configuration(epochs: 1))
        #expect(throws: TrainingError.self) {
            try wrongSize.train(slides: syntheticSlides(count: 4, folds: 2, seed: 2))
        }
    }

    @Test("training bags follow spec §5 and the generator continues from bag to bag")
    func trainingBags() {
        let sampler = BagSampler()
        let clusters: [[Int32]] = [[0, 1, 2, 3], [], [4], [5, 6]]
        var generator = SeededGenerator(seed: 1)
        var first: [Int32] = []
        let length = sampler.drawBag(clusters: clusters, using: &generator, into: &first)
        #expect(first.count == min(length, 4) + 1 + 1 + min(length, 2))
        #expect(first[min(length, 4)] == BagSet.masked)
        // The first bag is the first bag BagSampler(seed: 1) draws; the next one differs from it.
        let reference = BagSampler(bagCount: 2, seed: 1).sample(clusters: clusters)
        #expect(Array(reference[0]) == first)
        var second: [Int32] = []
        sampler.drawBag(clusters: clusters, using: &generator, into: &second)
        #expect(Array(reference[1]) == second)
    }
}

@Suite("Training: ROC AUC like scikit-learn's roc_auc_score")
struct TrainingAUCTests {
    @Test("hand-checked cases, ties counted one half (values from sklearn 1.x)")
    func handChecked() throws {
        #expect(ROCAUC.score(labels: [false, false, true, true], scores: [0.1, 0.2, 0.3, 0.4]) == 1)
        #expect(ROCAUC.score(labels: [true, true, false, false], scores: [0.1, 0.2, 0.3, 0.4]) == 0)
        #expect(ROCAUC.score(labels: [false, false, true, true], scores: [0.1, 0.4, 0.35, 0.8]) == 0.75)
        #expect(ROCAUC.score(labels: [false, true, false, true], scores: [0.5, 0.5, 0.5, 0.5]) == 0.5)
        let tied = try #require(
            ROCAUC.score(labels: [false, true, false, true, true], scores: [0.2, 0.2, 0.6, 0.6, 0.9]))
        #expect(abs(tied - 2.0 / 3) < 1e-15)
        let mixed = try #require(
            ROCAUC.score(
                labels: [true, false, true, false, false, true], scores: [0.3, 0.3, 0.3, 0.1, 0.7, 0.7]))
        #expect(abs(mixed - 0.6111111111111112) < 1e-15)
    }

    @Test("one class only has no AUC")
    func oneClass() {
        #expect(ROCAUC.score(labels: [true, true], scores: [0.1, 0.9]) == nil)
        #expect(ROCAUC.score(labels: [], scores: []) == nil)
    }
}
