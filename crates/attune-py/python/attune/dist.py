"""attune on Ray Data: `python -m attune.dist run INPUT… --store postgresql://…`.

Inputs are JSON Lines manifests (plain or gzip; files or folders of them) and Parquet event
tables (the manifest's fields as columns), as data lakes hold them. Ray Data reads them in
blocks and streams them to a pool of actors; each actor holds one `attune.Worker` — the whole
pipeline in-process (policy gate, decoding in attune's decoder processes, models, tagging, one
store transaction per pipeline batch) — so what travels through Ray's object store, the network
and spill files is manifest lines and batch reports, never decoded media, transcripts or
embeddings. Every actor writes the shared PostgreSQL store; its ledger applies each event once,
so a batch Ray delivers again after a crash changes nothing.

The driver writes one report with `attune run`'s totals (events = processed + skipped + failed)
where it runs.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import attune

MANIFEST_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def expand_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    """Manifests and Parquet tables among `inputs` (files, or folders searched recursively)."""
    manifests, tables = [], []
    for item in inputs:
        path = Path(item)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        if not path.exists():
            raise SystemExit(f"attune.dist: input {item} does not exist")
        for f in files:
            name = f.name.lower()
            if name.endswith(PARQUET_SUFFIXES):
                tables.append(str(f.resolve()))
            elif name.endswith(MANIFEST_SUFFIXES) or f == path:
                manifests.append(str(f.resolve()))
    return manifests, tables


class AttuneActor:
    """One `attune.Worker` per actor; Ray Data calls it with batches of manifest lines."""

    def __init__(self, store: str, worker_kwargs: dict, media_root: str | None):
        self.worker = attune.Worker(store, **worker_kwargs)
        self.media_root = media_root

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        lines = batch["line"]
        paths = batch["path"] if "path" in batch else [""] * len(lines)
        # A batch may span input files; each file's media resolve under its own folder (or
        # under --media-root).
        groups: dict[str, list] = {}
        for line, path in zip(lines, paths):
            root = self.media_root or os.path.dirname(str(path)) or "."
            groups.setdefault(root, []).append(line)
        reports = []
        for root, group in groups.items():
            report = self.worker.process_lines(group, root)
            for failure in report.get("failed", []):
                failure["media_root"] = root
            reports.append(report)
        merged = attune.merge_reports(reports)
        _fault_after_commit(merged)
        return {"report": np.array([json.dumps(merged)], dtype=object)}


def _fault_after_commit(report: dict) -> None:
    """Effectively-once tests: with ATTUNE_FAULT_EXIT_AFTER_COMMIT=FILE, the first actor with a
    committed batch creates FILE and dies before Ray has its result: Ray runs the batch again."""
    marker = os.environ.get("ATTUNE_FAULT_EXIT_AFTER_COMMIT")
    if not marker or report["processed"] == 0:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    print("fault injection: exiting after the store commit, before the batch is acknowledged",
          file=sys.stderr, flush=True)
    os._exit(137)


def _lines_from_table(batch: Any) -> Any:
    """Parquet rows → manifest lines (+ their file), so both inputs reach actors alike."""
    import pyarrow as pa

    paths = batch.column("path").to_pylist() if "path" in batch.column_names else [""] * batch.num_rows
    rows = batch.drop_columns(["path"]).to_pylist() if "path" in batch.column_names else batch.to_pylist()
    lines = [l.decode() for l in attune.records_to_lines(rows)]
    return pa.table({"line": lines, "path": paths})


def build_dataset(ray_data: Any, manifests: list[str], tables: list[str], override_blocks: int | None):
    parts = []
    if manifests:
        # Each line a string (a broken line stays a line, and fails alone in the pipeline);
        # gzip is recognised by the file name.
        ds = ray_data.read_text(manifests, include_paths=True, drop_empty_lines=True,
                                override_num_blocks=override_blocks)
        parts.append(ds.rename_columns({"text": "line"}))
    if tables:
        ds = ray_data.read_parquet(tables, include_paths=True, override_num_blocks=override_blocks)
        parts.append(ds.map_batches(_lines_from_table, batch_format="pyarrow"))
    if not parts:
        raise SystemExit("attune.dist: no manifests (.jsonl[.gz]) or Parquet tables among the inputs")
    return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])


def run(args: argparse.Namespace) -> int:
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy

    manifests, tables = expand_inputs(args.inputs)
    # ATTUNE_* settings of the driver reach every actor (models folder, cache, logging …).
    env = {k: v for k, v in os.environ.items() if k.startswith("ATTUNE_")}
    init: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": True}
    if args.address:
        init["address"] = args.address
    else:
        # A local cluster of this host: spilled objects (manifest lines, reports) go to a
        # folder of ours, not the shared /tmp.
        if args.spill_dir:
            Path(args.spill_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
            init["object_spilling_directory"] = str(Path(args.spill_dir).resolve())
        if args.num_cpus:
            init["num_cpus"] = args.num_cpus
    # Shut down however the run ends: a local cluster this driver started must not linger.
    with ray.init(**init):
        started = time.monotonic()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = not args.quiet
        ds = build_dataset(ray.data, manifests, tables, args.blocks)
        worker_kwargs = {
            "models": args.models, "policy": args.policy, "threads": args.threads_per_actor,
            "gpu": args.gpu, "retry_failed": args.retry_failed, "attune_binary": args.attune_binary,
            "require_models": [m for m in (args.require_models or "").split(",") if m],
            "flags": args.flags,
        }
        out = ds.map_batches(
            AttuneActor,
            fn_constructor_kwargs={"store": args.store, "worker_kwargs": worker_kwargs, "media_root": args.media_root},
            batch_size=args.batch_records,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=args.actors),
            num_cpus=args.actor_cpus,
            num_gpus=1 if args.gpu else 0,
        )
        reports = []
        # Running totals for the progress lines; the reports are merged once, at the end.
        events = processed = skipped = failed = 0
        for row in out.iter_rows():
            batch = json.loads(row["report"])
            reports.append(batch)
            if not args.quiet:
                events += batch["events"]
                processed += batch["processed"]
                skipped += sum(batch["skipped"].values())
                failed += len(batch["failed"])
                print(f"progress: {events} events, processed {processed} skipped {skipped} failed {failed}",
                      file=sys.stderr, flush=True)
        report = attune.merge_reports(reports, elapsed_s=time.monotonic() - started)
        report["engine"] = {"name": "ray", "actors": args.actors, "actor_cpus": args.actor_cpus,
                            "threads_per_actor": args.threads_per_actor, "gpu": args.gpu,
                            "nodes": len([n for n in ray.nodes() if n.get("Alive")])}
    skipped = sum(report["skipped"].values())
    failed = len(report["failed"])
    assert report["events"] == report["processed"] + skipped + failed, report
    text = json.dumps(report, indent=2) + "\n"
    if args.report:
        Path(args.report).write_text(text)
    print(f"{report['events']} events: {report['processed']} processed, {skipped} skipped, {failed} failed "
          f"in {report['elapsed_s']:.1f}s ({report['events_per_s']:.1f} events/s) on {args.actors} actors",
          file=sys.stderr)
    if failed and failed == report["events"]:
        return 4  # as `attune run`: every event failed
    return 3 if failed else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m attune.dist", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run manifests and Parquet tables through attune on Ray Data")
    r.add_argument("inputs", nargs="+", help="JSON Lines manifests (.jsonl, .jsonl.gz), Parquet tables, or folders")
    r.add_argument("--store", required=True, help="postgresql://… (shared by every actor); a SQLite file only with one actor")
    r.add_argument("--address", help="a running Ray cluster (`auto`, or HOST:PORT); default: start one on this host")
    r.add_argument("--actors", type=int, default=1, help="actors in the pool (each: one pipeline, its models loaded once)")
    r.add_argument("--actor-cpus", type=float, default=1.0, help="Ray CPUs each actor reserves")
    r.add_argument("--threads-per-actor", type=int, default=1, help="attune's thread budget per actor (decoders + models)")
    r.add_argument("--gpu", action="store_true", help="one GPU per actor (ONNX Runtime's CUDA provider); CPU-only by default")
    r.add_argument("--batch-records", type=int, default=256, help="records per Ray batch (each actor call)")
    r.add_argument("--blocks", type=int, help="read the inputs as this many blocks (default: Ray's choice)")
    r.add_argument("--media-root", help="resolve media paths under this folder (default: each input file's folder)")
    r.add_argument("--models", help="the models folder on every node (default: attune's search)")
    r.add_argument("--policy", help="a TOML policy file readable on every node")
    r.add_argument("--retry-failed", action="store_true", help="only the events that failed before (from the store)")
    r.add_argument("--require-models", help="text,image,speech,all: refuse to start without them")
    r.add_argument("--attune-binary", help="the attune binary for decoder processes (default: $ATTUNE_BIN, PATH)")
    r.add_argument("--report", help="write the run's report (JSON) here, where the driver runs")
    r.add_argument("--spill-dir", help="a local cluster's object-spilling folder (made with mode 0700)")
    r.add_argument("--num-cpus", type=float, help="a local cluster's CPUs (default: the host's)")
    r.add_argument("--quiet", action="store_true", help="no progress bars or lines")
    r.add_argument("flags", nargs="*", default=[], help="after `--`: further `attune run` flags")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    args = parser().parse_args(argv)
    args.flags = extra
    if args.command == "run":
        if not args.store.startswith(("postgres://", "postgresql://")) and args.actors > 1:
            raise SystemExit("attune.dist: several actors need a shared store (postgresql://…); "
                             "a SQLite file takes one writer")
        return run(args)
    return 2


def cli() -> None:
    """`python -m attune.dist`: `main()`, then leave without interpreter finalization, its exit
    code kept (a run that raised: its traceback, exit 1). Ray's C++ threads (the core worker's,
    Ray Data's executor's) can outlive `ray.shutdown()`, and finalizing the interpreter under them
    now and then ends a finished run with SIGSEGV (seen once in CI: exit -11 after the summary
    line; the pattern of ray-project/ray#31145), which a scheduler would take for a failed run.
    Argument errors (SystemExit) leave as usual: Ray is not started yet."""
    # A native crash (Ray's core worker, the store's driver) prints where Python stood.
    faulthandler.enable()
    try:
        code = main()
    except Exception:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    cli()
