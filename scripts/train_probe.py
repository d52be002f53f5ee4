#!/usr/bin/env python3
"""Train the sensitivity probe of one text model: a softmax regression over its sentence
embeddings, one class per special category plus `ordinary`, written to
crates/attune-tag/data/MODEL/probe.tsv (beside that model's calibration.toml).

  python3 scripts/train_probe.py --model multilingual-e5-small --train FILE.jsonl ...

The vectors come from `attune embed` (the release binary, `cargo build --release -p attune-cli`),
so they are exactly what the tagger sees: each text whole and clause by clause, with the clause
examples labelled like their text only when the text is ordinary (a clause of a sensitive text
may itself be harmless, so it is not taught as sensitive). Needs numpy only.

The CI does not run this: the trained weights are committed, and `attune eval` measures them.
"""
import argparse
import json
from pathlib import Path

import numpy as np

import vectors

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["ordinary", "political_opinion", "religious_belief", "trade_union", "health", "sex_life", "ethnic_origin"]


def embed(model: str, path: Path) -> dict[int, list[tuple[str, np.ndarray]]]:
    return vectors.embed(model, path, dtype=np.float64)


def train(x: np.ndarray, y: np.ndarray, weights: np.ndarray, l2: float, epochs: int = 8000, lr: float = 1.0):
    n, d = x.shape
    k = len(CLASSES)
    w = np.zeros((k, d))
    b = np.zeros(k)
    onehot = np.eye(k)[y]
    for _ in range(epochs):
        logits = x @ w.T + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) * weights[:, None] / weights.sum()
        w -= lr * (g.T @ x + l2 * w)
        b -= lr * g.sum(0)
    return w, b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm-l6-v2")
    ap.add_argument("--train", type=Path, nargs="+", default=[ROOT / "fixtures/conversations/train.jsonl"])
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--epochs", type=int, default=8000)
    args = ap.parse_args()
    xs, labels = [], []
    for path in args.train:
        items = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
        vectors = embed(args.model, path)
        for k, it in enumerate(items, start=1):
            label = CLASSES.index(it["expect"])
            for segment, v in vectors[k]:
                if segment == "window" or label == 0:
                    xs.append(v)
                    labels.append(label)
    x = np.stack(xs)
    y = np.array(labels)
    # Balance the classes: each category weighs as much as `ordinary`.
    counts = np.bincount(y, minlength=len(CLASSES))
    weights = np.array([1.0 / counts[c] for c in y])
    w, b = train(x, y, weights, args.l2, epochs=args.epochs)
    pred = (x @ w.T + b).argmax(1)
    print(f"training accuracy {np.mean(pred == y):.3f} on {len(y)} examples ({dict(zip(CLASSES, counts.tolist()))})")
    out = ROOT / "crates/attune-tag/data" / args.model / "probe.tsv"
    with out.open("w") as f:
        f.write(f"class\tbias\tweights ({x.shape[1]}, for unit-length {args.model} embeddings; made by scripts/train_probe.py)\n")
        for c, name in enumerate(CLASSES):
            f.write(name + "\t" + f"{b[c]:.6f}" + "\t" + " ".join(f"{v:.6f}" for v in w[c]) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
