"""attune's tagging logic, ported to Python for the baseline: the same data files, the same
thresholds, the same order of checks. Sources, read alongside:

- crates/attune-taxonomy/src/lib.rs      the Interest branch, descriptions, sensitivity overlay
- crates/attune-tag/src/lib.rs           TextTagger, Segments, Probe, TagConfig defaults, Verdict::combine
- crates/attune-tag/src/image.rs         ImageTagger, ImageTagConfig defaults
- crates/attune-model-minilm/src/lib.rs  tokenizer settings, mean pooling, L2 normalisation

A verdict is ("sensitive", detector) or ("topics", [(topic_id, score), ...]), best first.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TAG_DATA = ROOT / "crates/attune-tag/data"
TAXONOMY_DATA = ROOT / "crates/attune-taxonomy/data"
INTEREST_ROOT = 206

# TagConfig::default() and ImageTagConfig::default().
TOPIC_THRESHOLD, TOPIC_MARGIN, MAX_TOPICS = 0.27, 0.04, 3
MAX_COMBINED_TOPICS = 6  # Verdict::combine (a video's frames and speech)
CATEGORY_THRESHOLD, PROBE_THRESHOLD = 0.40, 0.90
SENSITIVE_NODE_THRESHOLD, SENSITIVE_NODE_MARGIN = 0.40, 0.02
IMAGE_CLASS_FLOOR, IMAGE_TOPIC_THRESHOLD, IMAGE_MAX_TOPICS, IMAGE_SENSITIVE_THRESHOLD = 0.02, 0.30, 3, 0.25

# Segments::of.
SEGMENT_WORDS, SEGMENT_OVERLAP, MAX_SEGMENTS = 160, 30, 16
MAX_CLAUSES, MIN_CLAUSE_WORDS = 8, 4
CLAUSE_SPLIT = re.compile("[.!?;,\n—–()]")


def data_rows(path: Path) -> list[list[str]]:
    """attune-tag's data_rows: the header and comment lines skipped, tab-separated."""
    lines = path.read_text().splitlines()[1:]
    return [l.split("\t") for l in lines if l.strip() and not l.startswith("#")]


class Node:
    __slots__ = ("id", "parent", "path", "description", "sensitive")

    def __init__(self, id: int, parent: int | None, path: list[str], description: str):
        self.id, self.parent, self.path, self.description = id, parent, path, description
        self.sensitive: str | None = None


def taxonomy() -> list[Node]:
    """The Interest nodes in file order, each with its inherited sensitive category (or None)."""
    descriptions = {int(c[0]): c[1] for c in
                    (l.rstrip("\r").split("\t") for l in (TAXONOMY_DATA / "interest-descriptions.tsv")
                     .read_text().splitlines()[1:] if l.strip())}
    marked = {int(c[0]): c[1].strip() for c in
              (l.rstrip("\r").split("\t") for l in (TAXONOMY_DATA / "sensitive-nodes.tsv")
               .read_text().splitlines()[1:] if l.strip())}
    nodes, index = [], {}
    for line in (TAXONOMY_DATA / "audience-taxonomy-1.1.tsv").read_text().splitlines()[1:]:
        cols = line.rstrip("\r").split("\t")
        if len(cols) < 5 or cols[4].strip() != "Interest":
            continue
        id = int(cols[1].strip())
        parent = int(cols[2]) if cols[2].strip().isdigit() else None
        path = [s.strip() for s in cols[5:min(len(cols), 10)] if s.strip()]
        node = Node(id, parent, path, descriptions[id])
        node.sensitive = marked.get(id)
        index[id] = node
        nodes.append(node)
    for n in nodes:  # parents precede children: one pass inherits down the tree
        if n.sensitive is None and n.parent in index:
            n.sensitive = index[n.parent].sensitive
    return nodes


def unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.sqrt((v * v).sum())), 1e-12)


