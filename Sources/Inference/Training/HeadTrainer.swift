import Errors
import Foundation

/// Why training could not start: a stable code, the slide or folds concerned, what is wrong and the fix.
public struct TrainingError: CSMILError, Sendable, Equatable {
    public enum Code: String, ErrorCode {
        /// Fewer than two folds, or a fold without training or validation slides.
        case folds = "train.folds"
        /// A slide's features, tiles or cluster labels do not fit together or the head.
        case slide = "train.slide"
    }

    public var code: Code
    /// "folds", or "slide NAME".
    public var subject: String
    public var message: String
    public var fix: String

    public init(code: Code, subject: String, message: String, fix: String) {
        self.code = code
        self.subject = subject
        self.message = message
        self.fix = fix
    }
}

/// Trains CS-MIL heads from cached slide features as the reference training script does (spec §6):
/// per epoch, the training slides in a fresh random order, one fresh bag each (spec §5's draws, one
/// generator continuing across epochs); the clamped Bernoulli loss; the losses (gradients) of
/// `slidesPerStep` slides summed per Adam step, the last step of an epoch taking what is left;
/// dropout in `fc6`; after each epoch the validation loss (dropout off, one fresh bag per validation
/// slide, as the reference); the weights of the epoch with the lowest validation loss kept (the
/// latest on a tie, as the reference's `<=`). With k folds, the head of fold f validates on the
/// slides of fold f and trains on the rest, so k folds give k heads.
///
/// Each fold starts from the same initial weights and seeds (the reference re-seeds per fold), so a
/// fold trains to the same head whether it is trained alone or with the others.
///
/// After training, each head's scale weights r are oriented (`CSMILHeadParameters.flippingScaleWeights`,
/// an exact symmetry: outputs unchanged; the convention is `ScaleWeightMeans.shouldTurnOver`), then the
/// head scores its validation slides as the daemon would (`SlideScorer`: 200 bags, mean probability) for
/// the fold's validation AUC.
///
/// Runs BLAS and takes minutes: call it from a thread of your own, not Swift's cooperative pool.
public struct HeadTrainer: Sendable {
    /// Everything that decides a training run.
    public struct Configuration: Sendable, Equatable {
        /// Epochs per fold (100).
        public var epochs: Int
        /// Slides whose losses are summed per optimiser step (4).
        public var slidesPerStep: Int
        /// Adam's settings (lr 5e-4, β 0.9 / 0.999, ε 1e-8, weight decay 1e-4).
        public var optimizer: AdamOptimizer.Settings
        /// fc6's dropout rate while training (0.5); 0 turns dropout off.
        public var dropout: Double
        /// The distribution of training bags (L ~ normal(3, 1)); its `bagCount` and `seed` are unused.
        public var sampler: BagSampler
        /// Seed of the training bags; the slide order, dropout and validation bags use streams
        /// derived from it.
        public var seed: UInt64
        /// Seed of the initial weights (PyTorch's default initialisation distribution).
        public var initialisationSeed: UInt64
        /// How validation slides are scored for the summary's AUC (200 bags, seed 1).
        public var scoring: SlideScorer.Configuration

        public init(
            epochs: Int = 100, slidesPerStep: Int = 4, optimizer: AdamOptimizer.Settings = AdamOptimizer.Settings(),
            dropout: Double = 0.5, sampler: BagSampler = BagSampler(), seed: UInt64 = 1,
            initialisationSeed: UInt64 = 1, scoring: SlideScorer.Configuration = SlideScorer.Configuration()
        ) {
            precondition(epochs >= 1 && slidesPerStep >= 1, "at least one epoch and one slide per step")
            self.epochs = epochs
            self.slidesPerStep = slidesPerStep
            self.optimizer = optimizer
            self.dropout = dropout
            self.sampler = sampler
            self.seed = seed
            self.initialisationSeed = initialisationSeed
            self.scoring = scoring
        }
    }

    /// Where training stands after an epoch.
    public struct Progress: Sendable, Equatable {
        /// The fold being trained and its position among the folds trained (0-based).
        public var fold: Int
        public var foldIndex: Int
        public var foldCount: Int
        /// The epoch just finished (1-based) and the epochs per fold.
        public var epoch: Int
        public var epochs: Int
        /// Mean loss per training slide in this epoch (dropout on).
        public var trainingLoss: Double
        /// Mean loss per validation slide after this epoch (dropout off).
        public var validationLoss: Double
        /// The epoch whose weights are kept so far, and its validation loss.
        public var bestEpoch: Int
        public var bestValidationLoss: Double
        /// Seconds since training started, and the estimate of the seconds left for all folds.
        public var elapsed: Double
        public var estimatedRemaining: Double
    }

