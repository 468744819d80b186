#!/usr/bin/env bash
# The paper's toy datasets (model spec §7), end to end with csmil alone, then the numbers.
#
#   tools/toy_experiment.sh [PATH-TO-CSMIL]
#
# For each of the micro-anomaly and macro-anomaly datasets:
#   1. csmil seeded-backbones  three untrained ResNet-18s from seed 1 (BACKBONES=plain, the demo model's), or
#      seeded-backbones --calibrate  BatchNorm calibrated on four plain tissue slides (BACKBONES=calibrated)
#   2. csmil synth             TRAIN training and TEST held-out slides, half positive, SIDE px square
#   3. csmil embed-slides      the training slides' features, cached per slide ([tiles, 3·512])
#   4. csmil train             FOLDS heads (fold k validates on every FOLDS-th slide), EPOCHS epochs, with
#                              --normalize-features (per-scale feature standardisation; NORMALIZE=0: without)
#   5. csmil score             the held-out slides through the real pipeline (reports, tiles.geojson)
# and then tools/toy_results.py: slide-level AUC on the held-out slides, the softmax scale weights of
# the tiles in positive regions (from tiles.geojson and the truth beside each slide), docs/toy-datasets.png.
#
# Settings (environment): WORK (default ${TMPDIR:-/tmp}/csmil-toy), TRAIN (32), TEST (16), SIDE (3072 for
# micro, 4096 for macro), FOLDS (4), EPOCHS (100), NORMALIZE (1), BACKBONES (plain), KINDS ("micro macro"), DEMO_MODEL (empty; a folder
# to train the micro model into instead of WORK/micro/model: models/demo is made with DEMO_MODEL=models/demo).
# Everything is deterministic in these settings; feature bits may differ between CPUs (OpenBLAS kernels).
set -euo pipefail

csmil=${1:-.build/release/csmil}
[ -x "$csmil" ] || { echo "toy_experiment: $csmil is not built; run swift build -c release" >&2; exit 1; }
csmil=$(cd "$(dirname "$csmil")" && pwd)/$(basename "$csmil")
repo=$(cd "$(dirname "$0")/.." && pwd)

WORK=${WORK:-${TMPDIR:-/tmp}/csmil-toy}
TRAIN=${TRAIN:-32}
TEST=${TEST:-16}
NORMALIZE=${NORMALIZE:-1}
FOLDS=${FOLDS:-4}
EPOCHS=${EPOCHS:-100}
KINDS=${KINDS:-micro macro}
BACKBONES=${BACKBONES:-plain}
DEMO_MODEL=${DEMO_MODEL:-}
mkdir -p "$WORK"
started=$(date +%s)
step() { printf '\n== [%4ds] %s\n' "$(($(date +%s) - started))" "$*"; }

# Slide i of a set is positive when i is even; seeds never repeat between sets and datasets.
synth_set() { # kind set count seed-base
    local kind=$1 set=$2 count=$3 base=$4 side=$5 i positive
    mkdir -p "$WORK/$kind/$set"
    for ((i = 0; i < count; i++)); do
        positive=$([ $((i % 2)) -eq 0 ] && echo 0.5 || echo 0)
        local name
        name=$(printf '%s-%s-%02d' "$kind" "$set" "$i")
        [ -e "$WORK/$kind/$set/$name.svs" ] && continue
        "$csmil" synth --out "$WORK/$kind/$set/$name.svs" --width "$side" --height "$side" --anomaly "$kind" \
            --positive "$positive" --seed $((base + i)) --log-level warning > /dev/null
    done
}

step "the backbones: seeded ResNet-18, seed 1, $BACKBONES"
if [ "$BACKBONES" = calibrated ]; then
    # BatchNorm calibrated layer by layer on plain synthetic tissue (no anomaly), each backbone on its own scale.
    mkdir -p "$WORK/calibration"
    for i in 0 1 2 3; do
        [ -e "$WORK/calibration/tissue-$i.svs" ] || "$csmil" synth --out "$WORK/calibration/tissue-$i.svs" \
            --width 3072 --height 3072 --seed $((30000 + i)) --log-level warning > /dev/null
    done
    "$csmil" seeded-backbones --arch resnet18 --seed 1 --out "$WORK/backbones" --log-level warning \
        --calibrate "$WORK/calibration"/tissue-*.svs
else
    "$csmil" seeded-backbones --arch resnet18 --seed 1 --out "$WORK/backbones" --log-level warning
fi

for kind in $KINDS; do
    model=$WORK/$kind/model
    [ "$kind" = micro ] && [ -n "$DEMO_MODEL" ] && model=$DEMO_MODEL
    base=$([ "$kind" = micro ] && echo 10000 || echo 20000)
    # Macro rings are one per 512-µm cell of tissue: larger slides give each positive slide more of them.
    side=${SIDE:-$([ "$kind" = micro ] && echo 3072 || echo 4096)}
    mkdir -p "$model"
    for scale in 20x 10x 5x; do cp "$WORK/backbones/backbone_$scale.safetensors" "$model/"; done

    step "$kind: $TRAIN training and $TEST held-out slides, ${side}×${side} px at 20x"
    synth_set "$kind" train "$TRAIN" "$base" "$side"
    synth_set "$kind" test "$TEST" $((base + 5000)) "$side"

    step "$kind: embedding the training slides (cached in $WORK/$kind/features)"
    "$csmil" embed-slides --arch resnet18 --backbone-20x "$model/backbone_20x.safetensors" \
        --backbone-10x "$model/backbone_10x.safetensors" --backbone-5x "$model/backbone_5x.safetensors" \
        --out "$WORK/$kind/features" --log-level warning "$WORK/$kind"/train/*.svs |
        sed -E 's/.*"slide":"([^"]*)".*"status":"([a-z]+)".*/  \2 \1/'

    labels=$WORK/$kind/labels.csv
    echo "slide,label,fold" > "$labels"
    for ((i = 0; i < TRAIN; i++)); do
        echo "$(printf '%s-train-%02d' "$kind" "$i"),$([ $((i % 2)) -eq 0 ] && echo 1 || echo 0),$(((i / 2) % FOLDS))" \
            >> "$labels"
    done

    step "$kind: training $FOLDS heads, $EPOCHS epochs each"
    rm -rf "$model/heads"
    name="csmil-demo-$kind (toy $kind-anomaly dataset; demo, not for diagnosis)"
    "$csmil" train --features "$WORK/$kind/features" --labels "$labels" --out "$model" --arch resnet18 \
        --backbone-20x backbone_20x.safetensors --backbone-10x backbone_10x.safetensors \
        --backbone-5x backbone_5x.safetensors --name "$name" --epochs "$EPOCHS" --log-level warning \
        $([ "$NORMALIZE" = 1 ] && echo --normalize-features)

    step "$kind: scoring the $TEST held-out slides with csmil score"
    rm -rf "$WORK/$kind/reports"
    "$csmil" score --model "$model" --out "$WORK/$kind/reports" --log-level warning "$WORK/$kind"/test/*.svs \
        > "$WORK/$kind/scores.jsonl" || true
    sed -E 's/.*"probability":([0-9.e-]+).*"slide":"[^"]*\/([^"/]*)".*/  \2 p=\1/' "$WORK/$kind/scores.jsonl"
done

step "results"
/usr/bin/python3 "$repo/tools/toy_results.py" "$WORK" "$repo/docs/toy-datasets.png" | tee "$WORK/results.txt"
step "done in $(($(date +%s) - started)) s"
