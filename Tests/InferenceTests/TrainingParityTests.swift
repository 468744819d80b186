import Foundation
import Inference
import Testing

/// A training fixture made by tools/make_training_fixtures.py: a head, four bags, PyTorch's losses and
/// gradients, and the parameters after Adam steps (all float64 computations from float32 inputs).
struct TrainingFixture: Decodable {
    struct Bag: Decodable {
        let clusterSizes: [Int]
        let features: HeadFixture.Floats
        let mask: [Int]
        let label: Double
    }

    struct GradientCase: Decodable {
        let name: String
        let bags: [Int]
        let dropoutKeep: [Bool]?
        let loss: Double
        let probabilities: [Double]
        let gradients: [String: HeadFixture.Floats]
    }

    struct AdamCase: Decodable {
        let name: String
        let bags: [Int]
        let steps: Int
        let learningRate: Double
        let weightDecay: Double
        let losses: [Double]
        let parameters: [String: HeadFixture.Floats]
    }

    let torchVersion: String
    let featureSize: Int
    let stateDict: [String: HeadFixture.Floats]
    let bags: [Bag]
    let gradientCases: [GradientCase]
    let adam: [AdamCase]

    static func load() throws -> TrainingFixture {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(TrainingFixture.self, from: Data(contentsOf: Fixtures.url("training_d16.json")))
    }

    var weights: StateDict {
        var dict = StateDict()
        for name in stateDict.keys.sorted() {
            dict.set(name, Tensor(shape: stateDict[name]!.shape, values: stateDict[name]!.values))
        }
        return dict
    }

    func parameters() throws -> CSMILHeadParameters { try CSMILHeadParameters(stateDict: weights) }
}

/// Runs one bag of the fixture through `pass`, adding its gradient into `gradient`.
private func accumulate(
    _ pass: CSMILHeadBackpropagation, _ bag: TrainingFixture.Bag, dropout: DropoutMask?,
    into gradient: inout CSMILHeadParameters
) -> BagLoss {
    bag.features.values.withUnsafeBufferPointer {
        pass.accumulateGradient(
            bag: $0, mask: bag.mask.map { $0 != 0 }, label: bag.label, dropout: dropout, into: &gradient)
    }
}

/// max |ours − reference| over one tensor, and the largest |reference| in it.
private func difference(_ ours: ArraySlice<Double>, _ reference: [Float]) -> (delta: Double, scale: Double) {
    var delta = 0.0
    var scale = 0.0
    for (a, b) in zip(ours, reference) {
        delta = max(delta, abs(a - Double(b)))
        scale = max(scale, abs(Double(b)))
    }
    return (delta, scale)
}

@Suite("Training: backpropagation and Adam against PyTorch (tools/make_training_fixtures.py)")
struct TrainingParityTests {
    @Test(
        "loss and every parameter gradient equal PyTorch's within 1e-5 of each tensor's scale",
        arguments: ["bag0", "bag2", "bag0_dropout", "four_bags_summed"])
    func gradientsMatchPyTorch(caseName: String) throws {
        let fixture = try TrainingFixture.load()
        let reference = try #require(fixture.gradientCases.first { $0.name == caseName })
        let parameters = try fixture.parameters()
        let pass = CSMILHeadBackpropagation(parameters: parameters)
        var gradient = CSMILHeadParameters(zerosFor: fixture.featureSize)
        let dropout = reference.dropoutKeep.map { DropoutMask(keep: $0) }
        var loss = 0.0
        for (k, index) in reference.bags.enumerated() {
            let result = accumulate(pass, fixture.bags[index], dropout: dropout, into: &gradient)
            loss += result.loss
            #expect(abs(result.probability - reference.probabilities[k]) < 1e-7)
        }
        // p differs from the float64 reference by float32 rounding of W_emb · f (~1e-7), the loss by p's
        // relative error.
        #expect(abs(loss - reference.loss) < 1e-6 * max(1, reference.loss))

        var worstAbsolute = 0.0
        var worstRelative = 0.0
        for entry in gradient.layout {
            let expected = try #require(reference.gradients[entry.name])
            #expect(expected.shape == entry.shape)
            let (delta, scale) = difference(gradient.values[entry.range], expected.values)
            // A gradient that is exactly 0 in exact arithmetic (attention.2.bias: a softmax does not see a
            // shift of all its logits) is rounding noise (~1e-17) on both sides: compared at 1e-13.
            let floor = max(scale, 1e-8)
            worstAbsolute = max(worstAbsolute, delta)
            worstRelative = max(worstRelative, delta / floor)
            #expect(delta <= 1e-5 * floor, "∂\(entry.name): max |Δ| \(delta), scale \(scale)")
        }
        print(
            "gradients \(caseName): loss Δ \(abs(loss - reference.loss)), max |Δ| \(worstAbsolute), "
                + "max |Δ| / tensor scale \(worstRelative)")
    }

