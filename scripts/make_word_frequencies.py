#!/usr/bin/env python3
"""Write the language gate's word frequencies (crates/attune-lang/data/word-frequencies.tsv.gz)
from wordfreq's "small" lists: how often each word is written in the supported languages that
use Latin script, and at most in the Latin-script decoys lingua knows. The gate reads them to
confirm a short chat line lingua is unsure of by its words (crates/attune-lang, step 3).

    just word-frequencies     # python3 scripts/make_word_frequencies.py

wordfreq 3.1.1 comes from PyPI by pinned version and sha256 (pip download, no dependencies);
its lists are read without wordfreq itself (a list of frequency bins, msgpack in gzip). The
data is CC BY-SA 4.0 (wordfreq's README: Wikipedia, OpenSubtitles, SUBTLEX, Google Books,
Reddit, Twitter, the Leeds corpora, …); crates/attune-lang/data/README.md says so.

Output, gzip of UTF-8 text: a header `word<TAB>en es pt id ms tl vi tr decoys`, then one line
per word written in at least one supported list: the word (lowercase, NFC, letters only), a tab
and nine Zipf frequencies × 10 (log10 of occurrences per billion words; the small lists stop at
3.0, one in a million), space-separated, 0 where the word is not in that list; `decoys` is the
largest of Catalan, Italian, French, German, Dutch, Polish and Romanian.
"""
import gzip
import hashlib
import io
import struct
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/attune-lang/data/word-frequencies.tsv.gz"
WHEEL = "wordfreq-3.1.1-py3-none-any.whl"
WHEEL_SHA256 = "4b1c6ecffc6198be3396d5cf871c4423ca71c907c231348d352dd54d62b97473"
# The gate's column order (attune-lang's vocabulary.rs) and wordfreq's code for each.
SUPPORTED = [("en", "en"), ("es", "es"), ("pt", "pt"), ("id", "id"), ("ms", "ms"), ("tl", "fil"),
             ("vi", "vi"), ("tr", "tr")]
DECOYS = ["ca", "it", "fr", "de", "nl", "pl", "ro"]


def unpack(buf: io.BytesIO):
    """The part of msgpack these files use: arrays, maps, strings and small integers."""
    b = buf.read(1)[0]
    if b <= 0x7F:
        return b
    if 0x80 <= b <= 0x8F:
        return {unpack(buf): unpack(buf) for _ in range(b & 0x0F)}
    if 0x90 <= b <= 0x9F:
        return [unpack(buf) for _ in range(b & 0x0F)]
    if 0xA0 <= b <= 0xBF:
        return buf.read(b & 0x1F).decode()
    sized = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xDC: ">H", 0xDD: ">I", 0xDE: ">H", 0xDF: ">I"}
    if b in sized:
        fmt = sized[b]
        (n,) = struct.unpack(fmt, buf.read(struct.calcsize(fmt)))
        if b in (0xD9, 0xDA, 0xDB):
            return buf.read(n).decode()
        if b in (0xDC, 0xDD):
            return [unpack(buf) for _ in range(n)]
        return {unpack(buf): unpack(buf) for _ in range(n)}
    sys.exit(f"word-frequencies: msgpack type {b:#x} not expected in wordfreq's lists")


def zipf_table(wheel: zipfile.ZipFile, code: str) -> dict[str, int]:
    """Word → Zipf × 10. wordfreq's cB format: bin i holds the words of frequency 10^(-i/100)."""
    data = unpack(io.BytesIO(gzip.decompress(wheel.read(f"wordfreq/data/small_{code}.msgpack.gz"))))
    header, bins = data[0], data[1:]
    if header != {"format": "cB", "version": 1}:
        sys.exit(f"word-frequencies: unexpected header {header} in small_{code}")
    table: dict[str, int] = {}
    for i, words in enumerate(bins):
        zipf10 = round((900 - i) / 10)
        for w in words:
            w = unicodedata.normalize("NFC", w)
            if w.isalpha():  # what the gate's words can be: no digits, apostrophes or hyphens
                table.setdefault(w, zipf10)
    return table


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "wordfreq==3.1.1", "-d", tmp], check=True)
        wheel_path = Path(tmp) / WHEEL
        got = hashlib.sha256(wheel_path.read_bytes()).hexdigest()
        if got != WHEEL_SHA256:
            sys.exit(f"word-frequencies: checksum mismatch for {WHEEL}: expected {WHEEL_SHA256}, got {got}")
        with zipfile.ZipFile(wheel_path) as wheel:
            supported = [zipf_table(wheel, code) for _, code in SUPPORTED]
            decoys = [zipf_table(wheel, code) for code in DECOYS]
    words = sorted(set().union(*supported))
    lines = ["word\t" + " ".join([c for c, _ in SUPPORTED] + ["decoys"])]
    for w in words:
        row = [t.get(w, 0) for t in supported] + [max(t.get(w, 0) for t in decoys)]
        lines.append(w + "\t" + " ".join(map(str, row)))
    text = ("\n".join(lines) + "\n").encode()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        gz.write(text)
    print(f"{OUT.relative_to(ROOT)}: {len(words)} words, {OUT.stat().st_size} bytes, "
          f"sha256 {hashlib.sha256(OUT.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