    /// One trained head.
    public struct FoldResult: Sendable {
        public var fold: Int
        /// The weights of the best epoch.
        public var head: CSMILHeadParameters
        public var bestEpoch: Int
        public var bestValidationLoss: Double
        /// The head's scale weights r over its training slides, after orientation, and whether the
        /// trained head's r was turned over to get there (`CSMILHeadParameters.flippingScaleWeights`).
        public var scaleWeights: ScaleWeightMeans
        public var scaleWeightsFlipped: Bool
        /// Per epoch.
        public var trainingLosses: [Double]
        public var validationLosses: [Double]
        /// The validation slides, their labels and the probability the kept head gives each.
        public var validationSlides: [String]
        public var validationLabels: [Bool]
        public var validationProbabilities: [Double]
        /// ROC AUC of those probabilities, nil when the validation slides are all of one class.
        public var validationAUC: Double?
    }

    /// All folds.
    public struct Summary: Sendable {
        public var folds: [FoldResult]
        /// The AUC of every slide's out-of-fold probability (each slide scored by the head that did
        /// not train on it); nil when the slides are all of one class.
        public var pooledValidationAUC: Double?
        /// The mean of the folds' AUCs (folds without one left out); nil when none has one.
        public var meanValidationAUC: Double? {
            let aucs = folds.compactMap(\.validationAUC)
            return aucs.isEmpty ? nil : aucs.reduce(0, +) / Double(aucs.count)
        }
    }

    /// D.
    public let featureSize: Int
    public var configuration: Configuration

    public init(featureSize: Int, configuration: Configuration = Configuration()) {
        precondition(featureSize >= 1, "the feature size must be positive")
        self.featureSize = featureSize
        self.configuration = configuration
    }

    /// Trains one head per fold (the distinct `fold` values, in increasing order).
    ///
    /// - Parameter progress: called after every epoch of every fold.
    /// - Throws: `TrainingError` when there are fewer than two folds or a slide does not fit.
    public func train(
        slides: [TrainingSlide], progress: (Progress) -> Void = { _ in }
    ) throws(TrainingError) -> Summary {
        let folds = Array(Set(slides.map(\.fold))).sorted()
        guard folds.count >= 2 else {
            throw TrainingError(
                code: .folds, subject: "folds",
                message: "training needs slides in at least two folds (found \(folds.count))",
                fix: "give each slide a fold number so that every head has slides to validate on")
        }
        for slide in slides { try check(slide) }
        let clock = Clock(totalEpochs: folds.count * configuration.epochs)
        var results: [FoldResult] = []
        for (index, fold) in folds.enumerated() {
            let training = slides.filter { $0.fold != fold }
            let validation = slides.filter { $0.fold == fold }
            results.append(
                try trainFold(
                    fold, training: training, validation: validation, clock: clock, foldIndex: index,
                    foldCount: folds.count, progress: progress))
        }
        let labels = results.flatMap(\.validationLabels)
        let probabilities = results.flatMap(\.validationProbabilities)
        return Summary(folds: results, pooledValidationAUC: ROCAUC.score(labels: labels, scores: probabilities))
    }

    /// Trains one head on `training`, choosing its epoch on `validation`.
    ///
    /// - Parameter fold: the fold's number, reported in progress and in the result.
    public func trainFold(
        _ fold: Int, training: [TrainingSlide], validation: [TrainingSlide], progress: (Progress) -> Void = { _ in }
    ) throws(TrainingError) -> FoldResult {
        for slide in training + validation { try check(slide) }
        return try trainFold(
            fold, training: training, validation: validation, clock: Clock(totalEpochs: configuration.epochs),
            foldIndex: 0, foldCount: 1, progress: progress)
    }

    // MARK: - One fold

    /// Elapsed time and the estimate of what is left, over all the epochs of a run.
    private final class Clock {
        let start = ContinuousClock.now
        let totalEpochs: Int
        var epochsDone = 0

        init(totalEpochs: Int) { self.totalEpochs = totalEpochs }

