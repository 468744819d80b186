#!/usr/bin/python3
"""Reference outputs of the CS-MIL head (spec §4) for Tests/InferenceTests/CSMILHeadTests.swift.

The module below is the published head (hrlblab/CS-MIL, `DeepAttnMISL_CS_MIL.py`,
`DeepAttnMIL_Surv`) with D as a parameter: the same layers, names, per-cluster forward and masked
softmax, minus the CUDA transfer. Weights are PyTorch's default initialisation from a fixed seed,
with the attention and scale layers scaled up so that α and r are far from uniform (a test that
cannot tell instances apart proves little).

Each fixture holds the state_dict and the bag inputs as float32 (little-endian, base64), and the
expected outputs computed in float64 from those same float32 values (so the reference itself
carries no rounding error), plus PyTorch's own float32 outputs for information.

It also writes the D = 24 head in the published `.pth` layout, for
Tests/InferenceTests/ModelTests.swift: `Fixtures/heads/head_d24.pth` is
`torch.save({'state_dict': head.state_dict()}, …)` as the reference training script saves its heads,
`head_d24_module.pth` the same head through `nn.DataParallel` ("module." names), and
`head_d24_expected.json` the outputs of the head that `torch.load` reads back from that file, on two
bags (one with two empty clusters, i.e. masked all-zero instances), so the Swift side can go from the
file to the outputs the same way.

Run with Debian's interpreter (python3-torch): /usr/bin/python3 tools/make_head_fixtures.py
"""

import base64
import json
import pathlib

import numpy as np
import torch
import torch.nn as nn

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "InferenceTests" / "Fixtures"
HEADS = OUT / "heads"


class CSMILHead(nn.Module):
    """DeepAttnMIL_Surv of the reference, D configurable."""

    def __init__(self, feature_size, cluster_num):
        super().__init__()
        self.embedding_net = nn.Sequential(nn.Conv2d(feature_size, 64, 1), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)))
        self.res_attention = nn.Sequential(nn.Conv2d(64, 32, 1), nn.ReLU(), nn.Conv2d(32, 1, 1))
        self.attention = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 1))
        self.fc6 = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(p=0.5), nn.Linear(32, 1), nn.Sigmoid())
        self.cluster_num = cluster_num

    def masked_softmax(self, x, mask=None):
        if mask is not None:
            mask = mask.to(x.dtype)
        if mask is not None:
            x_masked = x * mask + (1 - 1 / (mask + 1e-5))
        else:
            x_masked = x
        x_max = x_masked.max(1)[0]
        x_exp = (x - x_max.unsqueeze(-1)).exp()
        if mask is not None:
            x_exp = x_exp * mask.to(x.dtype)
        return x_exp / x_exp.sum(1).unsqueeze(-1)

    def forward(self, x, mask):
        """x: one [count, D, 3, 1] tensor per cluster; mask: [1, N]."""
        res = []
        scale_weights = []
        for i in range(self.cluster_num):
            hh = x[i]
            output1 = self.embedding_net(hh[:, :, 0:1, :])
            output2 = self.embedding_net(hh[:, :, 1:2, :])
            output3 = self.embedding_net(hh[:, :, 2:3, :])
            output = torch.cat([output1, output2, output3], 2)
            res_attention = self.res_attention(output).squeeze(-1)
            scale_weights.append(res_attention.reshape(-1, 3))
            final_output = torch.matmul(output.squeeze(-1), torch.transpose(res_attention, 2, 1)).squeeze(-1)
            res.append(final_output)
        h = torch.cat(res)
        b = h.size(0)
        c = h.size(1)
        h = h.view(b, c)
        A = self.attention(h)
        A = torch.transpose(A, 1, 0)
        A = self.masked_softmax(A, mask)
        M = torch.mm(A, h)
        Y_pred = self.fc6(M)
        return Y_pred, A, torch.cat(scale_weights)


def f32(array):
    array = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    return {"shape": list(array.shape), "f32": base64.b64encode(array.tobytes()).decode("ascii")}


def make_head(feature_size, seed):
    torch.manual_seed(seed)
    head = CSMILHead(feature_size, cluster_num=8)
    with torch.no_grad():
        head.embedding_net[0].weight.mul_(2.0)
        head.res_attention[0].weight.mul_(3.0)
        head.res_attention[2].weight.mul_(3.0)
        head.attention[0].weight.mul_(4.0)
        head.attention[2].weight.mul_(4.0)
        head.fc6[0].weight.mul_(3.0)
        head.fc6[3].weight.mul_(3.0)
    return head.eval()


def make_bag(rng, feature_size, cluster_sizes):
    """Features of ReLU-pooled-like magnitude; an empty cluster (size 0) is one all-zero masked instance."""
    clusters = []
    mask = []
    for size in cluster_sizes:
        if size == 0:
            clusters.append(np.zeros((1, feature_size, 3, 1), dtype=np.float32))
            mask.append(0.0)
        else:
            values = rng.gamma(1.5, 0.6, size=(size, 3, feature_size)) * (rng.random((size, 3, feature_size)) < 0.7)
            clusters.append(np.transpose(values, (0, 2, 1))[..., None].astype(np.float32))
            mask.extend([1.0] * size)
    return clusters, np.array(mask, dtype=np.float32)


