#!/usr/bin/env python3
"""The side-by-side benchmark of issue 6: the Python baseline (and attune, through a hook) on one
corpus, per modality, with throughput and peak memory. Standard library only.

  run_bench.py [--size tiny|small|large | --sizes tiny,small | --corpus DIR] [--modalities text,photos,voice,video]
               [--workers N] [--baselines first-reach,tuned] [--attune] [--agree] [--gpu] [--json FILE]

- The corpus is target/bench-corpus/<size>/ (made by benches/corpus/make_corpus.py when missing;
  --corpus names another folder made by it).
- For each modality, benches/baseline/baseline.py runs the manifest with --workers processes
  (default: the cores present) in each style of --baselines (default both: `first-reach`, as a user
  writes it first, and `tuned`; see baseline.py; an empty list runs none) and writes its per-event
  results to target/bench-results/<size>/.
- --attune also runs `attune_run` below (the hook for attune's own runs), reports attune/baseline
  per style, and with --agree compares attune with the tuned baseline event by event
  (benches/baseline/agree.py).
- Prints a table, then one JSON object (also written to --json).

Peak memory, per run, two ways (each run is measured from a child process of its own, so one run's
figures never include another's):
- `peak_rss_tree_mb`: the process tree's RSS summed, sampled from /proc every 50 ms (the tree's
  process list every 0.5 s). Pages shared between processes (the forked workers' copy-on-write
  pages, shared libraries) count once per process, so this overstates what the tree holds;
  `peak_pss_tree_mb` (proportional set size from /proc/PID/smaps_rollup, shared pages divided among
  their sharers) is the fairer sum, read after each new RSS high (at most every 0.5 s: it is
  costly to read). Sampling can miss a peak shorter than 50 ms.
- `max_rss_single_mb`: getrusage(RUSAGE_CHILDREN).ru_maxrss, the largest RSS any single process
  of the tree ever reached (exact, kernel-tracked, but not a sum).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "benches/baseline/baseline.py"
MAKE_CORPUS = ROOT / "benches/corpus/make_corpus.py"
AGREE = ROOT / "benches/baseline/agree.py"
MODALITIES = ["text", "photos", "voice", "video"]
MANIFESTS = {"text": "text.jsonl", "photos": "photos.jsonl", "voice": "voice.jsonl", "video": "video.jsonl"}
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ---------------------------------------------------------------- measuring a process tree

def tree(root: int) -> list[int]:
    """root and its descendants, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces or parentheses
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def rss_kb(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
    except (OSError, ValueError, IndexError):
        return 0  # the process ended between listing and reading


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def measure_here(cmd: list[str]) -> dict:
    """Run cmd, sampling its tree's memory; meant to run in a process of its own (see `measure`)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"rss": 0, "pss": 0}
    done = threading.Event()

    # The sampler shares the cores with what it measures, so it must stay cheap: reading
    # smaps_rollup walks a process's page tables, and listing /proc reads every process's stat;
    # sampling both every 50 ms took 20% off attune's text rate on 2 cores. So RSS (statm, cheap)
    # every 50 ms, the process list every 0.5 s (decoder workers and pool processes live long),
    # and PSS after the RSS sum reaches a new high (at most every 0.5 s, the latest high included).
    def sample() -> None:
        pids, listed, pss_read, pss_due = [], 0.0, 0.0, False
        while not done.is_set():
            now = time.perf_counter()
            if now - listed >= 0.5:
                pids, listed = tree(proc.pid), now
            rss = sum(rss_kb(pid) for pid in pids)
            if rss > peak["rss"]:
                peak["rss"], pss_due = rss, True
            if pss_due and now - pss_read >= 0.5:
                peak["pss"], pss_read, pss_due = max(peak["pss"], sum(pss_kb(pid) for pid in pids)), now, False
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    return {"rc": proc.returncode, "stdout": out, "stderr": err, "wall_s": round(time.perf_counter() - started, 3),
            "peak_rss_tree_mb": round(peak["rss"] / 1024, 1), "peak_pss_tree_mb": round(peak["pss"] / 1024, 1),
            "max_rss_single_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def measure(cmd: list[str]) -> dict:
    """measure_here in a fresh child, so RUSAGE_CHILDREN covers this command's tree only."""
    r = subprocess.run([sys.executable, __file__, "_measure", "--", *map(str, cmd)],
                       stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(r.stdout)


def last_json(stdout: str) -> dict:
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


# ---------------------------------------------------------------- the two sides

def baseline_run(modality: str, corpus: Path, results: Path, workers: int, style: str) -> dict:
    out = results / f"{modality}-baseline-{style}.jsonl"
    m = measure([sys.executable, BASELINE, modality, corpus / MANIFESTS[modality], "--policy", corpus / "policy.toml",
                 "--workers", workers, "--out", out, "--style", style])
    if m["rc"] != 0:
        sys.exit(f"baseline {modality} failed:\n{m['stderr']}")
    print(m["stderr"].strip().splitlines()[-1], file=sys.stderr)
    r = last_json(m["stdout"])
    return {**r, "results": str(out), **{k: m[k] for k in ("peak_rss_tree_mb", "peak_pss_tree_mb", "max_rss_single_mb")}}


def attune_run(modality: str, corpus: Path, results: Path, threads: int, gpu: bool = False) -> dict | None:
    """HOOK: attune's own end-to-end run of one modality's manifest; None leaves attune out.

    Runs `attune run MANIFEST --store S --report R --policy P --threads N` in a fresh store and
    reads the report (crates/attune-pipeline/src/report.rs: events, processed, skipped, failed,
    elapsed_s, events_per_s ...). Adjust here as the CLI and the report grow (per-stage figures).
    The returned dict should keep `events`, `elapsed_s`, `events_per_s` and the memory keys; media
    seconds come from the corpus's corpus.json, as attune's report does not count them.
    """
    binary = ROOT / "target/release/attune"
    if not binary.exists():
        print("attune: target/release/attune is missing (cargo build --release -p attune-cli)", file=sys.stderr)
        return None
    store, report = results / f"{modality}-attune.sqlite", results / f"{modality}-attune-report.json"
    for p in (store, Path(f"{store}-wal"), Path(f"{store}-shm"), report):
        p.unlink(missing_ok=True)
    # The baseline tags English with MiniLM (benches/baseline/tagging.py mirrors that path), so attune
    # is given the same encoder for English here; its default, e5 with the special-category
    # classifier, is measured by the `text-multilingual` criterion group and in the README.
    m = measure([binary, "run", corpus / MANIFESTS[modality], "--store", store, "--report", report,
                 "--policy", corpus / "policy.toml", "--threads", threads,
                 "--text-model", "minilm-l6-v2,multilingual-e5-small", *(["--gpu"] if gpu else [])])
    # 3: the run finished with some events failed (they are in the report); anything else did not finish.
    if m["rc"] not in (0, 3):
        print(f"attune {modality} failed:\n{m['stderr']}", file=sys.stderr)
        return None
    r = json.loads(report.read_text())
    # Timed after loading the models, as the baseline is: attune makes speech sessions when the
    # first recording needs them, inside its run, and reports that time apart (`model_load_s`).
    load_s = r.get("model_load_s", 0.0)
    elapsed = r["elapsed_s"] - load_s
    rate = r["events"] / elapsed if elapsed > 0 else 0.0
    print(f"attune {modality}: {r['events']} events in {elapsed:.2f} s (+{load_s:.2f} s loading models on first use)"
          f" = {rate:.1f} events/s", file=sys.stderr)
    out = {"events": r["events"], "processed": r["processed"], "failed": len(r["failed"]),
           "elapsed_s": elapsed, "model_load_s": load_s, "events_per_s": rate, "wall_s": m["wall_s"], "store": str(store),
           "stages": r.get("stages", {}), "threads": r.get("threads", {}),
           **{k: m[k] for k in ("peak_rss_tree_mb", "peak_pss_tree_mb", "max_rss_single_mb")}}
    # The stages' figures compare with the same end-to-end rate, loading left out.
    out.update(stages_alone(binary, modality, corpus, results, threads, {**r, "events_per_s": rate}))
    return out


def stages_alone(binary: Path, modality: str, corpus: Path, results: Path, threads: int, e2e: dict) -> dict:
    """Each stage alone, as events/s: decoding from a run that only reads, gates and decodes
    (`attune run --decode-only`, same decoder threads); the models and the store writer from the
    end-to-end run's busy time, spent on already-decoded inputs. The slowest of the two bounds
    what overlap can reach; `e2e_vs_slowest` is how close the pipeline comes."""
    store = results / f"{modality}-decode-only.sqlite"
    report = results / f"{modality}-decode-only-report.json"
    for p in (store, Path(f"{store}-wal"), Path(f"{store}-shm"), report):
        p.unlink(missing_ok=True)
    r = subprocess.run([binary, "run", corpus / MANIFESTS[modality], "--store", store, "--report", report,
                        "--policy", corpus / "policy.toml", "--threads", str(threads), "--decode-only"],
                       capture_output=True, text=True)
    if r.returncode not in (0, 3):
        return {}
    d = json.loads(report.read_text())
    # Chat text has nothing to decode: its decode-only run measures reading the manifest.
    decode_alone = d["events_per_s"] if d.get("stages", {}).get("decode", {}).get("items") else None
    model_busy = sum(e2e.get("stages", {}).get(k, {}).get("busy_s", 0.0) for k in ("speech", "text", "images", "store"))
    models_alone = e2e["events"] / model_busy if model_busy > 0 else None
    slowest = min(x for x in (decode_alone, models_alone) if x) if (decode_alone or models_alone) else None
    # On a CPU-only host the stages share the same cores, so the slowest stage alone (which had
    # every core to itself) is out of reach. The shared-core bound is the rate at which the two
    # stages' CPU time per event fills the cores: decoding ran on `decoders` single-threaded
    # workers, the models on `model_threads` (both from the run's own report).
    split = e2e.get("threads") or {}
    decoders, model_threads = split.get("decoders", 1), split.get("model_threads", threads)
    cpu_s = (decoders / decode_alone if decode_alone else 0.0) + (model_threads / models_alone if models_alone else 0.0)
    bound = threads / cpu_s if cpu_s > 0 else None
    return {"decode_alone_ev_s": decode_alone, "models_alone_ev_s": models_alone,
            "e2e_vs_slowest": e2e["events_per_s"] / slowest if slowest else None,
            "shared_core_bound_ev_s": bound,
            "e2e_vs_shared_core_bound": e2e["events_per_s"] / bound if bound else None}


# ---------------------------------------------------------------- report

def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 2**20, 1), "python": platform.python_version()}