class Embedder:
    """all-MiniLM-L6-v2: HF tokenizers + onnxruntime, mean pooling, L2 normalisation."""

    def __init__(self, model_dir: Path, session_options, max_tokens: int = 256, max_batch: int = 32):
        import onnxruntime as ort
        from tokenizers import Tokenizer
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding()  # to the longest item of each batch, as attune does
        self.session = ort.InferenceSession(str(model_dir / "model.onnx"), session_options,
                                            providers=["CPUExecutionProvider"])
        self.max_batch = max_batch

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = []
        for at in range(0, len(texts), self.max_batch):
            enc = self.tokenizer.encode_batch(texts[at:at + self.max_batch])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            types = np.array([e.type_ids for e in enc], dtype=np.int64)
            hidden = self.session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                              "token_type_ids": types})[0]
            m = mask[:, :, None].astype(np.float32)
            mean = (hidden * m).sum(1) / np.maximum(m.sum(1), 1.0)
            out.append(mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12))
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def segments(text: str) -> tuple[list[str], int]:
    """Segments::of: (texts to embed, how many of them are windows); the rest are clauses."""
    words = text.split()
    if len(words) <= SEGMENT_WORDS + SEGMENT_OVERLAP:
        texts = [text]
    else:
        starts = list(range(0, len(words) - SEGMENT_WORDS + 1, SEGMENT_WORDS - SEGMENT_OVERLAP))
        starts.append(len(words) - SEGMENT_WORDS)
        texts = [" ".join(words[s:s + SEGMENT_WORDS]) for s in starts[:MAX_SEGMENTS]]
    windows = len(texts)
    cl = clauses(text)
    if len(cl) > 1:
        texts += cl[:MAX_CLAUSES]
    return texts, windows


def clauses(text: str) -> list[str]:
    out: list[str] = []
    for piece in CLAUSE_SPLIT.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if out and (len(out[-1].split()) < MIN_CLAUSE_WORDS or len(piece.split()) < MIN_CLAUSE_WORDS):
            out[-1] += ", " + piece
        else:
            out.append(piece)
    return out