def calibrate(head, clusters, mask):
    """Moves the classifier's output bias so the first bag's logit is 0.4 (p ≈ 0.6): away from the
    flat ends of the sigmoid, where a probability comparison would prove little."""
    p, _, _ = run(head, clusters, mask, torch.float64)
    logit = np.log(p / (1 - p))
    with torch.no_grad():
        head.fc6[3].bias.add_(float(0.4 - logit))
    head.to(torch.float32)


def run(head, clusters, mask, dtype):
    model = head.to(dtype)
    model.cluster_num = len(clusters)
    with torch.no_grad():
        x = [torch.from_numpy(c).to(dtype) for c in clusters]
        p, a, r = model(x, torch.from_numpy(mask)[None, :].to(dtype))
    return float(p.reshape(-1)[0]), a.reshape(-1).tolist(), r.tolist()


def fixture(name, feature_size, seed, bags):
    head = make_head(feature_size, seed)
    rng = np.random.default_rng(seed)
    generated = [(bag_name, sizes, *make_bag(rng, feature_size, sizes)) for bag_name, sizes in bags]
    calibrate(head, generated[0][2], generated[0][3])
    state = {k: f32(v.detach().float().numpy()) for k, v in head.state_dict().items()}
    out_bags = []
    for bag_name, sizes, clusters, mask in generated:
        record = bag_record(head, bag_name, sizes, clusters, mask)
        out_bags.append(record)
        expected = record["expected"]
        print(f"{name}/{bag_name}: N={len(mask)} p={expected['probability']:.6f} "
              f"max α={max(expected['attention']):.3f} "
              f"r range [{np.min(expected['scale_weights']):.3f}, {np.max(expected['scale_weights']):.3f}] "
              f"float32-vs-float64 |Δp|={precision(record):.2e}")
    document = {
        "generator": "tools/make_head_fixtures.py",
        "torch_version": torch.__version__,
        "feature_size": feature_size,
        "state_dict": state,
        "bags": out_bags,
    }
    (OUT / f"head_{name}.json").write_text(json.dumps(document, indent=1) + "\n")
    return head.to(torch.float32)


def bag_record(head, bag_name, sizes, clusters, mask):
    """One bag's inputs and the head's outputs (float64 from the float32 weights, and PyTorch's own float32)."""
    expected = run(head, clusters, mask, torch.float64)
    single = run(head, clusters, mask, torch.float32)
    head.to(torch.float32)
    # [instance][scale][D], instances in cluster order, as the Swift head takes them.
    features = np.concatenate([np.transpose(c[..., 0], (0, 2, 1)) for c in clusters])
    return {
        "name": bag_name,
        "cluster_sizes": sizes,
        "features": f32(features),
        "mask": [int(m) for m in mask],
        "expected": {"probability": expected[0], "attention": expected[1], "scale_weights": expected[2]},
        "torch_float32": {"probability": single[0], "attention": single[1], "scale_weights": single[2]},
    }


def precision(record):
    """|p(float32) − p(float64)| of one bag record: how far PyTorch's own float32 forward is off."""
    return abs(record["torch_float32"]["probability"] - record["expected"]["probability"])


def pth_fixture(head, feature_size, seed, bags):
    """Saves `head` as the reference saves its heads, reads it back with torch.load into a fresh module,
    and records that module's outputs on `bags`: the Swift test goes file → head → outputs too."""
    HEADS.mkdir(parents=True, exist_ok=True)
    path = HEADS / f"head_d{feature_size}.pth"
    torch.save({"state_dict": head.state_dict()}, path)
    parallel = nn.DataParallel(head).state_dict()
    assert all(k.startswith("module.") for k in parallel)
    torch.save({"state_dict": parallel}, HEADS / f"head_d{feature_size}_module.pth")

    reloaded = CSMILHead(feature_size, cluster_num=8)
    reloaded.load_state_dict(torch.load(path)["state_dict"])
    reloaded.eval()
    rng = np.random.default_rng(seed)
    records = []
    for bag_name, sizes in bags:
        clusters, mask = make_bag(rng, feature_size, sizes)
        record = bag_record(reloaded, bag_name, sizes, clusters, mask)
        records.append(record)
        print(f"{path.name}/{bag_name}: N={len(mask)} p={record['expected']['probability']:.6f} "
              f"float32-vs-float64 |Δp|={precision(record):.2e}")
    document = {
        "generator": "tools/make_head_fixtures.py",
        "torch_version": torch.__version__,
        "feature_size": feature_size,
        "files": [path.name, f"head_d{feature_size}_module.pth"],
        "bags": records,
    }
    (HEADS / f"head_d{feature_size}_expected.json").write_text(json.dumps(document, indent=1) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    head_d24 = fixture(
        "d24",
        24,
        seed=21,
        bags=[
            ("two_empty_clusters", [2, 0, 3, 1, 0, 3, 2, 1]),
            ("single_instance", [1]),
            ("all_clusters_full", [3, 3, 3, 3, 3, 3, 3, 3]),
        ],
    )
    fixture(
        "d512",
        512,
        seed=22,
        bags=[
            ("one_empty_cluster", [2, 1, 3, 0, 2, 1, 1, 2]),
            ("long_bag", [3, 2, 2, 3, 1, 2, 2, 1]),
        ],
    )
    pth_fixture(
        head_d24,
        24,
        seed=23,
        bags=[
            ("two_empty_clusters", [3, 0, 1, 2, 0, 4, 1, 2]),
            ("all_clusters_full", [2, 1, 3, 1, 2, 2, 1, 3]),
        ],
    )


if __name__ == "__main__":
    main()
