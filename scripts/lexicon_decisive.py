#!/usr/bin/env python3
"""Write crates/attune-tag/data/sensitive-lexicon-decisive.tsv: the special-category lexicon's
terms that, in every labelled text attune may tune on, occur only in sensitive ones.

A lexicon match drops its text only when the classifier confirms it (p(sensitive) at the
manifest's `lexicon_confirmation`), because most of the lexicon's words have ordinary senses
("the EastEnders episode where Phil gets his diagnosis"). Some do not, and the classifier,
which reads meaning rather than words, sometimes misses them ("help me write a Scruff profile",
"tudung bawal yang tak senget bila naik motor"): such a term should drop its text alone.
Which terms those are is measured, not guessed: each top-level alternative of each lexicon row
is matched (the allow list blanked first, as the tagger does) against every item of the
classifier's training files, its calibration split and the conversations' tuning sets; an
alternative that matches at least MIN_SENSITIVE distinct sensitive texts and no ordinary one
is written out as decisive. The hard negatives and cue-word pairs in those files were written
to use the lexicon's words in their everyday senses, so an alternative with an ordinary reading
has had every chance to show one. The holdouts are never read.

    python3 scripts/lexicon_decisive.py          # or: just lexicon-decisive
    python3 scripts/lexicon_decisive.py --check  # CI: fails when the file is stale

Rerun when the lexicon or the training files change (CI checks that it is current). Python's `re` stands in for Rust's
`regex` here (the lexicon uses the syntax both share); the tagger's test
`decisive_terms_are_the_lexicons_own_alternatives` checks that every row written is an
alternative of a lexicon row of the same category, so the file can only narrow the lexicon's
confirmation, never widen what it matches.
"""
import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEXICON = ROOT / "crates/attune-tag/data/sensitive-lexicon.tsv"
OUT = ROOT / "crates/attune-tag/data/sensitive-lexicon-decisive.tsv"
TUNING_SETS = [
    "fixtures/sensitivity/*.train.jsonl",
    "fixtures/sensitivity/*.calib.jsonl",
    "fixtures/conversations/train.jsonl",
    "fixtures/conversations/train2.jsonl",
    "fixtures/conversations/tuning.jsonl",
    "fixtures/conversations/multilingual/*.tuning.jsonl",
]


def top_level_alternatives(pattern: str) -> list[str]:
    """The pattern split at the `|`s outside any group or character class."""
    out, cur, depth, escaped, in_class = [], [], 0, False, False
    for ch in pattern:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            cur.append(ch)
            escaped = True
        elif in_class:
            cur.append(ch)
            in_class = ch != "]"
        elif ch == "[":
            cur.append(ch)
            in_class = True
        elif ch == "|" and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            depth += ch == "("
            depth -= ch == ")"
            cur.append(ch)
    out.append("".join(cur))
    return out


def compiled(pattern: str, mode: str) -> re.Pattern:
    return re.compile(rf"\b(?:{pattern})\b" if mode == "word" else f"(?:{pattern})", re.IGNORECASE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min-sensitive", type=int, default=3,
                    help="distinct sensitive texts an alternative must match (and no ordinary one)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true",
                    help="write nothing; fail when the file would differ from the one in place (CI)")
    args = ap.parse_args()

    rows = []  # (category, pattern, mode)
    for n, line in enumerate(LEXICON.read_text(encoding="utf-8").splitlines()):
        if n == 0 or not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        mode = cols[2].strip() if len(cols) > 2 and cols[2].strip() else "word"
        rows.append((cols[0].strip(), cols[1], mode))
    allow = [compiled(p, m) for c, p, m in rows if c == "allow"]

    texts: dict[str, bool] = {}  # text -> sensitive (a text labelled both ways counts as ordinary)
    files = sorted({p for g in TUNING_SETS for p in ROOT.glob(g)})
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                text = item["text"]
                for a in allow:
                    text = a.sub(" ", text)
                sensitive = item["expect"] != "ordinary"
                texts[text] = texts.get(text, True) and sensitive

    decisive, alternatives = [], 0
    for category, pattern, mode in rows:
        if category == "allow":
            continue
        # Only the texts the whole row matches can match one of its alternatives.
        row_re = compiled(pattern, mode)
        matched = [(t, s) for t, s in texts.items() if row_re.search(t)]
        for alternative in top_level_alternatives(pattern):
            alternatives += 1
            alt_re = compiled(alternative, mode)
            hits = [s for t, s in matched if alt_re.search(t)]
            if hits and all(hits) and len(hits) >= args.min_sensitive:
                decisive.append((category, alternative, mode, len(hits)))

    sensitive_texts = sum(texts.values())
    header = [
        "category\tpattern (an alternative of a row of sensitive-lexicon.tsv)\tmatch\tsensitive texts matched",
        "# Written by scripts/lexicon_decisive.py (do not edit): the lexicon's terms that, in the labelled",
        f"# texts attune tunes on ({len(texts)} distinct texts, {sensitive_texts} of them sensitive, from",
        f"# {len(files)} files: {', '.join(TUNING_SETS)}),",
        f"# match at least {args.min_sensitive} sensitive texts and no ordinary one. A match of one of these drops",
        "# its text without the classifier's confirmation. Holdouts are never read.",
        f"# {len(decisive)} of the lexicon's {alternatives} alternatives.",
    ]
    body = [f"{c}\t{p}\t{m}\t{n}" for c, p, m, n in decisive]
    text = "\n".join(header + body) + "\n"
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out.relative_to(ROOT)} is stale: the lexicon or the labelled sets changed since it "
                  "was written; run `just lexicon-decisive` and measure (docs/text-tagging.md, 'Decisive terms need no confirmation')",
                  file=sys.stderr)
            return 1
        print(f"{args.out.relative_to(ROOT)} is current ({len(decisive)} decisive terms)")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"{len(decisive)} of {alternatives} alternatives decisive; {len(texts)} texts "
          f"({sensitive_texts} sensitive) from {len(files)} files -> {args.out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
