#!/usr/bin/env python3
"""The numbers of tools/toy_experiment.sh: slide-level AUC of the held-out slides and the softmax scale
weights of the tiles in positive regions, from csmil score's reports and csmil synth's truth files.

    tools/toy_results.py WORK [PNG]

WORK is the experiment folder (WORK/<kind>/scores.jsonl, WORK/<kind>/test/*.truth.json); PNG, when
given, receives a box plot of the scale weights (numpy and matplotlib; Debian python3-numpy and
python3-matplotlib). Prints a Markdown summary and writes WORK/results.json.
"""
import json
import os
import sys

import numpy as np

SCALES = ["20x", "10x", "5x"]


def auc(labels, scores):
    """ROC AUC as the probability that a positive outscores a negative (ties count half)."""
    labels, scores = np.asarray(labels, bool), np.asarray(scores, float)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def region_of(truth, x, y):
    for region in truth["regions"]:
        if region["x"] <= x < region["x"] + region["width"] and region["y"] <= y < region["y"] + region["height"]:
            return region
    return None


def sees_ring(truth, x, y, tile):
    """Whether the tile's 5x view (1024 px at 20x, centred on the tile) holds a positive ring's centre."""
    half = 2 * tile  # 512 px at 20x; level-0 px equal 20x px on these 20x slides
    return any(
        ring["positive"] and abs(ring["outer"]["center_x"] - x) <= half and abs(ring["outer"]["center_y"] - y) <= half
        for ring in truth.get("rings", [])
    )


def analyse(work, kind):
    lines = [json.loads(line) for line in open(os.path.join(work, kind, "scores.jsonl")) if line.strip()]
    labels, probabilities, slides = [], [], []
    positive_tiles, negative_tiles, ring_tiles = [], [], []
    positive_raw, negative_raw = [], []
    failed = [line["slide"] for line in lines if line["status"] != "scored"]
    for line in lines:
        if line["status"] != "scored":
            continue
        slide = line["slide"]
        truth = json.load(open(slide[: -len(".svs")] + ".truth.json"))
        label = truth["label"] == "positive"
        labels.append(label)
        probabilities.append(line["probability"])
        slides.append((os.path.basename(slide), label, line["probability"]))
        geojson = json.load(open(os.path.join(os.path.dirname(line["report"]), "tiles.geojson")))
        for feature in geojson["features"]:
            ring = feature["geometry"]["coordinates"][0]
            xs, ys = [p[0] for p in ring], [p[1] for p in ring]
            x, y = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
            weights = feature["properties"]["scale_attention"]
            raw = feature["properties"]["scale_weights"]
            region = region_of(truth, x, y)
            if label and region is not None and region["positive"]:
                positive_tiles.append(weights)
                positive_raw.append(raw)
                if kind == "macro" and sees_ring(truth, x, y, max(xs) - min(xs)):
                    ring_tiles.append(weights)
            elif not label:
                negative_tiles.append(weights)
                negative_raw.append(raw)
    result = {
        "kind": kind,
        "slides": len(labels),
        "positives": int(sum(labels)),
        "failed": failed,
        "auc": auc(labels, probabilities),
        "accuracy_at_0_5": float(np.mean([(p >= 0.5) == l for l, p in zip(labels, probabilities)])),
        "per_slide": slides,
    }
    if positive_raw and negative_raw:
        # The raw scale weights r (mean over heads), whose sign is a convention (csmil train orients each
        # head so that the scale whose r differs most between positive and negative training slides rises
        # on the positive ones): how much each scale's r moves on the anomaly.
        positive_mean = np.mean(positive_raw, axis=0)
        negative_mean = np.mean(negative_raw, axis=0)
        result["raw_scale_weights"] = {
            "positive_region_mean": [float(v) for v in positive_mean],
            "negative_slide_mean": [float(v) for v in negative_mean],
            "shift": [float(v) for v in positive_mean - negative_mean],
        }
    for name, tiles in [("positive_region_tiles", positive_tiles), ("negative_slide_tiles", negative_tiles),
                        ("positive_ring_tiles", ring_tiles)]:
        if not tiles:
            continue
        array = np.asarray(tiles, float)
        result[name] = {
            "count": len(tiles),
            "median": [float(v) for v in np.median(array, axis=0)],
            "mean": [float(v) for v in array.mean(axis=0)],
            "quartiles": [[float(v) for v in np.percentile(array[:, s], [25, 75])] for s in range(3)],
            "highest_share": [float(v) for v in np.bincount(array.argmax(axis=1), minlength=3) / len(tiles)],
        }
        result[name + "_values"] = array
    return result


