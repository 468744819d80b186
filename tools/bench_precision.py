#!/usr/bin/env python3
"""csmil fp32, csmil bf16 and ONNX Runtime fp32, side by side on this machine, plus what follows from them.

One command for every number the precision/threads closing note needs, so that it can be rerun on a quiet
machine (or a bigger one) and compared:

  embed    `csmil bench embed` at fp32 and bf16 and ONNX Runtime fp32 (the same torchvision ResNet exported by
           Debian's PyTorch, intra-op threads = --threads), alternating in a rotating order, --rounds times;
           medians, min–max and images per CPU second (user + system time, steadier than the wall clock
           when the machine is shared).
  busy     the same three with one busy process beside them (a Python spin loop), --busy-rounds times.
  schedule csmil's two ways of giving a call's images to the threads, fp32, alternating, quiet and beside one
           busy process: guided (small pieces from a shared counter, the default) and shares (each thread an
           equal part of every call, the old way, which waits for the slowest thread).
  kernels  fp32 on csmil's own kernels (Winograd, OpenBLAS) against oneDNN's, one thread, alternating, on this
           CPU and as an AVX2-only CPU (DNNL_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell): which csmil
           should use per CPU class (Precision.fp32Kernels).
  threads  `csmil bench embed` at 1, 2, 4, … threads up to the cores (the core-scaling table).
  ingest   `csmil bench ingest` on the score slide: tiles/s of the one reader thread, and at how many cores
           of embedding the reader becomes the bound.
  score    `csmil bench score --seeded ARCH` at fp32 and bf16 on one synthetic slide of ≥ 500 tiles
           (12000 × 10000 at 20x, 978 tiles): tiles/s, its embedding bound, peak RSS.
  sweep    the slide probability at fp32 and bf16 for a set of seeded toy slides and models (the demo model's
           trained heads on its ResNet-18 backbones, and a seeded ResNet-50 with random heads):
           |p_bf16 − p_fp32| per slide and per head, and bf16-vs-fp32 features per tile (max |Δ| relative to the
           slide's largest feature, cosine) from `csmil embed-slides --precision`. --sweep-model DIR and
           --sweep-slide FILE add your own model and slides: check bf16 on them before switching a lab to it.

Needs: a release build (swift build -c release), Debian's python3-torch and python3-torchvision (the ONNX export,
once), and ONNX Runtime + NumPy, which the script installs into a virtual environment (.build/bench-venv) on
first use. Everything it writes goes to --work (default .build/bench-precision); results as JSON to --out.

    python3 tools/bench_precision.py                       # everything, about 50 minutes on 2 cores
    python3 tools/bench_precision.py --only embed,busy     # some parts
    python3 tools/bench_precision.py --rounds 7 --seconds 30 --threads 16
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ["embed", "busy", "schedule", "kernels", "threads", "ingest", "score", "sweep"]


# ---------------------------------------------------------------- helpers

def log(*words):
    print(*words, file=sys.stderr, flush=True)


def run_json(command, env=None):
    """Runs a command that prints JSON lines; returns the decoded lines."""
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def summary(values, digits=3):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "n": len(values), "values": [round(v, digits) for v in values]}


class Busy:
    """One process spinning on a core for as long as the `with` block lasts."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait()


def venv_python(work):
    """A Python with onnxruntime and numpy: .build/bench-venv, made on first use."""
    venv = os.path.join(ROOT, ".build", "bench-venv")
    python = os.path.join(venv, "bin", "python")
    check = [python, "-c", "import onnxruntime, numpy"]
    if not os.path.exists(python) or subprocess.run(check, capture_output=True).returncode != 0:
        log(f"creating {venv} with onnxruntime and numpy")
        subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "onnxruntime", "numpy"], check=True)
    return python


def onnx_model(arch, work):
    """torchvision `arch` with fc removed, exported by Debian's PyTorch with a dynamic batch axis (once)."""
    path = os.path.join(work, f"{arch}.onnx")
    if not os.path.exists(path):
        log(f"exporting torchvision {arch} to {path} with /usr/bin/python3 (python3-torch)")
        subprocess.run(["/usr/bin/python3", __file__, "--export", arch, path], check=True)
    return path


