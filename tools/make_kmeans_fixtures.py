#!/usr/bin/python3
"""Reference k-means results for Tests/InferenceTests/KMeansTests.swift (spec §5).

For each data set: the points as a little-endian binary file (float32 `.f32`, or float16 `.f16`
for the larger one, which keeps the fixtures small; the float16 values widened to float32 are
exactly what scikit-learn clusters) and scikit-learn's `KMeans(n_clusters=k, random_state=0,
n_init=10)` result in `kmeans_cases.json`: its inertia as reported (float32 arithmetic), the
inertia recomputed in float64 from its centres and labels, its iteration count and labels
(for information: exact labels cannot be reproduced by another implementation), and for
information the float64 inertia of scikit-learn's best of 200 seedings (n_init=200): on data with
few distinct points n_init=10 can stop in a local minimum a few per cent above it.

scikit-learn cannot fit more clusters than points, so for the data sets with fewer distinct points
than 8 it is run with k = the number of distinct points, which is what spec §5 asks of us.

Run with Debian's interpreter (python3-sklearn): /usr/bin/python3 tools/make_kmeans_fixtures.py
"""

import json
import pathlib

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "InferenceTests" / "Fixtures"


def blobs():
    x, _ = make_blobs(n_samples=500, n_features=32, centers=8, cluster_std=7.0, random_state=11)
    return x.astype(np.float32)


def duplicates():
    rng = np.random.default_rng(12)
    uniques = rng.normal(0, 1, size=(30, 64)) + rng.normal(0, 0.8, size=(6, 64))[rng.integers(0, 6, 30)]
    rows = uniques[rng.integers(0, 30, 300)]
    return rows.astype(np.float32)


def fewer_points_than_k():
    rng = np.random.default_rng(13)
    return rng.normal(0, 1, size=(5, 16)).astype(np.float32)


def few_distinct():
    rng = np.random.default_rng(14)
    uniques = rng.normal(0, 1, size=(3, 16))
    return uniques[[0, 1, 0, 2, 1, 0]].astype(np.float32)


def few_distinct_many_points():
    rng = np.random.default_rng(15)
    uniques = rng.normal(0, 1, size=(5, 16))
    return uniques[rng.permutation(np.arange(12) % 5)].astype(np.float32)


def realistic():
    """ReLU-pooled-like features: non-negative, many near zero, a few tissue types of unequal size
    with continuous variation inside each, rounded to float16."""
    rng = np.random.default_rng(16)
    n, d, latent, types = 2000, 128, 24, 6
    mixing = rng.normal(0, 1, size=(latent, d)) / np.sqrt(latent)
    type_means = rng.normal(0, 1.2, size=(types, latent))
    weights = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])
    kinds = rng.choice(types, size=n, p=weights)
    z = type_means[kinds] + rng.normal(0, 0.8, size=(n, latent))
    x = np.maximum(z @ mixing + 0.3, 0) * rng.gamma(4, 0.25, size=(n, 1))
    return x.astype(np.float16)


CASES = [
    ("blobs_500x32", blobs, 8),
    ("duplicates_300x64", duplicates, 8),
    ("fewer_points_than_k_5x16", fewer_points_than_k, 8),
    ("three_distinct_6x16", few_distinct, 8),
    ("five_distinct_12x16", few_distinct_many_points, 8),
    ("realistic_2000x128", realistic, 8),
]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, make, k in CASES:
        stored = make()
        x = stored.astype(np.float32)
        n, d = x.shape
        distinct = len(np.unique(x, axis=0))
        k_effective = min(k, distinct)
        extension = "f16" if stored.dtype == np.float16 else "f32"
        filename = f"kmeans_{name}.{extension}"
        (OUT / filename).write_bytes(stored.astype(stored.dtype.newbyteorder("<")).tobytes())
        model = KMeans(n_clusters=k_effective, random_state=0, n_init=10).fit(x)
        centers = model.cluster_centers_.astype(np.float64)
        inertia64 = float(((x.astype(np.float64) - centers[model.labels_]) ** 2).sum())
        # For information: how far n_init=10 is from scikit-learn's best of 200 seedings.
        many = KMeans(n_clusters=k_effective, random_state=0, n_init=200).fit(x)
        many64 = float(((x.astype(np.float64) - many.cluster_centers_.astype(np.float64)[many.labels_]) ** 2).sum())
        cases.append(
            {
                "name": name,
                "file": filename,
                "dtype": "float16" if extension == "f16" else "float32",
                "count": n,
                "dimension": d,
                "clusters_requested": k,
                "distinct_points": int(distinct),
                "clusters_expected": int(k_effective),
                "sklearn_inertia": float(model.inertia_),
                "sklearn_inertia_float64": inertia64,
                "sklearn_iterations": int(model.n_iter_),
                "sklearn_n_init_200_inertia_float64": many64,
                "sklearn_labels": [int(v) for v in model.labels_],
            }
        )
        print(f"{name}: n={n} d={d} distinct={distinct} k={k_effective} inertia={model.inertia_:.6f} "
              f"(float64 {inertia64:.6f}), {model.n_iter_} iterations; n_init=200: {many64:.6f}")
    manifest = {
        "generator": "tools/make_kmeans_fixtures.py",
        "reference": "sklearn.cluster.KMeans(n_clusters=k, random_state=0, n_init=10), lloyd, k-means++",
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "cases": cases,
    }
    (OUT / "kmeans_cases.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
