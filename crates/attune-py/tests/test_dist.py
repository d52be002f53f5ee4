"""Effectively once, on a 2-node Ray cluster and a real PostgreSQL: the sample manifest through
`attune run` into SQLite and through `python -m attune.dist` into PostgreSQL gives byte-identical
exports — also when an actor dies after its store commit and before Ray has its batch, and when
one dies before its commit — and `--retry-failed` works from the failures PostgreSQL kept."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_no_event_text

AS_OF = "2026-12-01T00:00:00Z"


def attune(binary: str, *args: str, ok=(0,), root: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([binary, *args], cwd=root, capture_output=True, text=True)
    assert done.returncode in ok, f"attune {args}: {done.returncode}\n{done.stderr}"
    return done


def export(binary: str, store: str, root: Path) -> str:
    return attune(binary, "export", "--store", store, "--as-of", AS_OF, root=root).stdout


def dist(root: Path, address: str, store: str, report: Path, *inputs: str, env=None, extra=()) -> dict:
    cmd = [sys.executable, "-m", "attune.dist", "run", *inputs, "--store", store, "--address", address,
           "--actors", "2", "--actor-cpus", "1", "--batch-records", "48", "--blocks", "4", "--quiet",
           "--policy", str(root / "fixtures/sample/policy.toml"), "--report", str(report), *extra]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=600)
    assert done.returncode in (0, 3), f"{cmd}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(report.read_text())


def totals(report: dict) -> tuple:
    return report["events"], report["processed"] + sum(report["skipped"].values()), len(report["failed"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, attune_binary, root):
    """The sample through `attune run` into SQLite: its report and its export."""
    tmp = tmp_path_factory.mktemp("reference")
    store, report = tmp / "profiles.sqlite", tmp / "report.json"
    attune(attune_binary, "run", "fixtures/sample/manifest.jsonl", "--store", str(store), "--report", str(report),
           "--policy", "fixtures/sample/policy.toml", ok=(3,), root=root)
    exported = export(attune_binary, str(store), root)
    assert exported.count("\n") > 10
    return {"store": str(store), "report": json.loads(report.read_text()), "export": exported}


@pytest.fixture(autouse=True)
def _binary_env(attune_binary, monkeypatch):
    monkeypatch.setenv("ATTUNE_BIN", attune_binary)


def test_ray_into_postgres_exports_what_attune_run_does(reference, ray_cluster, postgres, attune_binary, root,
                                                        tmp_path):
    url = postgres.create_database("ray_plain")
    report = dist(root, ray_cluster, url, tmp_path / "report.json", "fixtures/sample/manifest.jsonl")
    assert report["engine"]["nodes"] == 2 and report["engine"]["actors"] == 2
    assert report["batches"] > 2
    assert report["events"] == report["processed"] + sum(report["skipped"].values()) + len(report["failed"])
    ref = reference["report"]
    assert totals(report) == totals(ref)
    assert report["processed"] == ref["processed"]
    assert report["skipped"] == ref["skipped"]
    assert export(attune_binary, url, root) == reference["export"]
    # Nothing of an event's content reaches the report: ids, counts and reasons only.
    assert_no_event_text(report, (root / "fixtures/sample/manifest.jsonl").read_text().splitlines())


def test_actors_killed_around_their_commits_change_nothing(reference, ray_cluster, postgres, attune_binary, root,
                                                           tmp_path):
    """One actor dies with a batch tagged but not committed (in the pipeline, just before the
    store transaction); one dies after its commit, before Ray has the batch's result. Ray runs
    both batches again on the restarted actors; the ledger applies each event once."""
    url = postgres.create_database("ray_crashes")
    before, after = tmp_path / "crashed-before-commit", tmp_path / "crashed-after-commit"
    report = dist(root, ray_cluster, url, tmp_path / "report.json", "fixtures/sample/manifest.jsonl",
                  env={"ATTUNE_FAULT_CRASH_BEFORE_COMMIT": str(before), "ATTUNE_FAULT_EXIT_AFTER_COMMIT": str(after)})
    assert before.exists() and after.exists(), "an actor did not crash"
    assert report["events"] == report["processed"] + sum(report["skipped"].values()) + len(report["failed"])
    # The batch committed before its actor died comes back as duplicates: it was stored once.
    assert report["skipped"]["duplicate"] > reference["report"]["skipped"]["duplicate"]
    assert export(attune_binary, url, root) == reference["export"]


def test_shards_of_gzip_manifests_and_parquet_tables(reference, ray_cluster, postgres, attune_binary, root,
                                                     tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    sample = root / "fixtures/sample"
    lines = (sample / "manifest.jsonl").read_text().splitlines()
    from datetime import datetime

    records, broken = [], []
    for line in lines:
        # Chats with a well-formed capture time go to a Parquet table, as timestamps, as lakes
        # keep them; the rest (media, lines that are not events or hold a bad time) to two gzip
        # shards, their media under --media-root.
        try:
            event = json.loads(line)
            assert isinstance(event, dict) and "path" not in event
            event["captured_at"] = datetime.fromisoformat(event["captured_at"].replace("Z", "+00:00"))
            records.append(event)
        except (ValueError, AssertionError, KeyError, AttributeError, TypeError):
            broken.append(line)
    assert len(records) > 100 and broken
    tables = tmp_path / "tables"
    tables.mkdir()
    try:
        pq.write_table(pa.Table.from_pylist(records), tables / "chats.parquet")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        pytest.fail(f"the sample's chats do not make one table: {e}")
    shards = [tmp_path / f"shard-{i}.jsonl.gz" for i in range(2)]
    for i, shard in enumerate(shards):
        with gzip.open(shard, "wt") as f:
            f.write("\n".join(broken[i::2]) + "\n")
    url = postgres.create_database("ray_shards")
    report = dist(root, ray_cluster, url, tmp_path / "report.json", str(tables), *map(str, shards),
                  extra=["--media-root", str(sample)])
    assert totals(report) == totals(reference["report"])
    assert export(attune_binary, url, root) == reference["export"]


def test_retry_failed_reads_the_failures_postgres_kept(reference, ray_cluster, postgres, attune_binary, root,
                                                       tmp_path):
    url = postgres.url("ray_plain")  # what the first test stored
    retried = dist(root, ray_cluster, url, tmp_path / "retry.json", "fixtures/sample/manifest.jsonl",
                   extra=["--retry-failed"])
    ref_retry = tmp_path / "ref-retry.json"
    attune(attune_binary, "run", "fixtures/sample/manifest.jsonl", "--store", reference["store"], "--retry-failed",
           "--policy", "fixtures/sample/policy.toml", "--report", str(ref_retry), ok=(3,), root=root)
    expected = json.loads(ref_retry.read_text())
    assert retried["skipped"]["not_selected"] == expected["skipped"]["not_selected"] > 0
    assert totals(retried) == totals(expected)
    assert export(attune_binary, url, root) == reference["export"]
