#!/usr/bin/env python3
"""attune on Ray Data against `attune run`, on this machine (`just bench-dist`).

The corpus is the sample manifest repeated with fresh event ids (chats, photos, voice, video and
broken lines in the sample's proportions). Three runs, release builds, same host:
`attune run --threads T` into SQLite; `python -m attune.dist` with 1 actor of T threads, and with
T actors of 1 thread, into a throwaway PostgreSQL. Wall-clock time from start to report (model
loading and Ray's start-up included: what a batch job pays), and each run's events/s. Prints a
Markdown table; run with the Ray venv's Python.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "crates/attune-py/tests"))
from conftest import ThrowawayPostgres  # noqa: E402


def corpus(copies: int, out: Path) -> int:
    lines = (ROOT / "fixtures/sample/manifest.jsonl").read_text().splitlines()
    n = 0
    with out.open("w") as f:
        for c in range(copies):
            for line in lines:
                try:
                    event = json.loads(line)
                    if isinstance(event, dict) and isinstance(event.get("event_id"), str):
                        event["event_id"] = f"{event['event_id']}-c{c}"
                        if isinstance(event.get("path"), str):
                            event["path"] = str(ROOT / "fixtures/sample" / event["path"])
                        line = json.dumps(event, ensure_ascii=False)
                except ValueError:
                    pass
                f.write(line + "\n")
                n += 1
    return n


def timed(cmd: list[str], env: dict | None = None) -> float:
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.monotonic() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"{cmd}: {done.returncode}\n{done.stderr[-3000:]}")
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--copies", type=int, default=8)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    binary = str(ROOT / "target/release/attune")
    tmp = Path(tempfile.mkdtemp(prefix="attune-dist-bench-"))
    manifest = tmp / "corpus.jsonl"
    events = corpus(args.copies, manifest)
    policy = str(ROOT / "fixtures/sample/policy.toml")
    rows = []
    t = timed([binary, "run", str(manifest), "--store", str(tmp / "p.sqlite"), "--policy", policy,
               "--threads", str(args.threads), "--report", str(tmp / "run.json")])
    rows.append(("`attune run` → SQLite", f"1 process, {args.threads} threads", t))
    pg = ThrowawayPostgres()
    try:
        env = {"ATTUNE_BIN": binary, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        for actors, threads in ((1, args.threads), (args.threads, 1)):
            url = pg.create_database(f"bench_{actors}")
            # One more logical CPU than the actors hold, for Ray Data's read tasks.
            t = timed([sys.executable, "-m", "attune.dist", "run", str(manifest), "--store", url,
                       "--actors", str(actors), "--actor-cpus", str(threads), "--threads-per-actor", str(threads),
                       "--num-cpus", str(args.threads + 1), "--policy", policy, "--quiet",
                       "--report", str(tmp / f"ray{actors}.json")], env)
            rows.append(("`attune.dist` → PostgreSQL", f"{actors} actor(s) × {threads} thread(s)", t))
    finally:
        pg.stop()
    print(f"{events} events (the sample ×{args.copies}), {args.threads} cores\n")
    print("| run | workers | wall s | events/s |")
    print("|---|---|---|---|")
    for name, workers, t in rows:
        print(f"| {name} | {workers} | {t:.1f} | {events / t:.1f} |")


if __name__ == "__main__":
    main()
