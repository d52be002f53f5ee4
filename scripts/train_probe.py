#!/usr/bin/env python3
"""Train the sensitivity probe: a softmax regression over MiniLM sentence embeddings, one class
per special category plus `ordinary`, written to crates/attune-tag/data/sensitive-probe.tsv.

  python3 scripts/train_probe.py [--train fixtures/conversations/train.jsonl ...]

Needs `pip install onnxruntime==1.32.0 tokenizers==0.22.1 numpy` and `just setup` (for the model
and tokenizer in .attune/models/minilm-l6-v2). The embeddings are computed exactly as the Rust side
does (truncation at 256 tokens, mean pooling over the attention mask, L2 normalisation), and each
training text is embedded whole and clause by clause (the tagger checks both), with the clause
examples labelled like their text only when the text is ordinary: a clause of a sensitive text
may itself be harmless, so it is not taught as sensitive.

The CI does not run this: the trained weights are committed, and `attune eval` measures them.
"""
import argparse
import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / ".attune/models/minilm-l6-v2"
OUT = ROOT / "crates/attune-tag/data/sensitive-probe.tsv"
CLASSES = ["ordinary", "political_opinion", "religious_belief", "trade_union", "health", "sex_life", "ethnic_origin"]


def clauses(text: str) -> list[str]:
    """The same split as attune_tag::clauses (sentence ends, semicolons, dashes, commas)."""
    out: list[str] = []
    for piece in re.split(r"[.!?;,\n—–()]", text):
        piece = piece.strip()
        if not piece:
            continue
        if out and (len(out[-1].split()) < 4 or len(piece.split()) < 4):
            out[-1] += ", " + piece
        else:
            out.append(piece)
    return out


class Embedder:
    def __init__(self) -> None:
        self.tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
        self.tok.enable_truncation(256)
        self.tok.enable_padding()
        self.sess = ort.InferenceSession(str(MODEL / "model.onnx"), providers=["CPUExecutionProvider"])

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), 64):
            enc = self.tok.encode_batch(texts[i : i + 64])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            types = np.array([e.type_ids for e in enc], dtype=np.int64)
            hidden = self.sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
            out.append(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))
        return np.concatenate(out)


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
    # train2.jsonl (harder, implicit cases) is left out by default: with it this linear probe
    # caught fewer sensitive items on tuning.jsonl at the same false-positive rate (75/90 vs 77/90
    # at P >= 0.9). It is kept for a stronger probe.
    ap.add_argument("--train", type=Path, nargs="+", default=[ROOT / "fixtures/conversations/train.jsonl"])
    ap.add_argument("--l2", type=float, default=1e-4)
    args = ap.parse_args()
    items = [json.loads(l) for path in args.train for l in path.read_text().splitlines() if l.strip()]
    texts, labels = [], []
    for it in items:
        label = CLASSES.index(it["expect"])
        texts.append(it["text"])
        labels.append(label)
        parts = clauses(it["text"])
        if label == 0 and len(parts) > 1:
            texts.extend(parts)
            labels.extend([0] * len(parts))
    embed = Embedder()
    x = embed(texts)
    y = np.array(labels)
    # Balance the classes: each category weighs as much as `ordinary`.
    counts = np.bincount(y, minlength=len(CLASSES))
    weights = np.array([1.0 / counts[c] for c in y])
    w, b = train(x, y, weights, args.l2)
    pred = (x @ w.T + b).argmax(1)
    print(f"training accuracy {np.mean(pred == y):.3f} on {len(y)} examples ({dict(zip(CLASSES, counts.tolist()))})")
    with OUT.open("w") as f:
        f.write("class\tbias\tweights (384, for unit-length all-MiniLM-L6-v2 embeddings; made by scripts/train_probe.py)\n")
        for c, name in enumerate(CLASSES):
            f.write(name + "\t" + f"{b[c]:.6f}" + "\t" + " ".join(f"{v:.6f}" for v in w[c]) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