def rate(side: dict | None, key: str) -> str:
    if side and side.get("failed") and side["failed"] == side.get("events"):
        return "all failed"
    return f"{side[key]:.1f}" if side and side.get(key) is not None else "-"


def table(rows: dict, styles: list[str]) -> str:
    head = ["modality", "events"]
    for style in styles:
        head += [f"{style} ev/s", "media-s/s"]
    head += ["attune ev/s", "media-s/s"] + [f"attune/{style}" for style in styles]
    head += [f"{style} RSS sum / PSS sum / max (MB)" for style in styles] + ["attune RSS (MB)"]
    lines = [head]
    for modality, r in rows.items():
        bs, a = r["baselines"], r.get("attune")
        events = next((x["events"] for x in [*bs.values(), a] if x), 0)
        line = [modality, str(events)]
        for style in styles:
            line += [rate(bs.get(style), "events_per_s"), rate(bs.get(style), "media_s_per_s")]
        line += [rate(a, "events_per_s"), rate(a, "media_s_per_s")]
        line += [f"{r['ratio'][style]:.2f}x" if r.get("ratio", {}).get(style) else "-" for style in styles]
        for style in styles:
            b = bs.get(style)
            line.append(f"{b['peak_rss_tree_mb']:.0f} / {b['peak_pss_tree_mb']:.0f} / {b['max_rss_single_mb']:.0f}"
                        if b else "-")
        line.append(f"{a['peak_rss_tree_mb']:.0f}" if a else "-")
        lines.append(line)
    widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
    fmt = lambda l: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(l, widths)))  # noqa: E731
    return "\n".join([fmt(lines[0]), fmt(["-" * w for w in widths]), *map(fmt, lines[1:])])


