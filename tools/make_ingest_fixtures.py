#!/usr/bin/python3
"""Writes the small slide fixtures of Tests/IngestTests/Fixtures.

Run with Debian's Python (python3-tifffile, python3-numpy, python3-pil):

    /usr/bin/python3 tools/make_ingest_fixtures.py Tests/IngestTests/Fixtures

Every slide is a tiled TIFF (256 x 256 tiles, 64 x 64 on small levels; deflate) that
OpenSlide 3.4's generic-tiff or Aperio reader opens. Tissue is a few ellipses of H&E-like colour with a periodic noise texture
(16 x 16 pixels, so deflate keeps the files small) on a faintly tinted white background; the
true tissue mask is written beside the slide as a PNG at level-0 resolution.

| file                         | reader       | level 0     | MPP   | levels (downsample) |
|------------------------------|--------------|-------------|-------|---------------------|
| ellipses-20x.tiff            | generic-tiff | 3072 x 2048 | 0.5   | 1, 4, 16            |
| blank-20x.tiff               | generic-tiff | 1024 x 768  | 0.5   | 1, 4                |
| no-resolution.tiff           | generic-tiff | 512 x 512   | none  | 1                   |
| aperio-40x.svs               | aperio       | 1024 x 768  | 0.25  | 1, 2, 8 + thumbnail, label |
| aperio-40x-no-ds2.svs        | aperio       | 1024 x 768  | 0.25  | 1, 4                |
| aperio-objective-only.svs    | aperio       | 512 x 512   | none (AppMag 20) | 1        |

ellipses-20x-region.png is level 0 of ellipses-20x.tiff at x 1000..1063, y 600..663, for an
exact region-read test.
"""

import os
import sys

import numpy as np
import tifffile
from PIL import Image



def tile_for(level):
    """256 x 256 tiles, or 64 x 64 for levels smaller than a tile: OpenSlide 3.4 reads a
    non-JPEG tile larger than its level as transparent (libtiff's RGBA reader refuses it)."""
    return (256, 256) if min(level.shape[:2]) >= 256 else (64, 64)
BACKGROUND = np.array([243, 241, 245], dtype=np.int16)
# (centre x, centre y, semi-axis x, semi-axis y, angle in degrees, RGB)
ELLIPSES = [
    (900, 850, 620, 430, 20, (214, 120, 170)),   # eosin-pink
    (2250, 1200, 520, 640, -30, (150, 90, 170)),  # haematoxylin-purple
    (1500, 1750, 300, 180, 0, (225, 150, 190)),
]


def noise_texture(rng, amplitude):
    patch = rng.integers(-amplitude, amplitude + 1, size=(16, 16, 3), dtype=np.int16)
    return patch