def export(arch, path):
    import torch
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()
    torch.onnx.export(model, torch.randn(1, 3, 256, 256), path, input_names=["input"], output_names=["features"],
                      dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}}, opset_version=13)


def ort_worker(path, batch, seconds, threads):
    """Runs in the venv: ONNX Runtime on `batch` images for `seconds`; prints one JSON line."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    images = np.random.default_rng(2).standard_normal((batch, 3, 256, 256), dtype=np.float32)
    session.run(None, {"input": images})
    cpu0, start, done = time.process_time(), time.perf_counter(), 0
    while time.perf_counter() - start < seconds or done == 0:
        session.run(None, {"input": images})
        done += batch
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    print(json.dumps({"benchmark": "onnxruntime", "version": ort.__version__, "threads": threads, "batch": batch,
                      "images": done, "seconds": round(elapsed, 3), "images_per_second": round(done / elapsed, 3),
                      "cpu_seconds": round(cpu, 3), "images_per_cpu_second": round(done / cpu, 3)}))


# ---------------------------------------------------------------- parts

class Bench:
    def __init__(self, args):
        self.args = args
        self.csmil = os.path.abspath(args.csmil)
        self.work = os.path.abspath(args.work)
        os.makedirs(self.work, exist_ok=True)
        self.python = None
        self.onnx = None

    def csmil_embed(self, precision, threads=None, seconds=None, kernels=None, env=None, batch=None, schedule=None):
        a = self.args
        command = [self.csmil, "bench", "embed", "--arch", a.arch, "--precision", precision, "--threads",
                   str(threads or a.threads), "--batch", str(batch or a.batch), "--seconds", str(seconds or a.seconds)]
        if kernels:
            command += ["--kernels", kernels]
        if schedule:
            command += ["--schedule", schedule]
        return run_json(command, env=env)[-1]

    def ort_embed(self, threads=None, seconds=None):
        a = self.args
        if self.python is None:
            self.python = venv_python(self.work)
            self.onnx = onnx_model(a.arch, self.work)
        return run_json([self.python, __file__, "--ort-worker", self.onnx, str(a.batch), str(seconds or a.seconds),
                         str(threads or a.threads)])[-1]

    def side_by_side(self, rounds, busy=False):
        """csmil fp32, csmil bf16 and ONNX Runtime fp32, alternating in a rotating order."""
        runners = [("csmil_fp32", lambda: self.csmil_embed("fp32")), ("csmil_bf16", lambda: self.csmil_embed("bf16")),
                   ("onnxruntime_fp32", lambda: self.ort_embed())]
        results = {name: [] for name, _ in runners}
        for round_index in range(rounds):
            order = runners[round_index % 3:] + runners[:round_index % 3]
            for name, runner in order:
                if busy:
                    with Busy():
                        line = runner()
                else:
                    line = runner()
                results[name].append(line)
                log(f"{'busy ' if busy else ''}round {round_index + 1}: {name} {line['images_per_second']:.2f} img/s "
                    f"({line['images_per_cpu_second']:.2f} per CPU s)")
        out = {}
        for name, lines in results.items():
            out[name] = {"images_per_second": summary([l["images_per_second"] for l in lines]),
                         "images_per_cpu_second": summary([l["images_per_cpu_second"] for l in lines]),
                         "lines": lines}
        med = {name: out[name]["images_per_second"]["median"] for name in out}
        out["ratios"] = {"bf16_over_csmil_fp32": round(med["csmil_bf16"] / med["csmil_fp32"], 3),
                         "bf16_over_onnxruntime_fp32": round(med["csmil_bf16"] / med["onnxruntime_fp32"], 3),
                         "csmil_fp32_over_onnxruntime_fp32": round(med["csmil_fp32"] / med["onnxruntime_fp32"], 3)}
        return out

    def embed(self):
        return self.side_by_side(self.args.rounds)

    def busy(self):
        return self.side_by_side(self.args.busy_rounds, busy=True)

    def schedule(self):
        out = {}
        for setting in ["quiet", "busy"]:
            lines = {"guided": [], "shares": []}
            for round_index in range(self.args.busy_rounds):
                order = ["guided", "shares"] if round_index % 2 == 0 else ["shares", "guided"]
                for schedule in order:
                    if setting == "busy":
                        with Busy():
                            line = self.csmil_embed("fp32", schedule=schedule)
                    else:
                        line = self.csmil_embed("fp32", schedule=schedule)
                    lines[schedule].append(line)
                    log(f"schedule {setting} {schedule}: {line['images_per_second']:.2f} img/s "
                        f"({line['images_per_cpu_second']:.2f} per CPU s)")
            out[setting] = {k: {"images_per_second": summary([l["images_per_second"] for l in v]),
                                "images_per_cpu_second": summary([l["images_per_cpu_second"] for l in v])}
                            for k, v in lines.items()}
            out[setting]["guided_over_shares"] = round(out[setting]["guided"]["images_per_second"]["median"]
                                                       / out[setting]["shares"]["images_per_second"]["median"], 3)
        return out

    def kernels(self):
        classes = {"native": None,
                   "avx2": dict(os.environ, DNNL_MAX_CPU_ISA="AVX2", OPENBLAS_CORETYPE="Haswell")}
        out = {}
        for name, env in classes.items():
            lines = {"csmil": [], "onednn": []}
            for round_index in range(self.args.kernels_rounds):
                order = ["csmil", "onednn"] if round_index % 2 == 0 else ["onednn", "csmil"]
                for kernels in order:
                    line = self.csmil_embed("fp32", threads=1, kernels=kernels, env=env, batch=12)
                    lines[kernels].append(line)
                    log(f"kernels {name} {kernels}: {line['images_per_second']:.2f} img/s, "
                        f"{line['images_per_cpu_second']:.2f} per CPU s ({line['kernels']}, OpenBLAS {line['blas_core']})")
            out[name] = {k: {"kernels": v[0]["kernels"], "blas_core": v[0]["blas_core"],
                             "images_per_second": summary([l["images_per_second"] for l in v]),
                             "images_per_cpu_second": summary([l["images_per_cpu_second"] for l in v])}
                         for k, v in lines.items()}
            out[name]["onednn_over_csmil_per_cpu_second"] = round(
                out[name]["onednn"]["images_per_cpu_second"]["median"]
                / out[name]["csmil"]["images_per_cpu_second"]["median"], 3)
        return out

    def threads(self):
        cores = os.cpu_count() or 1
        counts = [n for n in [1, 2, 4, 8, 16, 32, 64] if n <= cores]
        table = {}
        for precision in ["fp32", "bf16"]:
            table[precision] = {}
            for n in counts:
                lines = [self.csmil_embed(precision, threads=n) for _ in range(self.args.threads_rounds)]
                rates = [l["images_per_second"] for l in lines]
                table[precision][str(n)] = {"images_per_second": summary(rates),
                                            "images_per_cpu_second": summary([l["images_per_cpu_second"] for l in lines]),
                                            "peak_rss_bytes": max(l["peak_rss_bytes"] for l in lines)}
                log(f"threads {n} {precision}: {statistics.median(rates):.2f} img/s")
        return {"cores": cores, "table": table}

    def score_slide(self):
        path = self.args.slide or os.path.join(self.work, "score-12000x10000-seed1.svs")
        if not os.path.exists(path):
            log(f"writing {path}")
            run_json([self.csmil, "synth", "--out", path, "--width", "12000", "--height", "10000", "--seed", "1"])
        return path

    def ingest(self):
        line = run_json([self.csmil, "bench", "ingest", self.score_slide(), "--batch", "8"])[-1]
        out = {"line": line}
        # What one embedding thread does (1-thread bench embed, as quiet as the machine allows).
        per_thread = {p: self.csmil_embed(p, threads=1, seconds=min(self.args.seconds, 15)) for p in ["fp32", "bf16"]}
        reader = line["tiles_per_cpu_second"]
        for precision, l in per_thread.items():
            tiles_per_thread = l["images_per_cpu_second"] / 3
            out[precision] = {"tiles_per_cpu_second_per_thread": round(tiles_per_thread, 3),
                              "tiles_per_second_32_threads_need": round(32 * tiles_per_thread, 1),
                              "reader_bound_at_threads": round(reader / tiles_per_thread, 1)}
        out["reader_tiles_per_cpu_second"] = reader
        out["reader_tiles_per_second"] = line["tiles_per_second"]
        return out

    def score(self):
        slide = self.score_slide()
        out = {"slide": slide, "fp32": [], "bf16": []}
        for round_index in range(self.args.score_rounds):
            order = ["fp32", "bf16"] if round_index % 2 == 0 else ["bf16", "fp32"]
            for precision in order:
                line = run_json([self.csmil, "bench", "score", "--seeded", self.args.arch, "--precision", precision,
                                 "--threads", str(self.args.threads), "--embed-seconds", str(self.args.seconds), slide])[-1]
                out[precision].append(line)
                log(f"score {precision}: {line['tiles']} tiles, {line['tiles_per_second']} tiles/s, bound "
                    f"{line.get('embedding_bound_tiles_per_second')}, fraction {line.get('fraction_of_embedding_bound')}; "
                    f"per CPU second {line.get('tiles_per_cpu_second')} tiles, bound "
                    f"{line.get('embedding_bound_tiles_per_cpu_second')}, fraction "
                    f"{line.get('fraction_of_embedding_bound_per_cpu_second')}")
        for precision in ["fp32", "bf16"]:
            lines = out[precision]
            out[precision + "_summary"] = {
                "tiles": lines[0]["tiles"],
                "tiles_per_second": summary([l["tiles_per_second"] for l in lines]),
                "seconds": summary([l["seconds"] for l in lines]),
                "embedding_bound_tiles_per_second": summary([l.get("embedding_bound_tiles_per_second") for l in lines]),
                "fraction_of_embedding_bound": summary([l.get("fraction_of_embedding_bound") for l in lines]),
                "tiles_per_cpu_second": summary([l.get("tiles_per_cpu_second") for l in lines]),
                "embedding_bound_tiles_per_cpu_second": summary([l.get("embedding_bound_tiles_per_cpu_second")
                                                                 for l in lines]),
                "fraction_of_embedding_bound_per_cpu_second": summary(
                    [l.get("fraction_of_embedding_bound_per_cpu_second") for l in lines]),
                "peak_rss_bytes": max(l["peak_rss_bytes"] for l in lines)}
        return out

    def sweep(self):
        a = self.args
        # One folder per slide side: the slides are made once and kept, and a name says nothing of its size.
        folder = os.path.join(self.work, f"sweep-{a.sweep_side}")
        os.makedirs(folder, exist_ok=True)
        slides = []
        for index in range(a.sweep_slides):
            kind = "micro" if index % 4 < 2 else "macro"
            positive = "0.5" if index % 2 == 0 else "0"
            path = os.path.join(folder, f"sweep-{index:02d}-{kind}-{'pos' if positive != '0' else 'neg'}.svs")
            if not os.path.exists(path):
                run_json([self.csmil, "synth", "--out", path, "--width", str(a.sweep_side), "--height",
                          str(a.sweep_side), "--anomaly", kind, "--positive", positive, "--seed", str(30000 + index)])
            slides.append(path)
        slides += [os.path.abspath(path) for path in a.sweep_slide]
        models = self.sweep_models(folder, slides)
        for index, model in enumerate(a.sweep_model):
            with open(os.path.join(model, "model.toml")) as handle:
                arch = next(json.loads(line.split(" = ", 1)[1]) for line in handle.read().splitlines()
                            if line.startswith("architecture = "))
            models[f"--sweep-model {model}"] = (os.path.abspath(model), arch)
        out = {"slides": slides, "models": {}}
        all_differences = []
        for name, (model, arch) in models.items():
            scored = {}
            for precision in ["fp32", "bf16"]:
                reports = os.path.join(folder, "reports", os.path.basename(model), precision)
                lines = run_json([self.csmil, "score", "--model", model, "--precision", precision, "--out", reports,
                                  "--log-level", "warning"] + slides)
                scored[precision] = {}
                for line in lines:
                    with open(line["report"]) as handle:
                        report = json.load(handle)
                    scored[precision][line["slide"]] = (line["probability"], report["result"]["head_probabilities"],
                                                        line["tiles"])
                log(f"sweep {name} {precision}: scored {len(lines)} slides")
            rows = []
            for slide in slides:
                p32, heads32, tiles = scored["fp32"][slide]
                p16, heads16, _ = scored["bf16"][slide]
                rows.append({"slide": os.path.basename(slide), "tiles": tiles, "p_fp32": p32, "p_bf16": p16,
                             "difference": abs(p16 - p32),
                             "head_differences": [abs(x - y) for x, y in zip(heads16, heads32)]})
                all_differences.append(abs(p16 - p32))
            features = self.feature_fidelity(model, arch, slides, folder) if a.sweep_features else None
            differences = [r["difference"] for r in rows]
            heads = [d for r in rows for d in r["head_differences"]]
            out["models"][name] = {"rows": rows, "slide_difference": summary(differences, 6),
                                   "head_difference": summary(heads, 6), "features": features}
        out["max_difference"] = max(all_differences)
        out["all_within_0.005"] = all(d <= 0.005 for d in all_differences)
        return out

    def sweep_models(self, folder, slides):
        """The demo model (trained heads), the demo backbones with 4 random heads, and a seeded ResNet-50 with 4
        random heads. Random heads on raw features saturate (p is 0 or 1 whatever the features), so the random
        models standardise the features per scale as the demo model does: with the demo's statistics, and for the
        ResNet-50 with its fp32 features' own on these slides (written as its feature_normalization file)."""
        demo = os.path.join(ROOT, "models", "demo")
        if not os.path.exists(os.path.join(demo, "backbone_5x.safetensors")):
            run_json([self.csmil, "seeded-backbones", "--arch", "resnet18", "--seed", "1", "--out", demo])
        models = {"demo: resnet18, trained heads": (demo, "resnet18")}

        def random_model(name, arch, backbones, normalization):
            path = os.path.join(folder, name)
            if not os.path.exists(os.path.join(path, "model.toml")):
                subprocess.run([self.csmil, "bench", "seeded-model", "--arch", arch, "--heads", "4", "--head-seed",
                                "101", "--out", path], check=True, capture_output=True)
                heads = ", ".join(f'"heads/{i}.safetensors"' for i in range(4))
                lines = [f'name = "{name} (random heads, seeds 101-104)"', f'architecture = "{arch}"']
                lines += [f'backbone_{scale} = "{file}"' for scale, file in zip(["20x", "10x", "5x"], backbones)]
                lines += [f"heads = [{heads}]", f'feature_normalization = "{normalization}"', ""]
                with open(os.path.join(path, "model.toml"), "w") as handle:
                    handle.write("\n".join(lines))
            return path

        demo_files = [os.path.join(demo, f"backbone_{scale}.safetensors") for scale in ["20x", "10x", "5x"]]
        models["demo backbones, 4 random heads"] = (
            random_model("random-heads-resnet18", "resnet18", demo_files,
                         os.path.join(demo, "feature_normalization.safetensors")), "resnet18")
        if not self.args.sweep_resnet50:
            return models
        # Untrained He-initialised ResNet-50 features reach about 30,000 with dead channels, which per-channel
        # standardisation turns into noise amplifiers; BatchNorm calibrated on the slides gives features as well
        # conditioned as a trained network's (seeded-backbones --calibrate; minutes, once).
        calibrated = os.path.join(folder, "calibrated-resnet50")
        if not os.path.exists(os.path.join(calibrated, "backbone_5x.safetensors")):
            log(f"calibrating seeded ResNet-50 backbones on the sweep slides into {calibrated} (once)")
            run_json([self.csmil, "seeded-backbones", "--arch", "resnet50", "--seed", "1", "--out", calibrated,
                      "--calibration-tiles", "16", "--log-level", "warning", "--calibrate"] + slides)
        r50 = os.path.join(folder, "random-heads-resnet50")
        statistics_file = os.path.join(r50, "feature_normalization.safetensors")
        path = random_model("random-heads-resnet50", "resnet50",
                            [os.path.join(calibrated, f"backbone_{scale}.safetensors") for scale in ["20x", "10x", "5x"]],
                            statistics_file)
        if not os.path.exists(statistics_file):
            features = self.embed_slides(path, "resnet50", slides, folder, "fp32")
            self.write_normalization(features, statistics_file)
        models["calibrated seeded resnet50, 4 random heads"] = (path, "resnet50")
        return models

    def write_normalization(self, features, path):
        """Per-scale mean and standard deviation of the .npy features in `features`, as a safetensors file."""
        if self.python is None:
            self.python = venv_python(self.work)
        script = r"""
import json, os, struct, sys, numpy as np
folder, path = sys.argv[1], sys.argv[2]
x = np.concatenate([np.load(os.path.join(folder, f)) for f in sorted(os.listdir(folder)) if f.endswith(".npy")])
x = x.reshape(x.shape[0], 3, -1).astype(np.float64)
mean, std = x.mean(axis=0).astype(np.float32), np.maximum(x.std(axis=0), 1e-3).astype(np.float32)
n = mean.nbytes
header = json.dumps({"mean": {"dtype": "F32", "shape": list(mean.shape), "data_offsets": [0, n]},
                     "std": {"dtype": "F32", "shape": list(std.shape), "data_offsets": [n, 2 * n]}}).encode()
header += b" " * (-len(header) % 8)
with open(path, "wb") as handle:
    handle.write(struct.pack("<Q", len(header)) + header + mean.tobytes() + std.tobytes())
print(json.dumps({"tiles": int(x.shape[0])}))
"""
        run_json([self.python, "-c", script, features, path])

    def embed_slides(self, model, arch, slides, folder, precision):
        """`csmil embed-slides` of the model's backbones at `precision`; returns the features folder."""
        with open(os.path.join(model, "model.toml")) as handle:
            manifest = dict(line.split(" = ", 1) for line in handle.read().splitlines() if " = " in line)
        files = [os.path.join(model, json.loads(manifest[key])) for key in ["backbone_20x", "backbone_10x",
                                                                           "backbone_5x"]]
        # Keyed by the backbones' folder: models that share backbones share their features.
        out = os.path.join(folder, "features", os.path.basename(os.path.dirname(os.path.abspath(files[0]))), precision)
        subprocess.run([self.csmil, "embed-slides", "--arch", arch, "--backbone-20x", files[0], "--backbone-10x",
                        files[1], "--backbone-5x", files[2], "--precision", precision, "--out", out,
                        "--log-level", "warning"] + slides, check=True, capture_output=True)
        return out

    def feature_fidelity(self, model, arch, slides, folder):
        """`csmil embed-slides` at both precisions; per tile and scale: max |Δ| / the slide's largest |feature|,
        and cosine."""
        features = {precision: self.embed_slides(model, arch, slides, folder, precision)
                    for precision in ["fp32", "bf16"]}
        if self.python is None:
            self.python = venv_python(self.work)
        script = r"""
import json, sys, os, numpy as np
a, b = sys.argv[1], sys.argv[2]
relative, cosines = [], []
for name in sorted(f for f in os.listdir(a) if f.endswith(".npy")):
    x, y = np.load(os.path.join(a, name)).astype(np.float64), np.load(os.path.join(b, name)).astype(np.float64)
    d = x.shape[1] // 3
    x, y = x.reshape(-1, 3, d), y.reshape(-1, 3, d)
    relative += list((np.abs(x - y).max(axis=2) / np.abs(x).max()).ravel())
    cosines += list(((x * y).sum(axis=2) / (np.linalg.norm(x, axis=2) * np.linalg.norm(y, axis=2))).ravel())
q = lambda v, p: float(np.percentile(v, p))
print(json.dumps({"rows": len(relative), "relative_max": max(relative), "relative_median": q(relative, 50),
                  "relative_p99": q(relative, 99), "cosine_min": min(cosines), "cosine_median": q(cosines, 50),
                  "cosine_p1": q(cosines, 1)}))
"""
        return run_json([self.python, "-c", script, features["fp32"], features["bf16"]])[-1]


