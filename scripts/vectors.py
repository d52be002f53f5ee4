"""The text model's vectors of a labelled set, as the tagger sees them (`attune embed`: each
text whole and clause by clause), for the training scripts. Kept in target/text-vectors/ under a
key of the file's content, the model and the binary, so a second training run embeds nothing."""
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target/release/attune"
CACHE = ROOT / "target/text-vectors"


def embed(model: str, path: Path, dtype=np.float32) -> dict[int, list[tuple[str, np.ndarray]]]:
    """Line number (1-based, blank lines skipped as attune does) -> [(window|clause, vector)]."""
    binary = BINARY.stat()
    key = hashlib.sha256(path.read_bytes() + f"{model} {binary.st_size} {binary.st_mtime_ns}".encode())
    cached = CACHE / f"{path.stem}.{key.hexdigest()[:16]}.jsonl"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([str(BINARY), "embed", str(path), "--text-model", model],
                             check=True, capture_output=True, text=True).stdout
        cached.write_text(out)
    by_line: dict[int, list[tuple[str, np.ndarray]]] = {}
    for row in cached.read_text().splitlines():
        v = json.loads(row)
        by_line.setdefault(v["line"], []).append((v["segment"], np.array(v["vector"], dtype=dtype)))
    return by_line
