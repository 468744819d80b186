#!/usr/bin/python3
"""Reference features for the ResNet parity tests (Tests/InferenceTests/ResNetTests.swift).

Builds torchvision ResNet-18/34/50 with weights drawn from csmil's documented seeded
generator (Sources/Inference/Backbone/SeededWeights.swift: counter-based SplitMix64, tensors
filled in state_dict order), runs them in eval mode on seeded random u8 images of 256, 512 and
1024 pixels preprocessed exactly as the reference pipeline does (ToTensor, bilinear Resize to
256 without antialiasing, ImageNet Normalize), and writes the features. The Swift test
regenerates the same weights and images bit for bit, so no weights are committed.

Run with Debian's PyTorch:  /usr/bin/python3 tools/make_resnet_fixtures.py
"""
import json
import math
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests/InferenceTests/Fixtures/resnet"
WEIGHT_SEED = 20261127
IMAGE_SEED = 42
IMAGES_PER_SIDE = 2
SIDES = (256, 512, 1024)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(seed, start, count):
    """Outputs start … start+count-1 of the counter-based SplitMix64 stream `seed`."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(start, start + count, dtype=np.uint64) + np.uint64(1)) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(seed, start, count):
    return (splitmix64(seed, start, count) >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def seeded_state_dict(model, seed):
    """The weights SeededWeights.resnet(arch, seed) makes, as a state_dict for `model`."""
    state = {}
    counter = 0
    for name, tensor in model.state_dict().items():
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            continue
        count = tensor.numel()
        u = uniform(seed, counter, count)
        counter += count
        if tensor.dim() == 4:
            fan_in = tensor.shape[1] * tensor.shape[2] * tensor.shape[3]
            values = (np.float32(2) * u - np.float32(1)) * np.float32(math.sqrt(6.0 / fan_in))
        elif name.endswith(".weight") or name.endswith(".running_var"):
            values = u + np.float32(0.5)
        else:
            values = (np.float32(2) * u - np.float32(1)) * np.float32(0.1)
        state[name] = torch.from_numpy(values.reshape(tuple(tensor.shape)))
    return state


def seeded_images(count, side, seed):
    """SeededWeights.images(count:size:seed:): byte j = top 8 bits of output j."""
    raw = (splitmix64(seed, 0, count * side * side * 3) >> np.uint64(56)).astype(np.uint8)
    return raw.reshape(count, side, side, 3)


def preprocess(images):
    """The reference: u8 → [0, 1] floats, Resize([256]) bilinear without antialias, Normalize."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != 256:
        x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False, antialias=False)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    meta = {"weight_seed": WEIGHT_SEED, "image_seed": IMAGE_SEED, "images_per_side": IMAGES_PER_SIDE,
            "sides": list(SIDES), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "architectures": {}}
    for arch in ("resnet18", "resnet34", "resnet50"):
        model = getattr(torchvision.models, arch)(weights=None)
        missing, unexpected = model.load_state_dict(seeded_state_dict(model, WEIGHT_SEED), strict=False)
        assert all(k.startswith("fc.") or k.endswith("num_batches_tracked") for k in missing), missing
        assert not unexpected
        model.fc = torch.nn.Identity()
        model.eval()
        features = []
        with torch.no_grad():
            for index, side in enumerate(SIDES):
                images = seeded_images(IMAGES_PER_SIDE, side, IMAGE_SEED + index)
                features.append(model(preprocess(images)).numpy().astype("<f4"))
        features = np.stack(features)  # [sides, images, D]
        (OUT / f"{arch}.f32").write_bytes(features.tobytes())
        conv1 = model.conv1.weight.detach().numpy().ravel()
        meta["architectures"][arch] = {
            "feature_size": int(features.shape[-1]),
            "conv1_first_values": [float(v) for v in conv1[:4]],
            "max_abs_feature": float(np.abs(features).max()),
        }
        print(arch, features.shape, "max |feature|", float(np.abs(features).max()))
    (OUT / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