class TextTagger:
    """Lexicon, category descriptions, probe, sensitive nodes, then topics: attune-tag's TextTagger."""

    def __init__(self, embed):
        nodes = [n for n in taxonomy() if n.id != INTEREST_ROOT]
        node_texts = [f"This is about {n.path[-1] if n.path else 'interests'}. {n.description}" for n in nodes]
        name_texts = [f"This is about {': '.join(n.path)}." for n in nodes]
        a, b = embed(node_texts), embed(name_texts)
        self.node_ids = np.array([n.id for n in nodes])
        self.node_sensitive = np.array([n.sensitive is not None for n in nodes])
        self.node_vectors = np.stack([unit(x + y) for x, y in zip(a, b)]).astype(np.float32)

        rows = data_rows(TAG_DATA / "sensitive-prototypes.tsv")
        self.proto_categories = [r[0].strip() for r in rows]
        self.proto_vectors = embed([r[1] for r in rows]).astype(np.float32)

        self.lexicon: list[tuple[str, re.Pattern]] = []
        self.allow: list[re.Pattern] = []
        for r in data_rows(TAG_DATA / "sensitive-lexicon.tsv"):
            # The third column says how a row matches, as in attune: `word` (default) or `substring`.
            anywhere = len(r) > 2 and r[2].strip() == "substring"
            pattern = re.compile(f"(?:{r[1]})" if anywhere else rf"\b(?:{r[1]})\b", re.IGNORECASE)
            if r[0].strip() == "allow":
                self.allow.append(pattern)
            else:
                self.lexicon.append((r[0].strip(), pattern))

        rows = data_rows(TAG_DATA / "sensitive-probe.tsv")
        self.probe_ordinary = np.array([r[0].strip() == "ordinary" for r in rows])
        self.probe_bias = np.array([float(r[1]) for r in rows], np.float32)
        self.probe_weights = np.array([[float(w) for w in r[2].split()] for r in rows], np.float32)

    def lexicon_hit(self, text: str) -> str | None:
        for pattern in self.allow:
            text = pattern.sub(" ", text)
        return next((cat for cat, pattern in self.lexicon if pattern.search(text)), None)

    def sensitive_embedding(self, e: np.ndarray) -> str | None:
        """Detector 2: the category descriptions, then the probe."""
        if (self.proto_vectors @ e).max() >= CATEGORY_THRESHOLD:
            return "category_prototype"
        logits = self.probe_bias + self.probe_weights @ e
        p = np.exp(logits - logits.max())
        p /= p.sum()
        if p[~self.probe_ordinary].sum() >= PROBE_THRESHOLD:
            return "probe"
        return None

    def tag_embedding(self, e: np.ndarray):
        detector = self.sensitive_embedding(e)
        if detector:
            return ("sensitive", detector)
        scores = self.node_vectors @ e
        order = np.argsort(-scores, kind="stable")
        allowed = order[~self.node_sensitive[order]]
        best = float(scores[allowed[0]]) if len(allowed) else 0.0
        for i in order:  # a sensitive node among the best matches makes the item sensitive
            if scores[i] < best - SENSITIVE_NODE_MARGIN:
                break
            if self.node_sensitive[i] and scores[i] >= SENSITIVE_NODE_THRESHOLD:
                return ("sensitive", "sensitive_node")
        topics = [(int(self.node_ids[i]), float(scores[i])) for i in allowed
                  if scores[i] >= TOPIC_THRESHOLD and scores[i] >= best - TOPIC_MARGIN][:MAX_TOPICS]
        return ("topics", topics)

    def tag_segments(self, windows: int, vectors: np.ndarray):
        for e in vectors[windows:]:  # clauses: each checked on its own
            detector = self.sensitive_embedding(e)
            if detector:
                return ("sensitive", detector)
        if windows == 1:
            return self.tag_embedding(vectors[0])
        for e in vectors[:windows]:
            detector = self.sensitive_embedding(e)
            if detector:
                return ("sensitive", detector)
        return self.tag_embedding(unit(vectors[:windows].sum(0)))

    def tag_texts(self, texts: list[str], embed):
        """Lexicon first (what it catches is never embedded), then one embedding call for the rest."""
        verdicts: list = [None] * len(texts)
        todo = []
        for i, text in enumerate(texts):
            if self.lexicon_hit(text):
                verdicts[i] = ("sensitive", "lexicon")
            else:
                todo.append((i, *segments(text)))
        flat = [s for _, segs, _ in todo for s in segs]
        vectors = embed(flat) if flat else None
        at = 0
        for i, segs, windows in todo:
            verdicts[i] = self.tag_segments(windows, vectors[at:at + len(segs)])
            at += len(segs)
        return verdicts


class ImageTagger:
    """ImageNet class probabilities to a verdict through data/imagenet-to-iab.tsv."""

    def __init__(self):
        rows = [l.split("\t") for l in (TAG_DATA / "imagenet-to-iab.tsv").read_text().splitlines()[1:]]
        self.topic = np.full(len(rows), -1)
        self.sensitive = np.zeros(len(rows), bool)
        for r in rows:
            target = r[2].strip()
            if target.startswith("sensitive:"):
                self.sensitive[int(r[0])] = True
            elif target != "none":
                self.topic[int(r[0])] = int(target)

    def tag(self, probabilities: np.ndarray):
        p = np.where(probabilities >= IMAGE_CLASS_FLOOR, probabilities, 0.0)
        if p[self.sensitive].sum() >= IMAGE_SENSITIVE_THRESHOLD:
            return ("sensitive", "image_class")
        sums: dict[int, float] = {}
        for cls in np.nonzero((p > 0) & (self.topic >= 0))[0]:
            sums[int(self.topic[cls])] = sums.get(int(self.topic[cls]), 0.0) + float(p[cls])
        ranked = sorted(((t, s) for t, s in sums.items() if s >= IMAGE_TOPIC_THRESHOLD), key=lambda x: (-x[1], x[0]))
        return ("topics", [(t, min(s, 1.0)) for t, s in ranked[:IMAGE_MAX_TOPICS]])
