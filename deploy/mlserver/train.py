"""Train the digit classifiers that MLServer serves for FlexiFlow's tests.

The data is scikit-learn's bundled copy of the UCI optical digits
(load_digits: 1,797 8x8 images, pixels 0..16), the same images as the demo's
stages/models/digits/data/digits.csv.gz, split the same way: rows whose index
is not a multiple of 3 train, the others are what the demo's producer samples.

Models, cheapest and weakest first (the flat input is the 64 pixels, row-major,
as the demo's DigitImage.pixels):

  digits-logreg   strongly regularised logistic regression on clean images:
                  the cheapest; confident on clean input, unsure (and so
                  failing the confidence assertion) once the input drifts
  digits-knn      10 nearest neighbours over the clean training images:
                  sure on clean input, on about half the drifted batches
  digits-mlp      a 128-unit neural network trained on clean images and on
                  copies corrupted like every drift phase: confident and
                  right in every phase

and three fault models (faults.py) used by the fault tests:

  digits-slow     digits-logreg, answering after a delay
  digits-broken   fails every request with HTTP 500
  digits-spare    digits-logreg again, for the test that unloads a model

Each model gets a directory with model.joblib and model-settings.json.
With --report, prints per drift phase each model's accuracy, mean
confidence, share of 32-image batches where >=80% of records reach the
confidence threshold, and predict time per batch.
"""

import argparse
import json
import os
import time

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MAX_PIXEL = 16.0

# The demo's drift schedule (stages/models/digits/drift.go Schedule).
PHASES = {
    "clean": dict(fade=0.0, hot=0.0, noise=0.0),
    "speckle": dict(fade=0.45, hot=0.13, noise=0.0),
    "storm": dict(fade=0.0, hot=0.03, noise=8.0),
}


def corrupt(rng, x, fade, hot, noise):
    out = x * (1 - fade)
    if hot > 0:
        out = np.where(rng.random(out.shape) < hot, MAX_PIXEL, out)
    if noise > 0:
        out = out + rng.normal(0, noise, out.shape)
    return np.clip(out, 0, MAX_PIXEL)


def augmented(rng, x, y, copies):
    xs, ys = [x], [y]
    for _ in range(copies):
        for p in ("speckle", "storm"):
            xs.append(corrupt(rng, x, **PHASES[p]))
            ys.append(y)
    return np.vstack(xs), np.concatenate(ys)


def settings(name, implementation, extra=None):
    s = {
        "name": name,
        "implementation": implementation,
        "parameters": {"uri": "./model.joblib", "version": "v1"},
    }
    if extra:
        s["parameters"]["extra"] = extra
    return s


def save(out, name, model, implementation="mlserver_sklearn.SKLearnModel", extra=None):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    joblib.dump(model, os.path.join(d, "model.joblib"))
    with open(os.path.join(d, "model-settings.json"), "w") as f:
        json.dump(settings(name, implementation, extra), f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="model repository directory to write")
    ap.add_argument("--report", action="store_true", help="print each model's quality per drift phase")
    ap.add_argument("--threshold", type=float, default=0.6, help="confidence threshold for --report")
    args = ap.parse_args()

    digits = load_digits()
    x, y = digits.data.astype(np.float64), digits.target
    idx = np.arange(len(x))
    train, test = idx % 3 != 0, idx % 3 == 0
    rng = np.random.default_rng(7)
    xa, ya = augmented(rng, x[train], y[train], copies=3)

    models = {
        "digits-logreg": LogisticRegression(C=0.001, tol=1e-3, max_iter=3000),
        "digits-knn": KNeighborsClassifier(n_neighbors=10),
        "digits-mlp": make_pipeline(
            StandardScaler(), MLPClassifier((128,), alpha=1e-3, max_iter=400, random_state=1)
        ),
    }
    models["digits-logreg"].fit(x[train], y[train])
    models["digits-knn"].fit(x[train], y[train])
    models["digits-mlp"].fit(xa, ya)
    for name, m in models.items():
        save(args.out, name, m)
    # Fault models: the same weak model behind deliberately faulty servers.
    save(args.out, "digits-slow", models["digits-logreg"], "faults.SlowModel", {"delay_seconds": 3})
    save(args.out, "digits-broken", models["digits-logreg"], "faults.BrokenModel")
    save(args.out, "digits-spare", models["digits-logreg"])
    print(f"train.py: saved {len(models)} digit models and 3 fault models into {args.out}")

    if args.report:
        report(models, x[test], y[test], args.threshold)


def report(models, x, y, threshold):
    rng = np.random.default_rng(11)
    print(f"{'phase':8} {'model':14} {'acc':>6} {'conf':>6} {'pass':>6} {'ms/32':>7}")
    for phase, p in PHASES.items():
        batches = []
        for _ in range(60):
            i = rng.integers(0, len(x), 32)
            batches.append((corrupt(rng, x[i], **p), y[i]))
        for name, m in models.items():
            acc = conf = passed = 0.0
            t0 = time.perf_counter()
            for xb, yb in batches:
                proba = m.predict_proba(xb)
                acc += (m.classes_[proba.argmax(1)] == yb).mean()
                c = proba.max(1)
                conf += c.mean()
                passed += (c >= threshold).mean() >= 0.8
            ms = (time.perf_counter() - t0) * 1000 / len(batches)
            n = len(batches)
            print(f"{phase:8} {name:14} {acc/n:6.3f} {conf/n:6.3f} {passed/n:6.2f} {ms:7.2f}")


if __name__ == "__main__":
    main()
