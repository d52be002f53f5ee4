#!/usr/bin/env python3
"""Write the special-category classifier's labelled neighbours: every training chat of the
classifier (fixtures/sensitivity/*.train.jsonl and the tuning sets of fixtures/conversations/,
the files scripts/finetune_sensitivity.py trains on) and the tuning turns that name no interest
(fixtures/conversations/no_interest/*.tuning.jsonl: "thanks", "make it shorter", ordinary by
what they are) as the text model's `hidden_state_8`
averaged over its tokens, centred, projected on its top principal directions, normalised and
stored in int8 with its class. attune-model-sensitivity reads a segment's nearest neighbours
among them beside the fine-tuned classifier (docs/text-tagging.md, "A second opinion"): a second
opinion from frozen features, whose errors are not the fine-tuned layers' errors.

    just sensitive-neighbours      # or, in the venv `just train-sensitivity` makes:
    .attune/venvs/finetune/bin/python scripts/sensitive_neighbours.py [--dims 128]

Needs the set-up's e5 graphs (.attune/models/multilingual-e5-small/), numpy, onnxruntime and
tokenizers (no PyTorch). Writes models/sensitivity-multilingual-e5-small/neighbours.bin and
neighbours-reference.json (the training files' sha256, and a few texts' neighbour scores,
which the crate's tests check);
put the printed sha256 in model.toml's [neighbours]. The calibration split and the holdouts are
never read here.

neighbours.bin, little-endian: b"ATNB", u32 format (1), u32 rows, u32 input dimensions, u32
dimensions; f32[input] mean; f32[dimensions x input] projection (one output dimension a row);
then per row f32 scale, i8[dimensions] (value = scale x i8), u8 class (index into the
manifest's `classes`, 0 = ordinary).
"""
import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sensitivity_data import CLASSES, ROOT, training_files  # noqa: E402  (what the classifier trains on)

MODEL_DIR = ROOT / ".attune/models/multilingual-e5-small"
OUT = ROOT / "models/sensitivity-multilingual-e5-small"
PREFIX = "query: "
MAX_TOKENS = 512
# Texts whose neighbour scores the crate's test checks (ordinary, sensitive, other scripts).
REFERENCE_TEXTS = [
    "I need a lightweight tent and sleeping bag for a trip in the mountains.",
    "My sponsor says I should go to a meeting tonight instead of the bar.",
    "Saya mau mendaki Rinjani dan berkemah dua malam, perlu bawa apa saja?",
    "¿Qué botas de fútbol me recomiendas para césped artificial?",
    "मुझे हनुमान चालीसा याद करनी है, कोई आसान तरीका?",
    "أبغى أعرف مواعيد الصلاة والوضوء الصحيح",
    "What strike price should I pick for a covered call on Apple expiring next month?",
    "ช่วยแนะนำร้านก๋วยเตี๋ยวเรือแถวอนุสาวรีย์หน่อย",
]


def bank_files():
    """What the classifier trains on, and the tuning turns that name no interest (never their
    holdout, which measures them)."""
    no_interest = sorted((ROOT / "fixtures/conversations/no_interest").glob("*.tuning.jsonl"))
    assert no_interest and not any("holdout" in p.name for p in no_interest)
    return training_files() + no_interest


def pooled_states(texts, threads):
    """Each text's hidden_state_8 averaged over all its tokens (as the crate averages a
    segment's rows), unnormalised."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    lower = ort.InferenceSession(str(MODEL_DIR / "model-lower8.onnx"), so, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    ids = [tok.encode(PREFIX + t).ids[:MAX_TOKENS] for t in texts]
    out = np.zeros((len(texts), 384), np.float32)
    order = np.argsort([len(i) for i in ids], kind="stable")
    for start in range(0, len(order), 16):
        idx = order[start:start + 16]
        width = max(len(ids[i]) for i in idx)
        x = np.ones((len(idx), width), np.int64)
        m = np.zeros((len(idx), width), np.int64)
        for row, i in enumerate(idx):
            x[row, :len(ids[i])] = ids[i]
            m[row, :len(ids[i])] = 1
        (h,) = lower.run(["hidden_state_8"], {"input_ids": x, "attention_mask": m})
        mf = m[..., None].astype(np.float32)
        out[idx] = (h * mf).sum(1) / mf.sum(1)
        if start % 3200 == 0:
            print(f"  {start}/{len(texts)}", file=sys.stderr, flush=True)
    return out


def project(x, mean, proj):
    y = (x - mean) @ proj.T
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def score(queries, rows, classes, k, tau):
    """The crate's rule: the softmax-weighted (by similarity / tau) share of sensitive rows among
    each query's k most similar."""
    sim = queries @ rows.T
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    s = np.take_along_axis(sim, top, 1)
    w = np.exp((s - s.max(1, keepdims=True)) / tau)
    return (w * (classes[top] != 0)).sum(1) / w.sum(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=50, help="for the reference scores (model.toml's k)")
    ap.add_argument("--tau", type=float, default=0.05, help="for the reference scores (model.toml's tau)")
    args = ap.parse_args()

    texts, classes, files = [], [], []
    for path in bank_files():
        files.append({"path": str(path.relative_to(ROOT)), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                texts.append(item["text"])
                classes.append(CLASSES.index(item["expect"]))
    classes = np.array(classes, np.uint8)
    print(f"{len(texts)} training chats ({(classes != 0).sum()} sensitive)", file=sys.stderr)
    x = pooled_states(texts, args.threads)
    mean = x.mean(0).astype(np.float32)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    proj = vt[:args.dims].astype(np.float32)
    rows = project(x, mean, proj)
    scale = (np.abs(rows).max(1) / 127).astype(np.float32)
    q = np.clip(np.round(rows / scale[:, None]), -127, 127).astype(np.int8)

    blob = bytearray(b"ATNB")
    blob += struct.pack("<IIII", 1, len(texts), x.shape[1], args.dims)
    blob += mean.astype("<f4").tobytes() + proj.astype("<f4").tobytes()
    for r in range(len(texts)):
        blob += struct.pack("<f", scale[r]) + q[r].tobytes() + struct.pack("<B", classes[r])
    (OUT / "neighbours.bin").write_bytes(bytes(blob))

    # Reference scores from the stored (int8) rows, as the crate computes them.
    stored = q.astype(np.float32) * scale[:, None]
    ref = project(pooled_states(REFERENCE_TEXTS, args.threads), mean, proj)
    scores = score(ref, stored, classes, args.k, args.tau)
    (OUT / "neighbours-reference.json").write_text(json.dumps({
        "k": args.k, "tau": args.tau, "files": files,
        "items": [{"text": t, "sensitive_share": round(float(s), 6)} for t, s in zip(REFERENCE_TEXTS, scores)],
    }, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"neighbours.bin: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    for t, s in zip(REFERENCE_TEXTS, scores):
        print(f"  {s:.4f}  {t}")


if __name__ == "__main__":
    main()