        /// Counts an epoch; returns (elapsed, remaining) seconds.
        func tick() -> (Double, Double) {
            epochsDone += 1
            let elapsed = (ContinuousClock.now - start) / .seconds(1)
            return (elapsed, elapsed / Double(epochsDone) * Double(totalEpochs - epochsDone))
        }
    }

    private func trainFold(
        _ fold: Int, training: [TrainingSlide], validation: [TrainingSlide], clock: Clock, foldIndex: Int,
        foldCount: Int, progress: (Progress) -> Void
    ) throws(TrainingError) -> FoldResult {
        guard !training.isEmpty, !validation.isEmpty else {
            throw TrainingError(
                code: .folds, subject: "fold \(fold)",
                message:
                    "has \(training.count) training and \(validation.count) validation slides; each fold needs both",
                fix: "spread the slides over the folds")
        }
        let config = configuration
        var parameters = CSMILHeadParameters(featureSize: featureSize, seed: config.initialisationSeed)
        var gradient = CSMILHeadParameters(zerosFor: featureSize)
        var optimizer = AdamOptimizer(parameterCount: parameters.values.count, settings: config.optimizer)
        let pass = CSMILHeadBackpropagation(parameters: parameters)

        var bagGenerator = SeededGenerator(seed: config.seed)
        var orderGenerator = SeededGenerator(seed: config.seed ^ 0x6F72_6465_7273_6565)  // "orderssee"
        var dropoutGenerator = SeededGenerator(seed: config.seed ^ 0x6472_6F70_6F75_7400)  // "dropout"
        var validationGenerator = SeededGenerator(seed: config.seed ^ 0x7661_6C69_6461_7465)  // "validate"
        let trainingMembers = training.map(\.members)
        let validationMembers = validation.map(\.members)

        var best = parameters
        var bestLoss = Double.infinity
        var bestEpoch = 0
        var trainingLosses: [Double] = []
        var validationLosses: [Double] = []
        var instances: [Int32] = []
        var order = Array(training.indices)

        for epoch in 1...config.epochs {
            // Fisher–Yates with our own generator (stable across toolchains).
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(i, orderGenerator.nextInt(below: i + 1))
            }
            var lossSum = 0.0
            var inStep = 0
            for (position, index) in order.enumerated() {
                let slide = training[index]
                instances.removeAll(keepingCapacity: true)
                config.sampler.drawBag(clusters: trainingMembers[index], using: &bagGenerator, into: &instances)
                let dropout =
                    config.dropout > 0 ? DropoutMask.draw(rate: config.dropout, using: &dropoutGenerator) : nil
                let result = slide.withFeatures { tiles in
                    pass.accumulateGradient(
                        tiles: tiles, instances: instances[...], label: slide.label ? 1 : 0, dropout: dropout,
                        into: &gradient)
                }
                lossSum += result.loss
                inStep += 1
                if inStep == config.slidesPerStep || position == order.count - 1 {
                    optimizer.update(&parameters, gradient: gradient)
                    pass.load(parameters)
                    for i in gradient.values.indices { gradient.values[i] = 0 }
                    inStep = 0
                }
            }
            let trainingLoss = lossSum / Double(training.count)

            var validationSum = 0.0
            for (index, slide) in validation.enumerated() {
                instances.removeAll(keepingCapacity: true)
                config.sampler.drawBag(
                    clusters: validationMembers[index], using: &validationGenerator, into: &instances)
                let p = slide.withFeatures { pass.probability(tiles: $0, instances: instances[...]) }
                validationSum += BernoulliLoss.loss(probability: p, label: slide.label ? 1 : 0)
            }
            let validationLoss = validationSum / Double(validation.count)
            trainingLosses.append(trainingLoss)
            validationLosses.append(validationLoss)
            if validationLoss <= bestLoss {
                best = parameters
                bestLoss = validationLoss
                bestEpoch = epoch
            }
            let (elapsed, remaining) = clock.tick()
            progress(
                Progress(
                    fold: fold, foldIndex: foldIndex, foldCount: foldCount, epoch: epoch, epochs: config.epochs,
                    trainingLoss: trainingLoss, validationLoss: validationLoss, bestEpoch: bestEpoch,
                    bestValidationLoss: bestLoss, elapsed: elapsed, estimatedRemaining: remaining))
        }

