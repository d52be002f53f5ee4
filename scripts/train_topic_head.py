#!/usr/bin/env python3
"""Train the topic head of one text model: a softmax regression from its item vectors to the
allowed Interest nodes, on the labelled example chats of crates/attune-tag/data/node-examples.tsv
(ordinary chats of the training splits only), written to
crates/attune-tag/data/MODEL/topic-head.tsv (beside that model's calibration.toml).

    python3 scripts/train_topic_head.py --model multilingual-e5-small

The tagger adds `topic_head_weight` x the head's log-probability of a node to that node's topic
score (its vector and its nearest example chats): the head learns what tells similar nodes apart
(Cooking from Dining Out, Travel from Adventure Travel), which neither a description nor three
neighbours carry. Only allowed nodes are classes, so it can rank topics and never reach a
sensitive node or any special-category decision.

With its "no interest" class (a row named `none`, trained on the turns of
fixtures/conversations/no_interest/*.tuning.jsonl: "thanks", "make it shorter", "what do you
mean?"), the head also says when a text names nothing to take an interest from: the tagger then
gives it no topics (`no_interest_threshold`). `--no-interest-weight` says how much that class
weighs against one node (0: no such class).

The vectors come from `attune embed` (the release binary, `cargo build --release -p attune-cli`),
so they are what the tagger sees: a chat's windows, averaged and normed as its topics are. Needs
numpy only. The CI does not run this: the trained weights are committed, `attune eval` measures
them (the settings below were chosen on the tuning sets, docs/text-tagging.md, "A topic head").
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import vectors
from check_labelled_sets import is_sensitive, load_taxonomy

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "crates/attune-tag/data"


def allowed_nodes() -> list[int]:
    """The Interest nodes a topic can be, as the tagger has them: the described nodes less the
    branch's root and every node that is sensitive or below one (the labelled sets' own check)."""
    parent, described, sensitive = load_taxonomy()
    return sorted(int(n) for n in described if parent.get(n) and not is_sensitive(n, parent, sensitive))


NO_INTEREST = ROOT / "fixtures/conversations/no_interest"


def examples(model: str) -> tuple[np.ndarray, list[int]]:
    rows = []
    for line in (DATA / "node-examples.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        node, text = line.split("\t", 1)
        rows.append((int(node), text))
    return item_vectors(model, rows)


def no_interest_examples(model: str) -> np.ndarray:
    """The tuning turns that name no interest (the holdouts beside them are never trained on)."""
    texts = [json.loads(line)["text"] for path in sorted(NO_INTEREST.glob("*.tuning.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return item_vectors(model, [(0, t) for t in texts])[0]


def item_vectors(model: str, rows: list[tuple[int, str]]) -> tuple[np.ndarray, list[int]]:
    """Each text's vector as the tagger reads it for topics: its windows' mean, normed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.jsonl"
        path.write_text("".join(json.dumps({"text": t, "expect": "ordinary"}, ensure_ascii=False) + "\n" for _, t in rows))
        by_line = vectors.embed(model, path, dtype=np.float64)
    xs = []
    for k in range(1, len(rows) + 1):
        windows = [v for segment, v in by_line[k] if segment == "window"]
        mean = np.mean(windows, axis=0)
        xs.append(mean / np.linalg.norm(mean))
    return np.stack(xs), [node for node, _ in rows]


def train(x: np.ndarray, y: np.ndarray, weights: np.ndarray, classes: int, l2: float, scale: float, epochs: int,
          lr: float):
    """Full-batch Adam on the weighted mean cross-entropy of softmax(scale * x @ w + b), plus
    l2 * |w|^2."""
    n, d = x.shape
    w = np.zeros((d, classes))
    b = np.zeros(classes)
    onehot = np.eye(classes)[y]
    moments = [[np.zeros_like(w), np.zeros_like(w)], [np.zeros_like(b), np.zeros_like(b)]]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, epochs + 1):
        logits = scale * (x @ w) + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) * (weights / weights.sum())[:, None]
        grads = [scale * (x.T @ g) + 2 * l2 * w, g.sum(0)]
        for param, grad, (m, v) in zip((w, b), grads, moments):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            param -= lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)
    return scale * w, b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--balance", type=float, default=1.0,
                    help="each example weighs (its node's example count)^-BALANCE (0: all alike, 1: every node alike)")
    ap.add_argument("--no-interest-weight", type=float, default=1.0,
                    help="how much the `none` class weighs against one node (0: no such class)")
    ap.add_argument("--out", type=Path, help="default: crates/attune-tag/data/MODEL/topic-head.tsv")
    args = ap.parse_args()
    nodes = allowed_nodes()
    index = {node: k for k, node in enumerate(nodes)}
    x, labels = examples(args.model)
    keep = [k for k, node in enumerate(labels) if node in index]
    if len(keep) < len(labels):
        print(f"left out {len(labels) - len(keep)} examples of nodes that are not allowed topics")
    x = x[keep]
    y = np.array([index[labels[k]] for k in keep])
    counts = np.bincount(y, minlength=len(nodes))
    weights = counts[y].astype(np.float64) ** -args.balance
    classes = [str(node) for node in nodes]
    if args.no_interest_weight > 0:
        # The `none` class last; its turns together weigh what a node of the median size does
        # in all, times --no-interest-weight.
        none = no_interest_examples(args.model)
        node_total = np.median(counts[counts > 0]) ** (1 - args.balance)
        x = np.concatenate([x, none])
        y = np.concatenate([y, np.full(len(none), len(nodes))])
        weights = np.concatenate([weights, np.full(len(none), args.no_interest_weight * node_total / len(none))])
        classes.append("none")
    w, b = train(x, y, weights, len(classes), args.l2, args.scale, args.epochs, args.lr)
    pred = (x @ w + b).argmax(1)
    print(f"training accuracy {np.mean(pred == y):.3f} on {len(y)} chats, {len(set(y.tolist()))} of {len(classes)} classes")
    out = args.out or DATA / args.model / "topic-head.tsv"
    with out.open("w") as f:
        f.write(f"node\tbias\tweights ({x.shape[1]}, for unit-length {args.model} item vectors; "
                f"made by scripts/train_topic_head.py --l2 {args.l2} --scale {args.scale} --epochs {args.epochs} "
                f"--balance {args.balance} --no-interest-weight {args.no_interest_weight})\n")
        for k, name in enumerate(classes):
            f.write(f"{name}\t{b[k]:.5f}\t" + " ".join(f"{v:.5f}" for v in w[:, k]) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
