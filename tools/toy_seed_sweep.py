#!/usr/bin/env python3
"""How the toy results depend on the heads' initial weights: csmil train with initialisation seeds 1…N on the
cached features of tools/toy_experiment.sh, then the scale weights r of the held-out slides' tiles.

    tools/toy_seed_sweep.py CSMIL WORK [SEEDS] [EPOCHS]

WORK is tools/toy_experiment.sh's folder (WORK/<kind>/features, labels.csv, test/*.svs and their .truth.json);
the held-out slides' features are embedded once into WORK/<kind>/features-test with csmil embed-slides. For
each dataset and seed it prints csmil train's pooled out-of-fold AUC, how many heads csmil train turned over
(the sign of r is a convention, see docs/toy-datasets.md) and, for the held-out tiles in positive regions, the
median softmax scale weight at 20x / 10x / 5x (the softmax of r averaged over the heads, as csmil score reports it)
and the shift of the raw r against the tiles of negative slides; and, for comparison, the same median under the
label-free sign rule csmil train used before (each head's mean r over its training tiles positive). NumPy, and
PyTorch to read the heads (Debian python3-numpy, python3-torch).
"""
import csv
import json
import os
import struct
import subprocess
import sys

import numpy as np

SCALES = ["20x", "10x", "5x"]


def safetensors(path):
    """The float32 tensors of a safetensors file."""
    with open(path, "rb") as file:
        size = struct.unpack("<Q", file.read(8))[0]
        header = json.loads(file.read(size))
        data = file.read()
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(entry["shape"])
    return out


def torch_state_dict(path):
    """The tensors of a head csmil train wrote ({'state_dict': {...}} in a torch.save zip), as NumPy arrays."""
    import torch  # Debian python3-torch, only for reading the heads

    return {name: tensor.numpy() for name, tensor in torch.load(path, weights_only=True)["state_dict"].items()}


def scale_weights(head, features):
    """r[n][s] of spec §4 for features [n, 3, D]."""
    w = head["embedding_net.0.weight"][:, :, 0, 0]
    e = np.maximum(features @ w.T + head["embedding_net.0.bias"], 0)
    hidden = np.maximum(e @ head["res_attention.0.weight"][:, :, 0, 0].T + head["res_attention.0.bias"], 0)
    return (hidden @ head["res_attention.2.weight"][:, :, 0, 0].T + head["res_attention.2.bias"])[..., 0]


