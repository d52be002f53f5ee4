"""attune from Python: the Rust pipeline in this process.

    import attune
    worker = attune.Worker(store="postgresql://attune@db/profiles", models=".attune/models")
    report = worker.process_lines(open("events.jsonl", "rb").read().splitlines(), media_root=".")
    report["processed"], report["skipped"], report["failed"]

A `Worker` is `attune run` with its models loaded once: every batch goes through the policy gate,
decoding (in decoder processes run by the `attune` binary, as in a run), the models, tagging and
the store, one transaction per pipeline batch. Reports hold counts, ids and failure reasons, never
content. `attune.dist` runs workers on Ray Data.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from attune import _native

__all__ = ["Worker", "merge_reports", "find_attune_binary", "records_to_lines", "__version__"]
__version__ = _native.__version__


def find_attune_binary(explicit: str | os.PathLike | None = None) -> str:
    """The `attune` binary decoder processes run: `explicit`, `$ATTUNE_BIN`, or `attune` on PATH."""
    for candidate in (explicit, os.environ.get("ATTUNE_BIN")):
        if candidate:
            path = Path(candidate)
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise FileNotFoundError(f"the attune binary {path} is not an executable file")
            return str(path.resolve())
    found = shutil.which("attune")
    if found:
        return found
    raise FileNotFoundError(
        "media are decoded in processes of the `attune` binary (a decoder crash must not take the "
        "worker down): pass attune_binary=, set ATTUNE_BIN, or put attune on PATH "
        "(cargo build --release -p attune-cli)")


def _json_default(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:  # Parquet timestamps without a zone are UTC by convention
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def records_to_lines(records: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """Event records (dicts, as rows of an Arrow or Parquet table give them) as manifest lines;
    null columns are left out, as a manifest line would not have them."""
    return [json.dumps({k: v for k, v in r.items() if v is not None}, default=_json_default,
                       ensure_ascii=False).encode() for r in records]


def _find_home(binary: str | None) -> None:
    """attune finds ONNX Runtime and the models in `$ATTUNE_HOME`, or in a `.attune` folder above
    the working folder or its executable — which here is Python's. Above the attune binary's is
    the next best place: it is set as `ATTUNE_HOME` when nothing else names one."""
    if os.environ.get("ATTUNE_HOME") or os.environ.get("ORT_DYLIB_PATH"):
        return
    starts = [Path.cwd()] + ([Path(binary).resolve().parent] if binary else [])
    for start in starts:
        for folder in (start, *start.parents):
            home = folder / ".attune"
            if (home / "onnxruntime").is_dir():
                os.environ["ATTUNE_HOME"] = str(home)
                return


class Worker:
    """One pipeline: models, decoder processes and a store connection, kept between batches.

    store: a SQLite file or `postgresql://…` (schema `attune`, made when missing).
    flags: any further `attune run` flags (`["--text-model", "multilingual-e5-small"]`).
    """

    def __init__(self, store: str, *, models: str | os.PathLike | None = None,
                 policy: str | os.PathLike | None = None, threads: int | None = None,
                 gpu: bool = False, batch_size: int | None = None, retry_failed: bool = False,
                 require_models: Sequence[str] = (), attune_binary: str | os.PathLike | None = None,
                 in_process_decoding: bool = False, flags: Sequence[str] = ()):
        args = ["--store", str(store)]
        if models is not None:
            args += ["--models", str(models)]
        if policy is not None:
            args += ["--policy", str(policy)]
        if threads is not None:
            args += ["--threads", str(int(threads))]
        if gpu:
            args.append("--gpu")
        if batch_size is not None:
            args += ["--batch-size", str(int(batch_size))]
        if retry_failed:
            args.append("--retry-failed")
        if require_models:
            args += ["--require-models", ",".join(require_models)]
        binary = None
        if in_process_decoding:
            args.append("--in-process-decoding")
        else:
            binary = find_attune_binary(attune_binary)
            args += ["--decoder-program", binary]
        _find_home(binary)
        args += [str(f) for f in flags]
        self._native = _native.Worker(args)

    @property
    def provenance(self) -> tuple[str, str]:
        """(taxonomy version, model set) that the profiles record."""
        return self._native.provenance()

    def process_lines(self, lines: Iterable[bytes | str], media_root: str | os.PathLike) -> dict:
        """Run manifest lines (JSON Lines records) through the pipeline; their media paths resolve,
        confined, under `media_root`. Returns the batch's report (as `attune run --report`)."""
        data = b"\n".join(l.encode() if isinstance(l, str) else bytes(l) for l in lines)
        return json.loads(self._native.process(data, str(media_root)))

    def process_records(self, records: Iterable[Mapping[str, Any]], media_root: str | os.PathLike) -> dict:
        """Event records as dicts (an Arrow table's `to_pylist()`), else as `process_lines`."""
        return self.process_lines(records_to_lines(records), media_root)

    def process_arrow(self, table: Any, media_root: str | os.PathLike) -> dict:
        """A `pyarrow.Table` or `RecordBatch` of events (the manifest's fields as columns)."""
        return self.process_records(table.to_pylist(), media_root)


_SUMMED = ("events", "processed", "tagged", "topics_assigned", "speech_redecoded", "speech_languages_from_chats")
_SUMMED_MAPS = ("skipped", "languages", "sensitive_by_language", "products", "topics_by_branch")


def merge_reports(reports: Sequence[dict], elapsed_s: float | None = None) -> dict:
    """Batch reports as one run's: counts summed (events = processed + skipped + failed still
    holds), failures listed, stage busy times summed; `elapsed_s` is the run's wall time."""
    merged: dict = {k: 0 for k in _SUMMED}
    for key in _SUMMED_MAPS:
        merged[key] = {}
    merged["failed"] = []
    merged["stages"] = {}
    merged["batches"] = len(reports)
    merged["interrupted"] = False
    for r in reports:
        for key in _SUMMED:
            merged[key] += r.get(key, 0)
        for key in _SUMMED_MAPS:
            for name, n in r.get(key, {}).items():
                merged[key][name] = merged[key].get(name, 0) + n
        merged["failed"].extend(r.get("failed", []))
        for name, s in r.get("stages", {}).items():
            into = merged["stages"].setdefault(name, {"busy_s": 0.0, "items": 0})
            into["busy_s"] += s.get("busy_s", 0.0)
            into["items"] += s.get("items", 0)
        merged["interrupted"] |= bool(r.get("interrupted"))
        for key in ("taxonomy", "model_set", "tagger_settings"):
            merged.setdefault(key, r.get(key))
    if elapsed_s is not None:
        merged["elapsed_s"] = elapsed_s
        merged["events_per_s"] = merged["events"] / elapsed_s if elapsed_s > 0 else 0.0
    return merged