def textured(height, width, patch):
    reps = (height // 16 + 1, width // 16 + 1, 1)
    return np.tile(patch, reps)[:height, :width]


def ellipse_truth(height, width, ellipses):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    truth = np.zeros((height, width), dtype=bool)
    colour = np.zeros((height, width, 3), dtype=np.int16)
    for cx, cy, ax, ay, angle, rgb in ellipses:
        t = np.deg2rad(angle)
        dx, dy = xx - cx, yy - cy
        u = dx * np.cos(t) + dy * np.sin(t)
        v = -dx * np.sin(t) + dy * np.cos(t)
        inside = (u / ax) ** 2 + (v / ay) ** 2 <= 1.0
        truth |= inside
        colour[inside] = rgb
    return truth, colour


def slide_pixels(height, width, ellipses, seed):
    rng = np.random.default_rng(seed)
    truth, colour = ellipse_truth(height, width, ellipses)
    image = np.broadcast_to(BACKGROUND, (height, width, 3)).astype(np.int16)
    image = image + textured(height, width, noise_texture(rng, 2))
    tissue = colour + textured(height, width, noise_texture(rng, 14))
    image[truth] = tissue[truth]
    return np.clip(image, 0, 255).astype(np.uint8), truth


def downsample(image, factor):
    """Block mean, as a scanner's pyramid would hold (edges: partial blocks averaged)."""
    h, w = image.shape[:2]
    oh, ow = -(-h // factor), -(-w // factor)
    padded = np.zeros((oh * factor, ow * factor, 3), dtype=np.float64)
    counts = np.zeros((oh * factor, ow * factor, 1), dtype=np.float64)
    padded[:h, :w] = image
    counts[:h, :w] = 1
    sums = padded.reshape(oh, factor, ow, factor, 3).sum(axis=(1, 3))
    n = counts.reshape(oh, factor, ow, factor, 1).sum(axis=(1, 3))
    return np.round(sums / n).astype(np.uint8)


def resolution_args(mpp):
    if mpp is None:
        return {}
    per_cm = 10000.0 / mpp
    return {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}


def write_generic(path, image, factors, mpp):
    with tifffile.TiffWriter(path) as tif:
        for index, factor in enumerate(factors):
            level = image if factor == 1 else downsample(image, factor)
            tif.write(
                level, tile=tile_for(level), compression="zlib", photometric="rgb", metadata=None,
                subfiletype=0 if index == 0 else 1, **resolution_args(mpp),
            )


def aperio_description(width, height, app_mag, mpp):
    fields = [f"AppMag = {app_mag}"]
    if mpp is not None:
        fields.append(f"MPP = {mpp}")
    return (f"Aperio Image Library v12.0.15\r\n{width}x{height} [0,0 {width}x{height}] (256x256) "
            "ZIP/RGB|" + "|".join(fields))


def write_aperio(path, image, factors, app_mag, mpp, associated=False):
    height, width = image.shape[:2]
    with tifffile.TiffWriter(path) as tif:
        for index, factor in enumerate(factors):
            level = image if factor == 1 else downsample(image, factor)
            description = aperio_description(width, height, app_mag, mpp) if index == 0 else (
                f"Aperio Image Library v12.0.15\r\n{width}x{height} -> {level.shape[1]}x{level.shape[0]}")
            tif.write(level, tile=tile_for(level), compression="zlib", photometric="rgb", metadata=None,
                      description=description, subfiletype=0 if index == 0 else 1)
            if index == 0 and associated:
                # Aperio keeps the thumbnail as the second (stripped) directory.
                thumb = downsample(image, 8)
                tif.write(thumb, compression="zlib", photometric="rgb", metadata=None, rowsperstrip=16,
                          description=f"Aperio Image Library v12.0.15\r\n{width}x{height} -> "
                                      f"{thumb.shape[1]}x{thumb.shape[0]}")
        if associated:
            label = np.zeros((60, 80, 3), dtype=np.uint8)
            label[:, :, 0] = 200
            label[20:40, 20:60] = (10, 20, 30)
            tif.write(label, compression="zlib", photometric="rgb", metadata=None, rowsperstrip=16,
                      subfiletype=1, description="Aperio Image Library v12.0.15\nlabel 80x60")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/IngestTests/Fixtures"
    os.makedirs(out, exist_ok=True)

    image, truth = slide_pixels(2048, 3072, ELLIPSES, seed=1)
    write_generic(os.path.join(out, "ellipses-20x.tiff"), image, [1, 4, 16], 0.5)
    Image.fromarray(truth.astype(np.uint8) * 255).convert("1").save(
        os.path.join(out, "ellipses-20x-truth.png"), optimize=True)
    Image.fromarray(image[600:664, 1000:1064]).save(os.path.join(out, "ellipses-20x-region.png"))

    blank, _ = slide_pixels(768, 1024, [], seed=2)
    write_generic(os.path.join(out, "blank-20x.tiff"), blank, [1, 4], 0.5)

    small, _ = slide_pixels(512, 512, [(256, 256, 180, 120, 10, (214, 120, 170))], seed=3)
    write_generic(os.path.join(out, "no-resolution.tiff"), small, [1], None)
    write_aperio(os.path.join(out, "aperio-objective-only.svs"), small, [1], 20, None)

    forty, _ = slide_pixels(768, 1024, [(500, 380, 300, 200, 15, (214, 120, 170))], seed=4)
    write_aperio(os.path.join(out, "aperio-40x.svs"), forty, [1, 2, 8], 40, 0.25, associated=True)
    write_aperio(os.path.join(out, "aperio-40x-no-ds2.svs"), forty, [1, 4], 40, 0.25)


if __name__ == "__main__":
    main()
