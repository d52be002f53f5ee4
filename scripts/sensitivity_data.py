"""What the special-category classifier is trained on, shared by the scripts that read it
(finetune_sensitivity.py trains on these files; sensitive_neighbours.py keeps them as the
classifier's labelled neighbours). No third-party imports."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["ordinary", "political_opinion", "religious_belief", "trade_union", "health", "sex_life", "ethnic_origin"]


def training_files() -> list[Path]:
    """fixtures/sensitivity/*.train.jsonl, the English conversation sets and the multilingual
    tuning sets; never a calibration split or a holdout."""
    data = ROOT / "fixtures"
    paths = (sorted((data / "sensitivity").glob("*.train.jsonl"))
             + [data / "conversations" / f for f in ("train.jsonl", "train2.jsonl", "tuning.jsonl")]
             + sorted((data / "conversations/multilingual").glob("*.tuning.jsonl")))
    assert not any("holdout" in p.name or "calib" in p.name for p in paths)
    return paths