    @Test("parameters after Adam steps (one step; three steps with weight decay, four bags each) equal PyTorch's")
    func adamStepsMatchPyTorch() throws {
        let fixture = try TrainingFixture.load()
        for reference in fixture.adam {
            let initial = try fixture.parameters()
            var parameters = initial
            let pass = CSMILHeadBackpropagation(parameters: parameters)
            var optimizer = AdamOptimizer(
                parameterCount: parameters.values.count,
                settings: AdamOptimizer.Settings(
                    learningRate: reference.learningRate, weightDecay: reference.weightDecay))
            for step in 0..<reference.steps {
                var gradient = CSMILHeadParameters(zerosFor: fixture.featureSize)
                var loss = 0.0
                for index in reference.bags {
                    loss += accumulate(pass, fixture.bags[index], dropout: nil, into: &gradient).loss
                }
                #expect(abs(loss - reference.losses[step]) < 1e-6, "\(reference.name) step \(step + 1) loss")
                optimizer.update(&parameters, gradient: gradient)
                pass.load(parameters)
            }
            #expect(optimizer.step == reference.steps)
            var worst = 0.0
            var worstMove = 0.0
            for entry in parameters.layout {
                let expected = try #require(reference.parameters[entry.name])
                let (delta, _) = difference(parameters.values[entry.range], expected.values)
                worst = max(worst, delta)
                for i in entry.range {
                    worstMove = max(worstMove, abs(parameters.values[i] - initial.values[i]))
                }
                #expect(delta <= 1e-5, "\(reference.name) \(entry.name): max |Δ| \(delta)")
            }
            print("adam \(reference.name): max |Δθ| vs PyTorch \(worst) (largest move from the start \(worstMove))")
        }
    }

    @Test("the training forward pass without dropout gives CSMILHead's probability")
    func evalForwardMatchesScoringHead() throws {
        let fixture = try TrainingFixture.load()
        let head = try CSMILHead(stateDict: fixture.weights)
        let pass = CSMILHeadBackpropagation(parameters: try fixture.parameters())
        for bag in fixture.bags {
            let mask = bag.mask.map { $0 != 0 }
            let scored = bag.features.values.withUnsafeBufferPointer {
                head.forward(bag: $0, mask: mask, workspace: CSMILHeadWorkspace())
            }
            let trained = bag.features.values.withUnsafeBufferPointer { pass.probability(bag: $0, mask: mask) }
            // The same numbers but for float32 rounding: the scoring head's GEMM also holds the masked rows,
            // so OpenBLAS may block (and round) W_emb · f differently.
            #expect(abs(scored.probability - trained) < 1e-7)
        }
    }