def stage_table(rows: dict) -> str:
    lines = ["modality  attune e2e ev/s  decode alone ev/s  models+store alone ev/s  e2e / slowest stage"
             "  shared-core bound ev/s  e2e / bound"]
    for modality, r in rows.items():
        a = r.get("attune") or {}
        f = lambda k: f"{a[k]:.1f}" if a.get(k) else "-"  # noqa: E731
        g = lambda k: f"{a[k]:.2f}" if a.get(k) else "-"  # noqa: E731
        lines.append(f"{modality:<8}  {f('events_per_s'):>15}  {f('decode_alone_ev_s'):>17}  "
                     f"{f('models_alone_ev_s'):>23}  {g('e2e_vs_slowest'):>19}  {f('shared_core_bound_ev_s'):>22}"
                     f"  {g('e2e_vs_shared_core_bound'):>11}")
    return "\n".join(lines)


def memory_table(by_size: dict) -> str:
    sizes = list(by_size)
    lines = ["peak RSS of attune (MB, process tree) per corpus size: " + ", ".join(sizes)]
    for modality in MODALITIES:
        cells = []
        for size in sizes:
            a = by_size[size].get(modality, {}).get("attune")
            cells.append(f"{a['peak_rss_tree_mb']:.0f}" if a else "-")
        lines.append(f"{modality:<8}  " + "  ".join(c.rjust(8) for c in cells))
    return "\n".join(lines)