def softmax(r):
    e = np.exp(r - r.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def held_out(csmil, work, kind):
    """(features [n, 3, D], is the tile in a positive region, is the slide positive) of every held-out tile."""
    folder = os.path.join(work, kind, "features-test")
    slides = sorted(f for f in os.listdir(os.path.join(work, kind, "test")) if f.endswith(".svs"))
    missing = [s for s in slides if not os.path.exists(os.path.join(folder, s[:-4] + ".npy"))]
    if missing:
        backbones = os.path.join(work, kind, "model")
        subprocess.run([csmil, "embed-slides", "--arch", "resnet18",
                        "--backbone-20x", os.path.join(backbones, "backbone_20x.safetensors"),
                        "--backbone-10x", os.path.join(backbones, "backbone_10x.safetensors"),
                        "--backbone-5x", os.path.join(backbones, "backbone_5x.safetensors"),
                        "--out", folder, "--log-level", "warning"]
                       + [os.path.join(work, kind, "test", s) for s in missing], check=True, stdout=subprocess.DEVNULL)
    features, in_region, positive_slide = [], [], []
    for slide in slides:
        stem = slide[:-4]
        truth = json.load(open(os.path.join(work, kind, "test", stem + ".truth.json")))
        tiles = np.loadtxt(os.path.join(folder, stem + ".tiles.csv"), delimiter=",", skiprows=1, ndmin=2)
        x = np.load(os.path.join(folder, stem + ".npy")).reshape(len(tiles), 3, -1)
        for row in tiles:
            cx, cy = row[2] + row[4] / 2, row[3] + row[5] / 2
            in_region.append(any(r["positive"] and r["x"] <= cx < r["x"] + r["width"]
                                 and r["y"] <= cy < r["y"] + r["height"] for r in truth["regions"]))
        features.append(x)
        positive_slide += [truth["label"] == "positive"] * len(tiles)
    return np.concatenate(features), np.array(in_region), np.array(positive_slide)


def main():
    csmil, work = sys.argv[1], sys.argv[2]
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 100  # spec §6: 100
    print("| dataset | initialisation seed | pooled out-of-fold AUC | heads turned over "
          "| median softmax scale weight 20x / 10x / 5x (positive regions, held out) | raw r shift vs negative slides "
          "| highest | under the mean-r rule | highest |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ["micro", "macro"]:
        if not os.path.exists(os.path.join(work, kind, "labels.csv")):
            continue
        features, in_region, positive_slide = held_out(csmil, work, kind)
        with open(os.path.join(work, kind, "labels.csv")) as file:
            folds = {row["slide"]: int(row["fold"]) for row in csv.DictReader(file)}
        training = {slide: np.load(os.path.join(work, kind, "features", slide + ".npy")).reshape(-1, 3, features.shape[2])
                    for slide in folds}
        for seed in range(1, seeds + 1):
            out = os.path.join(work, kind, "sweep", f"seed-{seed}" + ("" if epochs == 100 else f"-epochs-{epochs}"))
            result = subprocess.run(
                [csmil, "train", "--features", os.path.join(work, kind, "features"),
                 "--labels", os.path.join(work, kind, "labels.csv"), "--out", out, "--arch", "resnet18",
                 "--backbone-20x", "backbone_20x.safetensors", "--backbone-10x", "backbone_10x.safetensors",
                 "--backbone-5x", "backbone_5x.safetensors", "--normalize-features",
                 "--initialisation-seed", str(seed), "--epochs", str(epochs), "--log-level", "warning"],
                check=True, capture_output=True, text=True).stdout
            oof = result.strip().splitlines()[-1].split("pooled out-of-fold ")[-1]
            turned = result.count("sign turned over")
            norm = safetensors(os.path.join(out, "feature_normalization.safetensors"))
            x = (features - norm["mean"]) / norm["std"]
            names = sorted(os.listdir(os.path.join(out, "heads")))  # N_model_E.pth: the head of fold N
            heads = [torch_state_dict(os.path.join(out, "heads", name)) for name in names]
            r = np.stack([scale_weights(head, x) for head in heads])  # [heads, n, 3]
            # The earlier rule: each head oriented so that its mean r over its own training tiles is positive.
            signs = [np.sign(scale_weights(head, (np.concatenate(
                [training[s] for s in folds if folds[s] != int(name.split("_")[0])]) - norm["mean"]) / norm["std"]).mean())
                for head, name in zip(heads, names)]
            earlier = np.median(softmax((r * np.array(signs)[:, None, None]).mean(axis=0))[in_region & positive_slide],
                                axis=0)
            shown = softmax(r.mean(axis=0))  # as SlideScorer: softmax of the mean over heads
            positive = in_region & positive_slide
            median = np.median(shown[positive], axis=0)
            shift = r.mean(axis=0)[positive].mean(axis=0) - r.mean(axis=0)[~positive_slide].mean(axis=0)
            print(f"| {kind} | {seed} | {oof} | {turned} of {len(heads)} | "
                  + " / ".join(f"{v:.2f}" for v in median) + " | "
                  + " / ".join(f"{v:+.2f}" for v in shift) + f" | {SCALES[int(np.argmax(median))]} | "
                  + " / ".join(f"{v:.2f}" for v in earlier) + f" | {SCALES[int(np.argmax(earlier))]} |", flush=True)


if __name__ == "__main__":
    main()
