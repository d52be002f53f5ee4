"""The Python API over the pipeline, in this process (no Ray): `attune.Worker`."""
from __future__ import annotations

import datetime
import json
import sqlite3
import subprocess

import pytest

import attune
from conftest import assert_no_event_text


@pytest.fixture(scope="module")
def sample(root):
    folder = root / "fixtures/sample"
    return folder, (folder / "manifest.jsonl").read_bytes().splitlines()


def test_batches_through_one_worker_add_up_to_a_run(sample, tmp_path, attune_binary, root):
    folder, lines = sample
    worker = attune.Worker(str(tmp_path / "p.sqlite"), policy=folder / "policy.toml", threads=2,
                           attune_binary=attune_binary)
    taxonomy, model_set = worker.provenance
    assert taxonomy.startswith("iab-audience-1.1") and "multilingual-e5-small" in model_set
    reports = [worker.process_lines(lines[i:i + 100], folder) for i in range(0, len(lines), 100)]
    merged = attune.merge_reports(reports)
    assert merged["events"] == len([l for l in lines if l.strip()])
    assert merged["events"] == merged["processed"] + sum(merged["skipped"].values()) + len(merged["failed"])
    assert merged["processed"] > 100 and merged["skipped"]["sensitive"] > 0 and merged["failed"]
    # What `attune run` reports for the same manifest.
    report = tmp_path / "run.json"
    done = __import__("subprocess").run(
        [attune_binary, "run", str(folder / "manifest.jsonl"), "--store", str(tmp_path / "run.sqlite"),
         "--policy", str(folder / "policy.toml"), "--report", str(report)], capture_output=True, cwd=root)
    assert done.returncode == 3, done.stderr
    expected = json.loads(report.read_text())
    for key in ("events", "processed", "skipped", "tagged", "topics_assigned"):
        assert merged[key] == expected[key], key
    # The same batch again: every event is now a duplicate, nothing is applied twice.
    again = worker.process_lines(lines[:100], folder)
    assert again["processed"] == 0 and again["skipped"]["duplicate"] > 0
    # The store holds ids and topics; no report holds content.
    rows = sqlite3.connect(tmp_path / "p.sqlite").execute("SELECT count(*) FROM evidence").fetchone()[0]
    assert rows > 0
    assert_no_event_text(reports, lines)


def test_records_and_arrow_tables_are_events_too(sample, tmp_path, attune_binary):
    pa = pytest.importorskip("pyarrow")
    folder, lines = sample
    chats = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("kind") == "text":
            chats.append(event)
    chats = chats[:30]
    # `attune run`'s flags, a tightened bar among them: each report says what it ran with.
    worker = attune.Worker(str(tmp_path / "p.sqlite"), threads=1, attune_binary=attune_binary,
                           flags=["--max-topics", "2"])
    from_records = worker.process_records(chats[:15], folder)
    from_arrow = worker.process_arrow(pa.Table.from_pylist(chats[15:]), folder)
    assert from_records["events"] == 15 and from_arrow["events"] == 15
    assert from_records["tagger_settings"] == {"max_topics": "2"}
    assert attune.merge_reports([from_records, from_arrow])["tagger_settings"] == {"max_topics": "2"}
    assert not from_arrow["failed"], from_arrow["failed"]

    # The profiles as Parquet, read as a data platform reads them (pyarrow), are the JSON export.
    pq = pytest.importorskip("pyarrow.parquet")

    def export(*args):
        return subprocess.run([attune_binary, "export", "--store", str(tmp_path / "p.sqlite"),
                               "--as-of", "2026-12-01T00:00:00Z", *args], capture_output=True, check=True)

    expected = [json.loads(line) for line in export().stdout.splitlines()]
    assert expected and any(p["topics"] for p in expected)
    export("--format", "parquet", "--output", str(tmp_path / "p.parquet"))
    table = pq.read_table(tmp_path / "p.parquet")
    assert pq.read_metadata(tmp_path / "p.parquet").metadata[b"attune.schema"] == b"attune.profile.v1"
    assert str(table.schema.field("updated_at").type) == "timestamp[ms, tz=UTC]"

    def as_json(value):
        if isinstance(value, datetime.datetime):
            return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(value, dict):
            return {k: as_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [as_json(v) for v in value]
        return value

    assert [as_json(row) for row in table.to_pylist()] == expected


def test_mistakes_are_explained(tmp_path, attune_binary, monkeypatch):
    with pytest.raises(RuntimeError, match="--no-such-flag"):
        attune.Worker(str(tmp_path / "p.sqlite"), attune_binary=attune_binary, flags=["--no-such-flag"])
    # A run may only tighten its calibration: a looser bar is refused before anything runs.
    with pytest.raises(RuntimeError, match="--classifier-threshold 0.9 would keep out less than the calibration"):
        attune.Worker(str(tmp_path / "q.sqlite"), attune_binary=attune_binary, flags=["--classifier-threshold", "0.9"])
    with pytest.raises(RuntimeError, match="cannot connect"):
        attune.Worker("postgresql://attune:secret@127.0.0.1:1/none", attune_binary=attune_binary)
    monkeypatch.delenv("ATTUNE_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="decoded in processes"):
        attune.Worker(str(tmp_path / "p.sqlite"))
    with pytest.raises(FileNotFoundError, match="not an executable"):
        attune.Worker(str(tmp_path / "p.sqlite"), attune_binary=tmp_path / "missing")


def test_merge_reports_keeps_the_totals():
    a = {"events": 3, "processed": 1, "skipped": {"sensitive": 1}, "failed": [{"event_id": "x"}], "tagged": 1,
         "topics_assigned": 2, "stages": {"text": {"busy_s": 0.5, "items": 1}}, "taxonomy": "t", "model_set": "m"}
    b = {"events": 2, "processed": 2, "skipped": {}, "failed": [], "tagged": 0, "topics_assigned": 0,
         "stages": {"text": {"busy_s": 0.25, "items": 2}}}
    m = attune.merge_reports([a, b], elapsed_s=2.0)
    assert (m["events"], m["processed"], m["skipped"], len(m["failed"])) == (5, 3, {"sensitive": 1}, 1)
    assert m["stages"]["text"] == {"busy_s": 0.75, "items": 3}
    assert m["events_per_s"] == 2.5 and m["taxonomy"] == "t" and m["batches"] == 2
