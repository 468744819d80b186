#!/usr/bin/python3
"""Reference gradients and Adam steps of the CS-MIL head (spec §6) for
Tests/InferenceTests/TrainingParityTests.swift.

The module is the one in tools/make_head_fixtures.py (the published head, `DeepAttnMIL_Surv`, with
D as a parameter), and the loss is the reference training script's `calculate_loss`
(hrlblab/CS-MIL, `MIL_main_DeepSurv_batch_Stage1_stack.py`): p clamped to [1e-5, 1 - 1e-5], then
the Bernoulli negative log-likelihood, summed over the slides of one optimiser step.

Dropout cannot be compared draw for draw (the generators differ), so the fixture replaces fc6's
`nn.Dropout(p=0.5)` by a fixed keep mask: kept units are multiplied by 1 / (1 - 0.5) = 2, dropped
ones by 0, which is what dropout does once its mask is drawn. The "eval" cases use no dropout at
all (eval mode), the "dropout" case a given mask that the Swift side receives too.

Everything is computed in float64 from float32 weights and features (so the reference carries no
rounding error of its own); parameters and gradients are stored rounded to float32 (little-endian,
base64, the format of the head fixtures: 6e-8 relative, far inside the tests' 1e-5), to keep the
file small.

Cases:
- `gradients`: loss and every parameter's gradient for bags 0 and 2 alone (eval-mode dropout; bag 0
  has two empty clusters, bag 2 a single instance), for bag 0 with the fixed dropout mask, and for
  the loss of all four bags summed.
- `adam_one_step`: the parameters after one `torch.optim.Adam` step (lr 5e-4, betas (0.9, 0.999),
  eps 1e-8, weight_decay 0) on bag 0's loss.
- `adam_steps_weight_decay`: the parameters after three steps (weight_decay 1e-4), each on the loss
  of all four bags summed (four slides per step, as the reference trains), recomputed from the
  updated weights every step.

Run with Debian's interpreter (python3-torch): /usr/bin/python3 tools/make_training_fixtures.py
"""

import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn as nn

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "InferenceTests" / "Fixtures"


# The reference module, exactly as the head fixtures use it.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_head_fixtures  # noqa: E402
from make_head_fixtures import CSMILHead, f32, make_bag  # noqa: E402


class FixedDropout(nn.Module):
    """Dropout with its mask already drawn: kept units × 1/(1 − 0.5), dropped units × 0."""

    def __init__(self, keep):
        super().__init__()
        self.register_buffer("scale", torch.tensor([2.0 if k else 0.0 for k in keep], dtype=torch.float64))

    def forward(self, x):
        return x * self.scale


def calculate_loss(Y_prob, Y):
    """The reference training script's loss, verbatim."""
    Y_prob = torch.clamp(Y_prob, min=1e-5, max=1. - 1e-5)
    neg_log_likelihood = -1. * (Y * torch.log(Y_prob) + (1. - Y) * torch.log(1. - Y_prob))  # negative log bernoulli
    return neg_log_likelihood


def make_head(feature_size, seed):
    """The head fixtures' head (PyTorch's initialisation, attention and scale layers scaled up), in training mode."""
    return make_head_fixtures.make_head(feature_size, seed).train()


def loss_of(model, bag):
    clusters, mask, label = bag
    model.cluster_num = len(clusters)
    x = [torch.from_numpy(c).to(torch.float64) for c in clusters]
    p, _, _ = model(x, torch.from_numpy(mask)[None, :].to(torch.float64))
    loss = calculate_loss(p, torch.tensor([label], dtype=torch.float64))
    return loss.reshape(-1)[0], float(p.reshape(-1)[0])


def gradients(model, bags):
    model.zero_grad()
    total = 0
    probabilities = []
    for bag in bags:
        loss, p = loss_of(model, bag)
        total = total + loss
        probabilities.append(p)
    total.backward()
    grads = {name: f32(param.grad.detach().numpy()) for name, param in model.named_parameters()}
    return float(total), probabilities, grads