def markdown(results):
    lines = [f"# bench_precision — {results['machine']['cpu']}, {results['machine']['cores']} cores, "
             f"{results['started']}", "", f"command: `{results['command']}`", ""]
    for part, title in [("embed", "quiet"), ("busy", "one busy process beside it")]:
        if part not in results:
            continue
        r = results[part]
        lines += [f"## embed, {title} (ResNet-50, img/s; median [min–max] of {r['csmil_fp32']['images_per_second']['n']})",
                  "", "| | img/s | img per CPU s |", "|---|---|---|"]
        for name in ["csmil_fp32", "csmil_bf16", "onnxruntime_fp32"]:
            s, c = r[name]["images_per_second"], r[name]["images_per_cpu_second"]
            lines.append(f"| {name} | {s['median']} [{s['min']}–{s['max']}] | {c['median']} [{c['min']}–{c['max']}] |")
        lines += ["", f"ratios of the medians: {r['ratios']}", ""]
    if "schedule" in results:
        r = results["schedule"]
        lines += ["## fp32 schedules (img/s, median [min–max])", "", "| | guided | shares | guided ÷ shares |",
                  "|---|---|---|---|"]
        for setting in ["quiet", "busy"]:
            g, h = r[setting]["guided"]["images_per_second"], r[setting]["shares"]["images_per_second"]
            lines.append(f"| {setting} | {g['median']} [{g['min']}–{g['max']}] | {h['median']} [{h['min']}–{h['max']}] "
                         f"| {r[setting]['guided_over_shares']} |")
        lines.append("")
    if "kernels" in results:
        k = results["kernels"]
        lines += ["## fp32 kernels, one thread (img per CPU s, median [min–max])", "",
                  "| CPU class | csmil | oneDNN | oneDNN ÷ csmil |", "|---|---|---|---|"]
        for name in ["native", "avx2"]:
            c, o = k[name]["csmil"]["images_per_cpu_second"], k[name]["onednn"]["images_per_cpu_second"]
            lines.append(f"| {name} ({k[name]['onednn']['kernels']}) | {c['median']} [{c['min']}–{c['max']}] | "
                         f"{o['median']} [{o['min']}–{o['max']}] | {k[name]['onednn_over_csmil_per_cpu_second']} |")
        lines.append("")
    if "threads" in results:
        t = results["threads"]
        lines += [f"## threads ({t['cores']} cores)", "", "| threads | fp32 img/s | bf16 img/s |", "|---|---|---|"]
        for n in t["table"]["fp32"]:
            lines.append(f"| {n} | {t['table']['fp32'][n]['images_per_second']['median']} | "
                         f"{t['table']['bf16'][n]['images_per_second']['median']} |")
        lines.append("")
    if "ingest" in results:
        i = results["ingest"]
        lines += ["## reader", "", f"bench ingest: {i['reader_tiles_per_second']} tiles/s wall, "
                  f"{i['reader_tiles_per_cpu_second']} tiles per CPU s (one thread)", ""]
        for p in ["fp32", "bf16"]:
            lines.append(f"- {p}: one embedding thread {i[p]['tiles_per_cpu_second_per_thread']} tiles/s; 32 threads "
                         f"need {i[p]['tiles_per_second_32_threads_need']} tiles/s; the reader is the bound from about "
                         f"{i[p]['reader_bound_at_threads']} threads")
        lines.append("")
    if "score" in results:
        s = results["score"]
        lines += ["## bench score (same slide)", "", "| | tiles | tiles/s | seconds | bound tiles/s | fraction | "
                  "tiles per CPU s | bound per CPU s | fraction per CPU s | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for p in ["fp32", "bf16"]:
            x = s[p + "_summary"]
            lines.append(f"| {p} | {x['tiles']} | {x['tiles_per_second']['median']} | {x['seconds']['median']} | "
                         f"{(x['embedding_bound_tiles_per_second'] or {}).get('median')} | "
                         f"{(x['fraction_of_embedding_bound'] or {}).get('median')} | "
                         f"{(x['tiles_per_cpu_second'] or {}).get('median')} | "
                         f"{(x['embedding_bound_tiles_per_cpu_second'] or {}).get('median')} | "
                         f"{(x['fraction_of_embedding_bound_per_cpu_second'] or {}).get('median')} | "
                         f"{x['peak_rss_bytes'] >> 20} |")
        lines.append("")
    if "sweep" in results:
        w = results["sweep"]
        lines += ["## |p_bf16 − p_fp32|", "", f"max {w['max_difference']:.6f}; all ≤ 0.005: {w['all_within_0.005']}", ""]
        for name, m in w["models"].items():
            lines += [f"### {name}", "", "| slide | tiles | p fp32 | p bf16 | |Δp| | max |Δ| head |", "|---|---|---|---|---|---|"]
            for row in m["rows"]:
                lines.append(f"| {row['slide']} | {row['tiles']} | {row['p_fp32']:.5f} | {row['p_bf16']:.5f} | "
                             f"{row['difference']:.6f} | {max(row['head_differences']):.6f} |")
            sd, hd = m["slide_difference"], m["head_difference"]
            lines.append(f"\n|Δp| over {sd['n']} slides: median {sd['median']}, max {sd['max']}; per head "
                         f"({hd['n']}): median {hd['median']}, max {hd['max']}")
            if m["features"]:
                f = m["features"]
                lines.append(f"features ({f['rows']} tile-scales): max |Δ| / largest: median {f['relative_median']:.5f}, "
                             f"p99 {f['relative_p99']:.5f}, max {f['relative_max']:.5f}; cosine: min {f['cosine_min']:.6f}, "
                             f"p1 {f['cosine_p1']:.6f}, median {f['cosine_median']:.6f}")
            lines.append("")
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--export":
        export(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--ort-worker":
        ort_worker(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--csmil", default=os.path.join(ROOT, ".build", "release", "csmil"))
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {','.join(PARTS)}")
    parser.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for csmil and ONNX Runtime")
    parser.add_argument("--batch", type=int, default=24, help="images per call, the same for csmil and ONNX Runtime")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per embed measurement")
    parser.add_argument("--rounds", type=int, default=5, help="side-by-side rounds, quiet")
    parser.add_argument("--busy-rounds", type=int, default=3, help="side-by-side rounds beside a busy process")
    parser.add_argument("--threads-rounds", type=int, default=2, help="measurements per thread count")
    parser.add_argument("--kernels-rounds", type=int, default=4, help="alternations of the fp32 kernels")
    parser.add_argument("--score-rounds", type=int, default=1, help="bench score runs per precision")
    parser.add_argument("--slide", help="the score slide (default: a 12000 × 10000 synthetic one, made once)")
    parser.add_argument("--sweep-slides", type=int, default=8)
    parser.add_argument("--sweep-side", type=int, default=3072)
    parser.add_argument("--sweep-model", action="append", default=[],
                        help="also compare this model folder (your own model: check bf16 on it before using it)")
    parser.add_argument("--sweep-slide", action="append", default=[], help="also score this slide in the sweep")
    parser.add_argument("--no-sweep-features", dest="sweep_features", action="store_false",
                        help="skip the embed-slides feature comparison")
    parser.add_argument("--no-sweep-resnet50", dest="sweep_resnet50", action="store_false",
                        help="skip the calibrated seeded ResNet-50 model (its calibration and feature statistics cost "
                             "about three fp32 passes over the slides)")
    parser.add_argument("--work", default=os.path.join(ROOT, ".build", "bench-precision"))
    parser.add_argument("--out", help="the JSON results (default: WORK/results-<time>.json, and a .md beside it)")
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    for p in parts:
        if p not in PARTS:
            parser.error(f"unknown part {p}; parts: {','.join(PARTS)}")
    if not os.access(args.csmil, os.X_OK):
        parser.error(f"{args.csmil} is not built: swift build -c release")

    bench = Bench(args)
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    results = {"started": started, "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
               "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
                           "load_average_at_start": os.getloadavg()},
               "settings": vars(args)}
    for part in parts:
        log(f"== {part}")
        results[part] = getattr(bench, part)()
    results["machine"]["load_average_at_end"] = os.getloadavg()
    out = args.out or os.path.join(bench.work, f"results-{started.replace(':', '')}.json")
    with open(out, "w") as handle:
        json.dump(results, handle, indent=1)
    text = markdown(results)
    with open(os.path.splitext(out)[0] + ".md", "w") as handle:
        handle.write(text + "\n")
    print(text)
    log(f"results: {out} and {os.path.splitext(out)[0]}.md")


if __name__ == "__main__":
    main()
