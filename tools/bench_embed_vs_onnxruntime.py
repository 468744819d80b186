#!/usr/bin/env python3
"""csmil's backbone against ONNX Runtime, side by side in one run, on this machine.

ONNX Runtime runs the same torchvision ResNet exported from PyTorch (2 intra-op threads, one
inter-op thread, all graph optimisations), on batches of 256×256 images; csmil runs
`csmil bench embed` with the same architecture and batch. The two alternate --rounds times so
that both see the same machine load, and the script prints each measurement and the ratio of
the medians (csmil ÷ ONNX Runtime; above 1 means csmil is faster).

Needs `onnxruntime` and `numpy` in the Python that runs it (pip install onnxruntime) and, to
export the model once, Debian's PyTorch (/usr/bin/python3 with python3-torch and
python3-torchvision), which the script calls by itself when the .onnx file is missing.

    python3 tools/bench_embed_vs_onnxruntime.py --csmil .build/release/csmil [--arch resnet50]
        [--batch 16] [--seconds 20] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def export(arch, path):
    """Writes torchvision `arch` (fc removed) as ONNX with a dynamic batch axis."""
    import torch
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()
    torch.onnx.export(model, torch.randn(1, 3, 256, 256), path, input_names=["input"], output_names=["features"],
                      dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}}, opset_version=13)


def onnxruntime_rate(path, batch, seconds, threads):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    images = np.random.default_rng(2).standard_normal((batch, 3, 256, 256), dtype=np.float32)
    session.run(None, {"input": images})
    start = time.perf_counter()
    done = 0
    while time.perf_counter() - start < seconds or done == 0:
        session.run(None, {"input": images})
        done += batch
    return done / (time.perf_counter() - start), ort.__version__


def csmil_rate(binary, arch, batch, seconds):
    output = subprocess.run([binary, "bench", "embed", "--arch", arch, "--batch", str(batch), "--seconds",
                             str(seconds)], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csmil", default=".build/release/csmil")
    parser.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="the .onnx file (default: exported into a temporary folder)")
    parser.add_argument("--export-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.export_only:
        export(args.arch, args.model)
        return
    model = args.model or os.path.join(tempfile.gettempdir(), f"csmil-bench-{args.arch}.onnx")
    if not os.path.exists(model):
        exporter = sys.executable
        try:
            import torch  # noqa: F401
        except ImportError:
            exporter = "/usr/bin/python3"  # Debian's python3-torch
        subprocess.run([exporter, __file__, "--export-only", "--arch", args.arch, "--model", model], check=True)

    ort_rates, csmil_rates = [], []
    for round_index in range(args.rounds):
        rate, version = onnxruntime_rate(model, args.batch, args.seconds, args.threads)
        ort_rates.append(rate)
        result = csmil_rate(args.csmil, args.arch, args.batch, args.seconds)
        csmil_rates.append(result["images_per_second"])
        print(f"round {round_index + 1}: onnxruntime {version} {rate:.2f} img/s, csmil {csmil_rates[-1]:.2f} img/s "
              f"({result['gflops_per_second']} GFLOP/s, OpenBLAS core {result['blas_core']})", flush=True)
    ratio = statistics.median(csmil_rates) / statistics.median(ort_rates)
    print(json.dumps({"arch": args.arch, "batch": args.batch, "threads": args.threads,
                      "onnxruntime_images_per_second": round(statistics.median(ort_rates), 3),
                      "csmil_images_per_second": round(statistics.median(csmil_rates), 3),
                      "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