def parameters(model):
    return {name: f32(param.detach().numpy()) for name, param in model.named_parameters()}


def adam_steps(initial, bags, steps, weight_decay):
    model = initial()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        total = 0
        for bag in bags:
            total = total + loss_of(model, bag)[0]
        total.backward()
        optimizer.step()
        losses.append(float(total))
    return losses, parameters(model)


def main():
    feature_size = 16
    seed = 31
    head = make_head(feature_size, seed)
    rng = np.random.default_rng(seed)
    shapes = [
        ([2, 0, 3, 1, 0, 3, 2, 1], 1.0),
        ([3, 3, 3, 3, 3, 3, 3, 3], 0.0),
        ([1], 1.0),
        ([2, 1, 3, 0, 2, 1, 1, 2], 0.0),
    ]
    bags = [(*make_bag(rng, feature_size, sizes), label) for sizes, label in shapes]

    # Move fc6's output bias so bag 0 sits at p ≈ 0.4 (its label is 1): a gradient at the flat ends of
    # the sigmoid would prove little.
    with torch.no_grad():
        model = head.double().eval()
        _, p = loss_of(model, bags[0])
        head.fc6[3].bias.add_(float(np.log(0.4 / 0.6) - np.log(p / (1 - p))))
    head = head.float()
    state = {k: f32(v.detach().numpy()) for k, v in head.state_dict().items()}

    def initial(keep=None):
        model = make_head(feature_size, seed)
        model.load_state_dict(head.state_dict())
        model = model.double()
        if keep is not None:
            model.fc6[2] = FixedDropout(keep)
        return model.eval()

    keep = [bool(v) for v in np.random.default_rng(seed + 1).random(32) < 0.5]
    cases = []
    for index in (0, 2):
        loss, probabilities, grads = gradients(initial(), [bags[index]])
        cases.append({"name": f"bag{index}", "bags": [index], "dropout_keep": None, "loss": loss,
                      "probabilities": probabilities, "gradients": grads})
    loss, probabilities, grads = gradients(initial(keep), [bags[0]])
    cases.append({"name": "bag0_dropout", "bags": [0], "dropout_keep": keep, "loss": loss,
                  "probabilities": probabilities, "gradients": grads})
    loss, probabilities, grads = gradients(initial(), bags)
    cases.append({"name": "four_bags_summed", "bags": list(range(len(bags))), "dropout_keep": None, "loss": loss,
                  "probabilities": probabilities, "gradients": grads})

    one_losses, one_step = adam_steps(initial, bags[:1], steps=1, weight_decay=0.0)
    decay_losses, decay_steps = adam_steps(initial, bags, steps=3, weight_decay=1e-4)

    out_bags = []
    for (clusters, mask, label), (sizes, _) in zip(bags, shapes):
        features = np.concatenate([np.transpose(c[..., 0], (0, 2, 1)) for c in clusters])
        out_bags.append({"cluster_sizes": sizes, "features": f32(features), "mask": [int(m) for m in mask],
                         "label": label})
    document = {
        "generator": "tools/make_training_fixtures.py",
        "torch_version": torch.__version__,
        "feature_size": feature_size,
        "state_dict": state,
        "bags": out_bags,
        "gradient_cases": cases,
        "adam": [
            {"name": "one_step", "bags": [0], "steps": 1, "learning_rate": 5e-4, "weight_decay": 0.0,
             "losses": one_losses, "parameters": one_step},
            {"name": "three_steps_weight_decay", "bags": list(range(len(bags))), "steps": 3, "learning_rate": 5e-4,
             "weight_decay": 1e-4, "losses": decay_losses, "parameters": decay_steps},
        ],
    }
    for case in cases:
        print(f"{case['name']}: loss {case['loss']:.6f} p {['%.4f' % p for p in case['probabilities']]}")
    print(f"adam one step: loss {one_losses}; three steps with weight decay: losses {decay_losses}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "training_d16.json").write_text(json.dumps(document, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