def run_size(size: str, corpus_arg: Path | None, args: argparse.Namespace) -> tuple[Path, dict, dict]:
    corpus = (corpus_arg or ROOT / "target/bench-corpus" / size).resolve()
    if not (corpus / "corpus.json").exists():
        if corpus_arg:
            sys.exit(f"{corpus} has no corpus.json (make it with {MAKE_CORPUS.relative_to(ROOT)})")
        subprocess.run([sys.executable, MAKE_CORPUS, "--size", size], check=True)
    summary = json.loads((corpus / "corpus.json").read_text())
    results = ROOT / "target/bench-results" / corpus.name
    results.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    for modality in [m.strip() for m in args.modalities.split(",") if m.strip()]:
        if modality not in MODALITIES:
            sys.exit(f"unknown modality {modality}")
        row: dict = {"baselines": {style: baseline_run(modality, corpus, results, args.workers, style)
                                   for style in args.styles}}
        if args.attune:
            a = attune_run(modality, corpus, results, args.workers, args.gpu)
            if a:
                media = summary.get(modality, {}).get("media_seconds")
                if media and a["elapsed_s"] > 0:
                    a["media_s_per_s"] = round(media / a["elapsed_s"], 3)
                row["attune"] = a
                if a["failed"] == a["events"]:
                    print(f"attune {modality}: every event failed; no ratio", file=sys.stderr)
                else:
                    row["ratio"] = {style: round(a["events_per_s"] / b["events_per_s"], 3)
                                    for style, b in row["baselines"].items() if b["events_per_s"]}
                against = row["baselines"].get("tuned") or next(iter(row["baselines"].values()), None)
                if args.agree and against:
                    row["agreement_with"] = against["style"]
                    r = subprocess.run([sys.executable, AGREE, "compare", against["results"], a["store"],
                                        "--show", "0"], capture_output=True, text=True)
                    row["agreement"] = last_json(r.stdout) if r.returncode == 0 else {"error": r.stderr.strip()}
        rows[modality] = row
    return corpus, summary, rows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_measure":
        print(json.dumps(measure_here(sys.argv[3:])))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", help="tiny, small or large (default small)")
    p.add_argument("--sizes", help="several sizes, e.g. tiny,small (peak memory is compared across them)")
    p.add_argument("--corpus", type=Path, help="a corpus folder (default target/bench-corpus/<size>)")
    p.add_argument("--modalities", default=",".join(MODALITIES))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="baseline processes and attune threads")
    p.add_argument("--baselines", default="first-reach,tuned",
                   help="baseline styles to run (baseline.py --style), comma-separated; empty: none")
    p.add_argument("--attune", action="store_true", help="also run attune through the `attune_run` hook")
    p.add_argument("--agree", action="store_true", help="with --attune: compare decisions event by event")
    p.add_argument("--gpu", action="store_true",
                   help="attune runs with --gpu (CUDA where `just setup-gpu` installed it; the baseline stays on CPU)")
    p.add_argument("--json", type=Path, help="also write the JSON here")
    args = p.parse_args()
    args.styles = [s.strip() for s in args.baselines.split(",") if s.strip()]
    sizes = [s.strip() for s in (args.sizes or args.size).split(",") if s.strip()]
    by_size: dict[str, dict] = {}
    report = {"machine": machine(), "workers": args.workers, "sizes": {}}
    for size in sizes:
        corpus, summary, rows = run_size(size, args.corpus if len(sizes) == 1 else None, args)
        by_size[size] = rows
        report["sizes"][size] = {"corpus": str(corpus), "corpus_summary": summary, "results": rows}
        print(f"\n== {size} corpus ({corpus}) on {report['machine']['cpu']}, {args.workers} workers/threads ==")
        print(table(rows, args.styles))
        if args.attune:
            print()
            print(stage_table(rows))
        for modality, r in rows.items():
            if "agreement" in r:
                print(f"agreement {modality} (with the {r['agreement_with']} baseline): {r['agreement']}")
    if args.attune and len(sizes) > 1:
        print()
        print(memory_table(by_size))
    print(json.dumps(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
