#!/usr/bin/env python3
"""Check labelled conversation sets (format and ids only, not whether a label is right).

    python3 scripts/check_labelled_sets.py FILE.jsonl [FILE.jsonl ...] [--texts-only FILE.jsonl ...]

Every line must parse and carry exactly text/expect/topics/lang/kind; `lang` must match the
file name's prefix where that names a language (`id.train.jsonl` -> "id"); ordinary and
hard-negative lines name 1-2 Interest ids that exist and are neither sensitive nodes nor below
one; special-category lines and no-interest lines (`kind: no_interest`: "thanks", "make it
shorter") name none. Prints a count table.

Splits stay apart: a text of an evaluation split (a file named `*holdout*`, `*calib*` or
`*check*`: measured, never trained on) may appear nowhere else among all the files given,
those after `--texts-only` included (older sets in another format, read for their texts alone),
and no file may hold a text twice. A text repeated among training files only weighs more in
training and is allowed.
"""
import collections
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAXO = os.path.join(ROOT, "crates/attune-taxonomy/data")
CATEGORIES = {"political_opinion", "religious_belief", "trade_union", "health", "sex_life", "ethnic_origin"}
KINDS_SENSITIVE = {"explicit", "implicit", "third_person", "mixed"}
KINDS_ORDINARY = {"ordinary", "hard_negative"}
# A turn that names nothing to take an interest from ("thanks", "make it shorter"): no topics.
KIND_NO_INTEREST = "no_interest"
KEYS = ["text", "expect", "topics", "lang", "kind"]


def load_taxonomy():
    parent = {}
    with open(os.path.join(TAXO, "audience-taxonomy-1.1.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) > 2 and cols[1].strip():
                parent[cols[1].strip()] = cols[2].strip()
    described = set()
    with open(os.path.join(TAXO, "interest-descriptions.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            described.add(line.split("\t", 1)[0])
    sensitive = set()
    with open(os.path.join(TAXO, "sensitive-nodes.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            sensitive.add(line.split("\t", 1)[0])
    return parent, described, sensitive


def is_sensitive(node, parent, sensitive):
    seen = 0
    while node and seen < 10:
        if node in sensitive:
            return True
        node = parent.get(node, "")
        seen += 1
    return False


EVALUATION_SPLITS = ("holdout", "calib", "check")


def is_evaluation(path):
    return any(split in os.path.basename(path) for split in EVALUATION_SPLITS)


def text_key(text):
    return " ".join(text.lower().split())


def split_errors(texts):
    """`texts`: (path, line, text) of every file. A text of an evaluation split found elsewhere,
    or twice in one file."""
    where = collections.defaultdict(list)
    for path, n, text in texts:
        where[text_key(text)].append((path, n))
    errors = []
    for places in where.values():
        if len(places) < 2:
            continue
        files = [path for path, _ in places]
        if any(is_evaluation(path) for path in files) or len(set(files)) < len(files):
            first = f"{places[0][0]}:{places[0][1]}"
            errors += [f"{path}:{n}: text repeats {first}" for path, n in places[1:]]
    return errors


def texts_of(path, errors):
    """Every line's text, whatever the set's format (JSON lines with a `text`)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            if raw.strip():
                try:
                    text = json.loads(raw).get("text")
                except (json.JSONDecodeError, AttributeError) as e:
                    errors.append(f"{path}:{n}: not a JSON object with a text ({e})")
                    continue
                if isinstance(text, str):
                    out.append((path, n, text))
    return out


def main(args):
    paths, texts_only = args, []
    if "--texts-only" in args:
        at = args.index("--texts-only")
        paths, texts_only = args[:at], args[at + 1 :]
    parent, described, sensitive = load_taxonomy()
    errors = []
    texts = [t for path in texts_only for t in texts_of(path, errors)]
    table = collections.OrderedDict()
    for path in paths:
        lang = os.path.basename(path).split(".", 1)[0]
        counts = collections.Counter()
        with open(path, encoding="utf-8") as f:
            for n, raw in enumerate(f, 1):
                where = f"{path}:{n}"
                if not raw.strip():
                    errors.append(f"{where}: empty line")
                    continue
                try:
                    item = json.loads(raw)
                except json.JSONDecodeError as e:
                    errors.append(f"{where}: not JSON ({e})")
                    continue
                if list(item.keys()) != KEYS:
                    errors.append(f"{where}: keys {list(item.keys())}, want {KEYS}")
                    continue
                text, expect, topics, item_lang, kind = (item[k] for k in KEYS)
                if not isinstance(text, str) or not text.strip():
                    errors.append(f"{where}: empty text")
                else:
                    texts.append((path, n, text))
                # A file named for one language holds that language; one named for a theme
                # (`pets.check.jsonl`) holds any.
                if len(lang) == 2 and item_lang != lang:
                    errors.append(f"{where}: lang {item_lang!r} but file is {lang!r}")
                if expect == "ordinary" and kind == KIND_NO_INTEREST:
                    if topics != []:
                        errors.append(f"{where}: a no_interest line must have topics []")
                elif expect == "ordinary":
                    if kind not in KINDS_ORDINARY:
                        errors.append(f"{where}: ordinary line with kind {kind!r}")
                    if not (isinstance(topics, list) and 1 <= len(topics) <= 2):
                        errors.append(f"{where}: ordinary line needs 1-2 topics")
                        topics = []
                    for t in topics:
                        if not isinstance(t, str) or t not in described:
                            errors.append(f"{where}: topic {t!r} is not an Interest node with a description")
                        elif is_sensitive(t, parent, sensitive):
                            errors.append(f"{where}: topic {t} is (under) a sensitive node")
                elif expect in CATEGORIES:
                    if kind not in KINDS_SENSITIVE:
                        errors.append(f"{where}: special-category line with kind {kind!r}")
                    if topics != []:
                        errors.append(f"{where}: special-category line must have topics []")
                else:
                    errors.append(f"{where}: expect {expect!r} unknown")
                counts[expect if expect != "ordinary" else kind] += 1
                counts["lines"] += 1
                if expect in CATEGORIES:
                    counts["sensitive"] += 1
                    counts[kind] += 1
        table[path] = counts
    errors += split_errors(texts)
    cols = ["lines", "ordinary", "hard_negative", KIND_NO_INTEREST, "sensitive", *sorted(CATEGORIES), "explicit", "implicit", "third_person", "mixed"]
    print("file\t" + "\t".join(cols))
    for path, c in table.items():
        print(os.path.basename(path) + "\t" + "\t".join(str(c[k]) for k in cols))
    for e in errors:
        print("ERROR", e, file=sys.stderr)
    print(f"{len(errors)} errors", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