        // The sign of r is a convention (see `flippingScaleWeights` and `ScaleWeightMeans.shouldTurnOver`).
        var head = Self.load(best)
        var scaleWeights = Self.scaleWeights(of: head, over: training)
        let flipped = scaleWeights.shouldTurnOver
        if flipped {
            best = best.flippingScaleWeights()
            head = Self.load(best)
            scaleWeights = scaleWeights.turnedOver()
        }

        // Score the validation slides with the kept head, as the daemon scores a slide.
        let scorer = SlideScorer(heads: [head], configuration: config.scoring)
        let probabilities = validation.map { slide in
            let scoring = slide.withFeatures {
                scorer.score(
                    features: $0, tileCount: slide.tileCount, labels: slide.clusterLabels,
                    clusterCount: slide.clusterCount)
            }
            guard case .scored(let score) = scoring else { return Double.nan }
            return score.probability
        }
        let labels = validation.map(\.label)
        return FoldResult(
            fold: fold, head: best, bestEpoch: bestEpoch, bestValidationLoss: bestLoss,
            scaleWeights: scaleWeights, scaleWeightsFlipped: flipped,
            trainingLosses: trainingLosses, validationLosses: validationLosses,
            validationSlides: validation.map(\.name),
            validationLabels: labels, validationProbabilities: probabilities,
            validationAUC: ROCAUC.score(labels: labels, scores: probabilities))
    }

    /// A trained head as the scorer runs it.
    private static func load(_ parameters: CSMILHeadParameters) -> CSMILHead {
        do {
            return try CSMILHead(stateDict: parameters.stateDict())
        } catch {
            preconditionFailure("a trained head does not load: \(error)")
        }
    }

    /// The head's scale weights r[n][s] (spec §4) averaged per scale over the tiles of the positive and
    /// of the negative slides among `slides`.
    public static func scaleWeights(of head: CSMILHead, over slides: [TrainingSlide]) -> ScaleWeightMeans {
        let workspace = CSMILHeadWorkspace(instances: CSMILHead.tileBlock)
        let perTile = CSMILHead.scaleCount * head.featureSize
        var sums = [[Double]](repeating: .init(repeating: 0, count: CSMILHead.scaleCount), count: 2)
        var tiles = [0, 0]
        for slide in slides {
            let group = slide.label ? 0 : 1
            slide.withFeatures { features in
                var start = 0
                while start < slide.tileCount {
                    let rows = min(CSMILHead.tileBlock, slide.tileCount - start)
                    head.embed(features.baseAddress! + start * perTile, instances: rows, workspace: workspace)
                    for i in 0..<(rows * CSMILHead.scaleCount) {
                        sums[group][i % CSMILHead.scaleCount] += Double(workspace.scaleWeights[i])
                    }
                    start += rows
                }
            }
            tiles[group] += slide.tileCount
        }
        func mean(_ group: Int) -> [Double]? {
            tiles[group] > 0 ? sums[group].map { $0 / Double(tiles[group]) } : nil
        }
        return ScaleWeightMeans(
            positive: mean(0), negative: mean(1), positiveTiles: tiles[0], negativeTiles: tiles[1])
    }

    /// Refuses a slide whose parts do not fit together or the head.
    private func check(_ slide: TrainingSlide) throws(TrainingError) {
        func refuse(_ problem: String, fix: String) -> TrainingError {
            TrainingError(code: .slide, subject: "slide \(slide.name)", message: problem, fix: fix)
        }
        guard slide.tileCount >= 1 else {
            throw refuse("it has no tissue tiles, so no bag can be drawn", fix: "leave it out of the training set")
        }
        let floats = slide.tileCount * CSMILHead.scaleCount * featureSize
        guard slide.features.count == floats * MemoryLayout<Float>.size else {
            throw refuse(
                "its features are \(slide.features.count) bytes, but \(slide.tileCount) tiles × 3 scales × "
                    + "\(featureSize) floats are \(floats * MemoryLayout<Float>.size)",
                fix: "re-embed it with the backbone the heads are trained for")
        }
        guard slide.clusterLabels.count == slide.tileCount, slide.clusterCount >= 1,
            slide.clusterLabels.allSatisfy({ $0 >= 0 && Int($0) < slide.clusterCount })
        else {
            throw refuse(
                "it needs one cluster label in 0..<\(slide.clusterCount) per tile (\(slide.tileCount) tiles, "
                    + "\(slide.clusterLabels.count) labels)", fix: "cluster it again")
        }
    }
}