    @Test("dropout changes the training output and its gradient; evaluation (no mask) stays deterministic")
    func dropoutOnlyInTraining() throws {
        let fixture = try TrainingFixture.load()
        let parameters = try fixture.parameters()
        let pass = CSMILHeadBackpropagation(parameters: parameters)
        let bag = fixture.bags[0]
        var generator = SeededGenerator(seed: 7)
        var probabilities: Set<Double> = []
        for _ in 0..<8 {
            var gradient = CSMILHeadParameters(zerosFor: fixture.featureSize)
            let mask = DropoutMask.draw(using: &generator)
            #expect(mask.keep.count == 32)
            probabilities.insert(accumulate(pass, bag, dropout: mask, into: &gradient).probability)
            // Dropped units get no gradient in fc6.3.
            let outputGradient = try #require(gradient["fc6.3.weight"])
            for (k, kept) in mask.keep.enumerated() where !kept {
                #expect(outputGradient[outputGradient.startIndex + k] == 0)
            }
        }
        #expect(probabilities.count > 1)
        let evaluations = (0..<3).map { _ in
            bag.features.values.withUnsafeBufferPointer { pass.probability(bag: $0, mask: bag.mask.map { $0 != 0 }) }
        }
        #expect(Set(evaluations).count == 1)
        // The same seed draws the same masks.
        var first = SeededGenerator(seed: 11)
        var second = SeededGenerator(seed: 11)
        #expect(DropoutMask.draw(using: &first) == DropoutMask.draw(using: &second))
        // About half the units are dropped over many draws.
        var kept = 0
        for _ in 0..<200 { kept += DropoutMask.draw(using: &first).keep.count { $0 } }
        #expect(abs(Double(kept) / 6400 - 0.5) < 0.03)
    }

    @Test("p outside [1e-5, 1 − 1e-5] is clamped in the loss and passes no gradient, as torch.clamp")
    func clampedLossHasNoGradient() throws {
        let fixture = try TrainingFixture.load()
        var weights = fixture.weights
        weights.set("fc6.3.bias", Tensor(shape: [1], values: [-40]))
        let pass = CSMILHeadBackpropagation(parameters: try CSMILHeadParameters(stateDict: weights))
        var gradient = CSMILHeadParameters(zerosFor: fixture.featureSize)
        let result = accumulate(pass, fixture.bags[0], dropout: nil, into: &gradient)
        #expect(result.probability < 1e-10)
        #expect(abs(result.loss - -log(1e-5)) < 1e-12)
        #expect(gradient.values.allSatisfy { $0 == 0 })
        #expect(BernoulliLoss.loss(probability: 0, label: 0) == -log(1 - 1e-5))
        #expect(BernoulliLoss.logitGradient(probability: 0.25, label: 1) == -0.75)
    }

    @Test("the parameter layout is the state_dict of spec §4, and a state_dict round-trips through it")
    func parameterLayout() throws {
        let fixture = try TrainingFixture.load()
        let parameters = try fixture.parameters()
        let layout = CSMILHeadParameters.layout(featureSize: 16)
        #expect(
            layout.map(\.name) == [
                "embedding_net.0.weight", "embedding_net.0.bias", "res_attention.0.weight", "res_attention.0.bias",
                "res_attention.2.weight", "res_attention.2.bias", "attention.0.weight", "attention.0.bias",
                "attention.2.weight", "attention.2.bias", "fc6.0.weight", "fc6.0.bias", "fc6.3.weight", "fc6.3.bias",
            ])
        #expect(layout.last!.range.upperBound == parameters.values.count)
        #expect(parameters.values.count == 64 * 16 + 64 + 3 * (32 * 64 + 32 + 32 + 1))
        let roundTrip = parameters.stateDict()
        for name in roundTrip.names { #expect(roundTrip[name] == fixture.weights[name]) }

        // PyTorch's default initialisation bounds: ±1/√fan_in.
        let initial = CSMILHeadParameters(featureSize: 16, seed: 3)
        #expect(initial["embedding_net.0.weight"]!.allSatisfy { abs($0) <= 0.25 })
        #expect(initial["embedding_net.0.bias"]!.allSatisfy { abs($0) <= 0.25 })
        #expect(initial["attention.0.weight"]!.allSatisfy { abs($0) <= 0.125 })
        #expect(initial["fc6.3.weight"]!.allSatisfy { abs($0) <= 1 / 32.0.squareRoot() })
        #expect(initial["fc6.3.weight"]!.contains { abs($0) > 0.1 })
        #expect(CSMILHeadParameters(featureSize: 16, seed: 3) == initial)
    }
}