def main():
    work = sys.argv[1]
    png = sys.argv[2] if len(sys.argv) > 2 else None
    results = [analyse(work, kind) for kind in ["micro", "macro"] if os.path.exists(os.path.join(work, kind, "scores.jsonl"))]
    print("| dataset | held-out slides (pos.) | slide AUC | accuracy at 0.5 | tiles in positive regions "
          "| median softmax scale weight 20x / 10x / 5x | share of tiles whose highest weight is 20x / 10x / 5x |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        rows = [("positive regions", r.get("positive_region_tiles")), ("negative slides", r.get("negative_slide_tiles"))]
        if "positive_ring_tiles" in r:
            rows.insert(1, ("5x view holds a positive ring", r["positive_ring_tiles"]))
        for index, (what, stats) in enumerate(rows):
            if stats is None:
                continue
            head = (f"{r['kind']} | {r['slides']} ({r['positives']}) | {r['auc']:.3f} | {r['accuracy_at_0_5']:.3f}"
                    if index == 0 else " | | | ")
            print(f"| {head} | {what}: {stats['count']} | "
                  + " / ".join(f"{v:.2f}" for v in stats["median"]) + " | "
                  + " / ".join(f"{v:.2f}" for v in stats["highest_share"]) + " |")
        if "raw_scale_weights" in r:
            raw = r["raw_scale_weights"]
            print(f"| | | | | raw r 20x / 10x / 5x (mean over heads): positive regions "
                  + " / ".join(f"{v:.2f}" for v in raw["positive_region_mean"]) + ", negative slides "
                  + " / ".join(f"{v:.2f}" for v in raw["negative_slide_mean"]) + ", shift "
                  + " / ".join(f"{v:+.2f}" for v in raw["shift"]) + " | |")
        if r["failed"]:
            print(f"\n{r['kind']}: failed slides: {r['failed']}")
    serialisable = [{k: v for k, v in r.items() if not k.endswith("_values")} for r in results]
    with open(os.path.join(work, "results.json"), "w") as file:
        json.dump(serialisable, file, indent=1)

    if png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        panels = []
        for r in results:
            if "positive_region_tiles_values" in r:
                panels.append((f"{r['kind']}-anomaly: tiles in positive regions (n={r['positive_region_tiles']['count']})",
                               r["positive_region_tiles_values"]))
            if "positive_ring_tiles_values" in r:
                panels.append((f"{r['kind']}-anomaly: 5x view holds a positive ring (n={r['positive_ring_tiles']['count']})",
                               r["positive_ring_tiles_values"]))
        figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
        for axis, (title, values) in zip(axes[0], panels):
            axis.boxplot([values[:, s] for s in range(3)], labels=SCALES, showfliers=False)
            axis.set_ylim(0, 1)
            axis.set_title(title, fontsize=9)
            axis.set_ylabel("softmax scale weight")
            for s in range(3):
                axis.text(s + 1, 0.96, f"{np.median(values[:, s]):.2f}", ha="center", fontsize=8)
        figure.suptitle("CS-MIL scale attention on held-out toy slides (csmil: seeded ResNet-18 backbones, "
                     "per-scale standardised features)", fontsize=10)
        figure.tight_layout()
        figure.savefig(png, dpi=110)
        print(f"\nbox plot: {png}")


if __name__ == "__main__":
    main()
