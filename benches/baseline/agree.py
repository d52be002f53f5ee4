#!/usr/bin/env python3
"""Does the Python baseline decide what attune decides, event by event? (stdlib only)

  agree.py manifest LABELLED.jsonl OUT.jsonl     a text manifest of a labelled set (one user an item)
  agree.py compare RESULTS.jsonl STORE.sqlite    the baseline's --out against attune's store

`compare` reads attune's ledger (tagged / no_topic / dropped) and evidence (topic and score per
event) and reports, over the events both decided: the same outcome; the same topic set (dropped =
dropped, no topic = no topic); the same best topic; the largest score difference on shared topics.
The last line of stdout is a JSON object with these figures.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path


def make_manifest(labelled: Path, out: Path) -> None:
    lines = []
    for i, line in enumerate(l for l in labelled.read_text().splitlines() if l.strip()):
        item = json.loads(line)
        eid = f"{labelled.stem}-{i:04d}"
        lines.append(json.dumps({"event_id": eid, "user_id": eid, "country": "US", "product": "assistant",
                                 "captured_at": "2026-03-01T12:00:00Z", "kind": "text", "text": item["text"]}))
    out.write_text("\n".join(lines) + "\n")


def attune_decisions(store: Path) -> dict[str, tuple[str, dict[int, float]]]:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    decided = {eid: (outcome, {}) for eid, outcome in db.execute("SELECT event_id, outcome FROM ledger")}
    for eid, topic, score in db.execute("SELECT event_id, topic_id, score FROM evidence"):
        decided[eid][1][int(topic)] = float(score)
    return decided


def compare(results: Path, store: Path, show: int) -> dict:
    attune = attune_decisions(store)
    ours = {r["event_id"]: r for r in map(json.loads, results.read_text().splitlines())
            if r["outcome"] in ("tagged", "no_topic", "dropped")}
    both = sorted(set(ours) & set(attune))
    same_outcome = same_topics = same_best = 0
    max_diff, diffs = 0.0, []
    for eid in both:
        r, (outcome, topics) = ours[eid], attune[eid]
        mine = {int(t): s for t, s in r["topics"]}
        same_outcome += r["outcome"] == outcome
        if r["outcome"] == outcome and set(mine) == set(topics):
            same_topics += 1
        else:
            diffs.append(f"{eid}: baseline {r['outcome']} {sorted(mine)} {r.get('detector', '')} | "
                         f"attune {outcome} {sorted(topics)}")
        best = lambda d: max(d.items(), key=lambda x: (x[1], -x[0]))[0] if d else None  # noqa: E731
        same_best += r["outcome"] == outcome and best(mine) == best(topics)
        for t in set(mine) & set(topics):
            max_diff = max(max_diff, abs(mine[t] - topics[t]))
    n = len(both)
    figures = {"events_compared": n, "only_baseline": len(set(ours) - set(attune)),
               "only_attune": len(set(attune) - set(ours)),
               "same_outcome": same_outcome, "same_topics": same_topics, "same_best_topic": same_best,
               "agreement": round(same_topics / n, 4) if n else None,
               "max_score_diff": float(f"{max_diff:.2e}")}
    for d in diffs[:show]:
        print("differs:", d, file=sys.stderr)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("manifest")
    m.add_argument("labelled", type=Path)
    m.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("results", type=Path)
    c.add_argument("store", type=Path)
    c.add_argument("--show", type=int, default=20, help="print this many differing events")
    args = p.parse_args()
    if args.cmd == "manifest":
        make_manifest(args.labelled, args.out)
    else:
        f = compare(args.results, args.store, args.show)
        print(f"{f['events_compared']} events: same outcome {f['same_outcome']}, same topics {f['same_topics']} "
              f"({100 * (f['agreement'] or 0):.1f}%), same best topic {f['same_best_topic']}, "
              f"largest score difference {f['max_score_diff']}", file=sys.stderr)
        print(json.dumps(f))


if __name__ == "__main__":
    main()
