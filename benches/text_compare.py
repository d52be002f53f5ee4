#!/usr/bin/env python3
"""Chat text side by side: attune's default text path (multilingual-e5-small, the language gate and
the special-category classifier) against a Python loop that runs the same encoder through
onnxruntime-python and encodes each chat once, checking nothing; the same chats, the same cores.

  python3 benches/text_compare.py [--threads 2] [--corpus small|multilingual] [--json FILE]

Corpora:
- `small`: the bench corpus's 2,000 English chats (target/bench-corpus/small/text.jsonl, made by
  benches/corpus/make_corpus.py when missing).
- `multilingual`: every line of the never-tuned chat holdouts in 12 languages
  (fixtures/conversations/multilingual/*.holdout.jsonl, fixtures/sensitivity/*.holdout.jsonl,
  fixtures/long_chats/holdout.jsonl), one event each, users in a country of the line's language.

Sides:
- attune: `target/release/attune run` on the manifest, `--threads N`, its defaults (e5 for every
  language, the classifier on every window and clause): events/s from its report (`elapsed_s`,
  which starts after the models are loaded) and from the whole process (wall), peak memory of the
  process.
- Python, tuned (the loop issue 18 names, as a careful user writes it): the same model.onnx and
  tokenizer.json attune loads, "query: " prefix, truncation at 512 tokens, mean pooling and L2
  norm; N worker processes of one onnxruntime thread each, one chat per call (what ran fastest
  here: on the 2,000 bench chats, 2 workers, batches of 1, 4, 8 and 16 chats sorted by length
  gave 60.8, 56.5, 52.7 and 45.7 chats/s; one process of N threads is printed too). Timed after the sessions are made. No language gate, no classifier, no topics: the
  encoder alone, once a chat.
- Python, first reach: one process, onnxruntime's default threads, one chat per call, in file order.

Prints a table of chats per second and the ratio attune / Python; `--json` keeps the figures.
Runs itself again in the baseline's virtual environment (benches/baseline/setup_venv.py, made
when missing), which holds the onnxruntime wheel of the version attune loads.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benches"), str(ROOT / "benches/baseline")]
import run_bench  # noqa: E402  (measure: wall time and peak memory of a process tree)
import setup_venv  # noqa: E402

HOME = Path(os.environ.get("ATTUNE_HOME") or ROOT / ".attune")
MODEL = HOME / "models" / "multilingual-e5-small"
BATCH = 1
MAX_TOKENS = 512
# A country where each language is spoken and the product runs (none excluded by the policy).
COUNTRY = {"en": "US", "id": "ID", "ms": "MY", "es": "MX", "pt": "BR", "hi": "IN", "ar": "EG",
           "vi": "VN", "th": "TH", "tl": "PH", "ja": "JP", "tr": "TR"}


def small_corpus() -> Path:
    manifest = ROOT / "target/bench-corpus/small/text.jsonl"
    if not manifest.exists():
        subprocess.run([sys.executable, str(ROOT / "benches/corpus/make_corpus.py"), "--size", "small",
                        "--photos", "0", "--voice", "0", "--videos", "0"], check=True)
    return manifest


def multilingual_corpus(out: Path) -> Path:
    """One event per line of the never-tuned holdouts; a line's language picks its user's country."""
    files = sorted((ROOT / "fixtures/conversations/multilingual").glob("*.holdout.jsonl")) + \
        sorted((ROOT / "fixtures/sensitivity").glob("*.holdout.jsonl")) + [ROOT / "fixtures/long_chats/holdout.jsonl"]
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with out.open("w") as f:
        for path in files:
            default_lang = path.name.split(".")[0]
            for line in path.read_text().splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                lang = row.get("lang") or default_lang
                f.write(json.dumps({"event_id": f"m-{n:06d}", "user_id": f"u-{n % 400:04d}",
                                    "country": COUNTRY.get(lang, "US"), "product": "assistant",
                                    "captured_at": "2026-03-01T12:00:00Z", "kind": "text",
                                    "text": row["text"]}) + "\n")
                n += 1
    return out


def chats(manifest: Path) -> list[str]:
    return [json.loads(l)["text"] for l in manifest.read_text().splitlines() if l.strip()]


# ---------------------------------------------------------------- the Python loop (in the baseline venv)

def python_side(manifest: Path, style: str, workers: int, threads: int) -> dict:
    r = subprocess.run([sys.executable, __file__, "_python", str(manifest), style, str(workers), str(threads)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"python {style} failed:\n{r.stderr}")
    return json.loads(r.stdout.splitlines()[-1])


_W: dict = {}


def _init(threads: int) -> None:
    import onnxruntime as ort
    from tokenizers import Tokenizer
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    _W["session"] = ort.InferenceSession(str(MODEL / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    _W["tok"] = tok


def _encode(texts: list[str]):
    import numpy as np
    encs = _W["tok"].encode_batch([f"query: {t}" for t in texts])
    seq = max(len(e.ids) for e in encs)
    ids = np.ones((len(encs), seq), dtype=np.int64)  # <pad> = 1
    mask = np.zeros((len(encs), seq), dtype=np.int64)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)] = e.ids
        mask[i, :len(e.ids)] = 1
    hidden = _W["session"].run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]
    m = mask[..., None].astype(np.float32)
    v = (hidden * m).sum(1) / m.sum(1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _batches(texts: list[str]) -> list[list[str]]:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [[texts[i] for i in order[k:k + BATCH]] for k in range(0, len(order), BATCH)]


def _ready(_: int) -> int:
    return os.getpid()


def _python_main(manifest: str, style: str, workers: int, threads: int) -> None:
    texts = chats(Path(manifest))
    if style == "first-reach":
        _init(0)  # onnxruntime's default: every core
        start = time.perf_counter()
        for t in texts:
            _encode([t])
        elapsed = time.perf_counter() - start
    else:
        batches = _batches(texts)
        if workers == 1:
            _init(threads)
            start = time.perf_counter()
            for b in batches:
                _encode(b)
            elapsed = time.perf_counter() - start
        else:
            with mp.get_context("fork").Pool(workers, initializer=_init, initargs=(threads,)) as pool:
                pool.map(_ready, range(workers * 4))  # every worker has made its session
                start = time.perf_counter()
                for _ in pool.imap_unordered(_encode, batches, chunksize=1):
                    pass
                elapsed = time.perf_counter() - start
    print(json.dumps({"chats": len(texts), "elapsed_s": elapsed, "chats_per_s": len(texts) / elapsed}))


# ---------------------------------------------------------------- attune

def attune_side(manifest: Path, threads: int, results: Path) -> dict:
    binary = ROOT / "target/release/attune"
    if not binary.exists():
        sys.exit("text_compare: target/release/attune is missing (cargo build --release -p attune-cli)")
    store, report = results / "text-compare.sqlite", results / "text-compare-report.json"
    for p in (store, Path(f"{store}-wal"), Path(f"{store}-shm"), report):
        p.unlink(missing_ok=True)
    m = run_bench.measure([binary, "run", manifest, "--store", store, "--report", report,
                           "--policy", ROOT / "fixtures/sample/policy.toml", "--threads", threads])
    if m["rc"] not in (0, 3):
        sys.exit(f"attune failed:\n{m['stderr']}")
    r = json.loads(report.read_text())
    return {"events": r["events"], "processed": r["processed"], "skipped": r.get("skipped", {}),
            "elapsed_s": r["elapsed_s"], "events_per_s": r["events"] / r["elapsed_s"],
            "wall_s": m["wall_s"], "events_per_wall_s": r["events"] / m["wall_s"],
            "peak_rss_mb": m["peak_rss_tree_mb"], "peak_pss_mb": m["peak_pss_tree_mb"]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_python":
        _python_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    setup_venv.reexec_in_venv()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--corpus", choices=["small", "multilingual"], default="small")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    results = ROOT / "target/bench-results"
    results.mkdir(parents=True, exist_ok=True)
    manifest = small_corpus() if args.corpus == "small" else multilingual_corpus(results / "text-multilingual.jsonl")
    n = len(chats(manifest))
    print(f"text_compare: {n} chats ({args.corpus}), {args.threads} threads", file=sys.stderr, flush=True)
    rows = {
        "attune (e5 + gate + classifier, whole text path)": attune_side(manifest, args.threads, results),
        f"python tuned, e5 once a chat, {args.threads} workers x 1 thread":
            python_side(manifest, "tuned", args.threads, 1),
        f"python tuned, e5 once a chat, 1 worker x {args.threads} threads":
            python_side(manifest, "tuned", 1, args.threads),
        "python first reach, e5 once a chat, one at a time": python_side(manifest, "first-reach", 1, 0),
    }
    best_python = max(v["chats_per_s"] for k, v in rows.items() if k.startswith("python"))
    a = next(iter(rows.values()))
    print(f"\n{'side':<62} {'chats/s':>8}")
    for k, v in rows.items():
        rate = v.get("events_per_s") or v["chats_per_s"]
        print(f"{k:<62} {rate:>8.1f}")
    print(f"{'attune, whole process (model loading included)':<62} {a['events_per_wall_s']:>8.1f}")
    print(f"\nattune / fastest Python: {a['events_per_s'] / best_python:.2f}x; attune processed {a['processed']} of "
          f"{a['events']} (skipped {a['skipped']}); peak memory {a['peak_rss_mb']:.0f} MB RSS, "
          f"{a['peak_pss_mb']:.0f} MB PSS")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"corpus": args.corpus, "chats": n, "threads": args.threads,
                                         "machine": run_bench.machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
