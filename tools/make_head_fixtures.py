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

Run with Debian's interpreter (python3-torch): /usr/bin/python3 tools/make_head_fixtures.py
"""

import base64
import json
import pathlib

import numpy as np
import torch
import torch.nn as nn

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "InferenceTests" / "Fixtures"


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
        expected = run(head, clusters, mask, torch.float64)
        single = run(head, clusters, mask, torch.float32)
        head.to(torch.float32)
        # [instance][scale][D], instances in cluster order, as the Swift head takes them.
        features = np.concatenate([np.transpose(c[..., 0], (0, 2, 1)) for c in clusters])
        out_bags.append(
            {
                "name": bag_name,
                "cluster_sizes": sizes,
                "features": f32(features),
                "mask": [int(m) for m in mask],
                "expected": {"probability": expected[0], "attention": expected[1], "scale_weights": expected[2]},
                "torch_float32": {"probability": single[0], "attention": single[1], "scale_weights": single[2]},
            }
        )
        attention = np.array(expected[1])
        print(f"{name}/{bag_name}: N={len(mask)} p={expected[0]:.6f} max α={attention.max():.3f} "
              f"r range [{np.min(expected[2]):.3f}, {np.max(expected[2]):.3f}] "
              f"float32-vs-float64 |Δp|={abs(single[0] - expected[0]):.2e}")
    document = {
        "generator": "tools/make_head_fixtures.py",
        "torch_version": torch.__version__,
        "feature_size": feature_size,
        "state_dict": state,
        "bags": out_bags,
    }
    (OUT / f"head_{name}.json").write_text(json.dumps(document, indent=1) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    fixture(
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


if __name__ == "__main__":
    main()
