import Testing

@testable import Ingest

@Suite("SlideResolution: magnification and how 20x pixels are made")
struct SlideResolutionTests {
    @Test("a 20x generic TIFF takes its MPP from the TIFF resolution tags and reads level 0 as is")
    func twentyXFromTIFFTags() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        let resolution = try SlideResolution(slide: slide)
        #expect(resolution.baseMPP == 0.5)
        #expect(resolution.magnification == 20)
        #expect(resolution.source == "tiff.XResolution")
        #expect(resolution.plan == .level(0))
        #expect(resolution.level0PixelsPerTargetPixel == 1)
        #expect(resolution.describe.contains("20x"))
        #expect(resolution.describe.contains("0.5 µm/px"))
        #expect(resolution.describe.contains("tiff.XResolution"))
    }

    @Test("a 40x slide reads its downsample-2 level as 20x")
    func fortyXWithDownsampleTwo() throws {
        let slide = try Slide(path: SlideFixtures.path("aperio-40x.svs"))
        let resolution = try SlideResolution(slide: slide)
        #expect(resolution.source == "openslide.mpp-x")
        #expect(resolution.baseMPP == 0.25)
        #expect(resolution.magnification == 40)
        #expect(resolution.plan == .level(1))
        #expect(resolution.readLevel == 1)
        #expect(resolution.level0PixelsPerTargetPixel == 2)
        #expect(resolution.targetSize(level0Width: 1024, level0Height: 768) == (512, 384))
        #expect(resolution.describe.contains("level 1"))
    }

    @Test("a 40x slide without a downsample-2 level averages 2 × 2 blocks of level 0")
    func fortyXWithoutDownsampleTwo() throws {
        let slide = try Slide(path: SlideFixtures.path("aperio-40x-no-ds2.svs"))
        let resolution = try SlideResolution(slide: slide)
        #expect(resolution.plan == .blockMean2x2)
        #expect(resolution.readLevel == 0)
        #expect(resolution.level0PixelsPerTargetPixel == 2)
        #expect(resolution.describe.contains("2×2 block mean"))
    }

    @Test("the downsample-2 level may be off by 1 %, not more")
    func downsampleTolerance() throws {
        let near = try SlideResolution(
            properties: ["openslide.mpp-x": "0.2527"], downsamples: [1, 2.0152, 8.06], file: "near.svs")
        #expect(near.plan == .level(1))
        #expect(near.level0PixelsPerTargetPixel == 2.0152)
        let far = try SlideResolution(
            properties: ["openslide.mpp-x": "0.2527"], downsamples: [1, 2.03, 8.06], file: "far.svs")
        #expect(far.plan == .blockMean2x2)
    }

    @Test("a slide with only an objective power is 20x at 0.5 µm/px")
    func objectivePowerOnly() throws {
        let slide = try Slide(path: SlideFixtures.path("aperio-objective-only.svs"))
        let resolution = try SlideResolution(slide: slide)
        #expect(resolution.source == "openslide.objective-power")
        #expect(resolution.baseMPP == 0.5)
        #expect(resolution.magnification == 20)
        #expect(resolution.plan == .level(0))
    }

    @Test("vendor keys are used in order when OpenSlide's own keys are missing; MPP wins over power")
    func fallbackOrder() throws {
        let aperio = try SlideResolution(properties: ["aperio.AppMag": "40"], downsamples: [1, 4], file: "a.svs")
        #expect(aperio.source == "aperio.AppMag")
        #expect(aperio.plan == .blockMean2x2)
        let hamamatsu = try SlideResolution(
            properties: ["hamamatsu.SourceLens": "20"], downsamples: [1, 4], file: "h.ndpi")
        #expect(hamamatsu.source == "hamamatsu.SourceLens")
        #expect(hamamatsu.baseMPP == 0.5)
        let both = try SlideResolution(
            properties: ["openslide.mpp-x": "0.4527", "openslide.objective-power": "40"], downsamples: [1],
            file: "b.ndpi")
        #expect(both.source == "openslide.mpp-x")
        #expect(both.plan == .level(0))  // Hamamatsu 20x: 0.4527 µm/px is within 20 %
        let junk = try SlideResolution(
            properties: ["openslide.mpp-x": "0", "aperio.AppMag": "abc", "hamamatsu.SourceLens": "20"],
            downsamples: [1], file: "j.svs")
        #expect(junk.source == "hamamatsu.SourceLens")
    }

    @Test("no resolution metadata is refused unless assume_mpp is given")
    func noMetadata() throws {
        let path = SlideFixtures.path("no-resolution.tiff")
        let slide = try Slide(path: path)
        let error = #expect(throws: SlideError.self) { _ = try SlideResolution(slide: slide) }
        #expect(error?.code == .noResolution)
        #expect(error?.file == path)
        #expect(error?.fix.contains("assume_mpp") == true)
        let assumed = try SlideResolution(slide: slide, assumeMPP: 0.25)
        #expect(assumed.source == "assume_mpp")
        #expect(assumed.plan == .blockMean2x2)
        #expect(try SlideResolution(slide: slide, assumeMPP: 0.5).plan == .level(0))
    }

    @Test("other resolutions read the level closest to 0.5 µm/px and resample it")
    func otherResolutions() throws {
        let tenX = try SlideResolution(properties: ["openslide.mpp-x": "1.0"], downsamples: [1, 4], file: "10x.svs")
        #expect(tenX.plan == .resample(level: 0, levelPixelsPerTargetPixel: 0.5))
        #expect(tenX.level0PixelsPerTargetPixel == 0.5)
        #expect(tenX.magnification == 10)
        let eightyX = try SlideResolution(
            properties: ["openslide.mpp-x": "0.125"], downsamples: [1, 4, 16], file: "80x.svs")
        #expect(eightyX.plan == .resample(level: 1, levelPixelsPerTargetPixel: 1))
        #expect(eightyX.level0PixelsPerTargetPixel == 4)
        let sixty = try SlideResolution(properties: ["openslide.mpp-x": "0.17"], downsamples: [1, 4], file: "60x.svs")
        guard case .resample(let level, let scale) = sixty.plan else {
            Issue.record("expected a resampling plan, got \(sixty.plan)")
            return
        }
        #expect(level == 1)
        #expect(abs(scale - 0.5 / 0.68) < 1e-9)
        #expect(sixty.describe.contains("resampled"))
    }
}
