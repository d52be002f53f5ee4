#!/usr/bin/env python3
"""The Python pipeline a user would reach for first, for comparison with attune (issue 6).

  baseline.py text|photos|voice|video MANIFEST [--policy FILE] [--workers N] [--out RESULTS.jsonl]
              [--models DIR] [--style first-reach|tuned]

The same manifest, the same ONNX files (.attune/models/), the same preprocessing and tagging
logic as attune (tagging.py), with the libraries a Python user picks: onnxruntime, numpy, Pillow,
soundfile/PyAV + soxr, HF tokenizers. Parallel with multiprocessing.Pool over --workers processes
(default: every core), each with its own InferenceSession.

Two styles (--style):
- `first-reach` (the default): what a user writes first. Every worker's InferenceSession has
  onnxruntime's default options (an intra-op thread per core, in each of the --workers processes),
  and Pillow decodes every photo at full size before resizing it.
- `tuned`: what the same user writes after profiling it: one intra-op thread per worker (the
  workers already fill the cores), and JPEGs decoded at a reduced scale with Pillow's `draft()`,
  as attune does. This is the fair reference for attune's engineering; `first-reach` is the one
  issue 6's 2x target names.

- text: lexicon, clause/window segments, MiniLM embeddings (batches of 32), prototypes, probe,
  sensitive nodes, topics. Tasks of 64 events.
- photos: Pillow decode (tuned: with draft() so a large JPEG is decoded at a reduced scale (1/2, 1/4,
  1/8) that keeps its shorter side >= 256, as attune does); EXIF orientation; the centre 224/256
  resized to 224x224 bilinear in float32 (models/efficientnet-lite0/reference.py's way); batches of
  16 through EfficientNet-Lite0; the class table. Tasks of 16 photos.
- voice: soundfile (PyAV for what libsndfile cannot open), mono by averaging channels, soxr to
  16 kHz, Whisper tiny.en (numpy log-mel, encoder, greedy decoding with the KV cache, 30 s windows,
  silent windows skipped), then the text path on the transcript. One recording a task.
- video: PyAV decodes every frame and keeps the first at or after each whole second, which go
  through the photo path (one batch); the audio track goes through the voice path; one verdict per
  video as attune-tag's Verdict::combine makes it (see `combine`). One video a task. Frames are
  scaled and the audio resampled by PyAV's swscale/swresample, as attune-decode-video does.

Prints a summary on stderr and one JSON object on stdout's last line (for benches/run_bench.py);
--out writes one line per event: event_id, outcome (tagged, no_topic, dropped, failed, skipped:REASON),
topics [[id, score], ...], and the detector of a drop. Content (text, transcripts) is never written.
Timing: `elapsed_s` runs from the moment every worker has built its sessions to the last result,
as attune's report times its run after loading the models; `startup_s` is the time before that.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the sources (not git-ignored)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_venv import reexec_in_venv  # noqa: E402

reexec_in_venv()

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

import tagging  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODELS = Path(os.environ.get("ATTUNE_HOME", ROOT / ".attune")) / "models"
KINDS = {"text": "text", "photos": "image", "voice": "audio", "video": "video"}
TASK_SIZE = {"text": 64, "photos": 16, "voice": 1, "video": 1}

# attune-policy's defaults: EU 27, EEA, United Kingdom, South Korea.
DEFAULT_EXCLUDED = set("AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
                       "IS LI NO GB KR".split())
DEFAULT_EFFECTIVE_FROM = "2025-12-16T00:00:00Z"


def rfc3339(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc)


class Policy:
    """attune-policy's gate: opt-out, then jurisdiction (fail closed), then effective date."""

    def __init__(self, path: Path | None):
        spec = tomllib.loads(path.read_text()) if path else {}
        self.effective_from = rfc3339(spec.get("effective_from", DEFAULT_EFFECTIVE_FROM))
        self.excluded = set(spec.get("excluded_countries", DEFAULT_EXCLUDED)) | set(spec.get("also_excluded_countries", []))
        self.opt_out = set(spec.get("opt_out_users", []))
        if "opt_out_file" in spec:
            lines = (path.parent / spec["opt_out_file"]).read_text().splitlines()
            self.opt_out |= {l.strip() for l in lines if l.strip() and not l.startswith("#")}

    def exclusion(self, e: dict) -> str | None:
        if e["user_id"] in self.opt_out:
            return "opt_out"
        # Fail closed on absent codes; attune also refuses codes that are not ISO 3166-1 (UK, EL),
        # which a corpus made by make_corpus.py never holds.
        country = (e.get("country") or "").strip().upper()
        if len(country) != 2 or not country.isalpha() or country in self.excluded | {"UK", "EL"}:
            return "jurisdiction"
        if rfc3339(e["captured_at"]) < self.effective_from:
            return "effective_date"
        return None


# ---------------------------------------------------------------- worker state and stages

W: dict = {}  # per process: sessions and taggers, built by the pool initializer


def session_options() -> ort.SessionOptions:
    o = ort.SessionOptions()
    if W.get("style") == "tuned":
        o.intra_op_num_threads = 1
        o.inter_op_num_threads = 1
    return o


def init_worker(modality: str, models: Path, barrier) -> None:
    # W["style"] is set before the pool forks, so every worker has it already.
    opts = session_options()
    if modality in ("text", "voice", "video"):
        W["embed"] = tagging.Embedder(models / "minilm-l6-v2", opts)
    if modality in ("photos", "video"):
        W["image"] = EfficientNet(models / "efficientnet-lite0", opts)
    if modality in ("voice", "video"):
        W["whisper"] = Whisper(models / "whisper-tiny-en", opts)
    barrier.wait()


def verdict_record(event_id: str, verdict, **extra) -> dict:
    kind, value = verdict
    if kind == "sensitive":
        return {"event_id": event_id, "outcome": "dropped", "detector": value, "topics": [], **extra}
    return {"event_id": event_id, "outcome": "tagged" if value else "no_topic",
            "topics": [[t, round(s, 6)] for t, s in value], **extra}


def failed(event_id: str, e: Exception) -> dict:
    return {"event_id": event_id, "outcome": "failed", "error": f"{type(e).__name__}: {e}", "topics": []}


# text

def run_text(task: list[tuple[str, str]]) -> list[dict]:
    verdicts = W["tagger"].tag_texts([t for _, t in task], W["embed"])
    return [verdict_record(eid, v) for (eid, _), v in zip(task, verdicts)]


# photos

class EfficientNet:
    SIZE, SHORTER = 224, 256

    def __init__(self, model_dir: Path, opts):
        self.session = ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    @classmethod
    def load(cls, path: str):
        """Decode, at a reduced scale when the JPEG is at least twice what the model needs."""
        from PIL import Image, ImageOps
        img = Image.open(path)
        if W.get("style") == "tuned":
            img.draft("RGB", (cls.SHORTER, cls.SHORTER))  # JPEG only; a no-op for other formats
        return ImageOps.exif_transpose(img).convert("RGB")

    @classmethod
    def preprocess(cls, img) -> np.ndarray:
        """The centre 224/256 of the shorter side, bilinear to 224x224 in float32, to [-1, 1], CHW."""
        from PIL import Image
        w, h = img.size
        side = min(w, h) * cls.SIZE / cls.SHORTER
        left, top = (w - side) / 2, (h - side) / 2
        box = (left, top, left + side, top + side)
        planes = [np.asarray(c.convert("F").resize((cls.SIZE, cls.SIZE), Image.BILINEAR, box=box)) for c in img.split()]
        return (np.stack(planes) / 255.0 - 0.5) / 0.5

    def classify(self, batch: list[np.ndarray]) -> np.ndarray:
        logits = self.session.run(["logits"], {"input": np.stack(batch).astype(np.float32)})[0]
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


def run_photos(task: list[tuple[str, str]]) -> list[dict]:
    out, ready = [], []
    for eid, path in task:
        try:
            ready.append((eid, EfficientNet.preprocess(EfficientNet.load(path))))
        except Exception as e:  # one bad file costs one event
            out.append(failed(eid, e))
    if ready:
        probs = W["image"].classify([t for _, t in ready])
        out += [verdict_record(eid, W["image_tagger"].tag(p)) for (eid, _), p in zip(ready, probs)]
    return out


# voice

class Whisper:
    """Whisper tiny.en as attune-model-whisper runs it (models/whisper-tiny-en/model.toml)."""
    RATE, N_FFT, HOP, N_FRAMES = 16000, 400, 160, 3000
    WINDOW = RATE * 30
    SILENCE_RMS = 0.002

    def __init__(self, model_dir: Path, opts):
        from tokenizers import Tokenizer
        rt = tomllib.loads((model_dir / "model.toml").read_text())["runtime"]
        self.filters = np.fromfile(model_dir / rt["mel_filters"], "<f4").reshape(rt["n_mels"], self.N_FFT // 2 + 1)
        self.encoder = ort.InferenceSession(str(model_dir / rt["encoder"]), opts, providers=["CPUExecutionProvider"])
        self.decoder = ort.InferenceSession(str(model_dir / rt["decoder"]), opts, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / rt["tokenizer"]))
        self.prompt, self.eot = rt["prompt"], rt["eot"]
        self.suppress = np.array(rt["suppress_tokens"])
        self.suppress_first = np.array(rt["suppress_tokens"] + rt["suppress_blank"])
        self.max_new_tokens, self.layers, self.heads, self.head_dim = (
            rt["max_new_tokens"], rt["layers"], rt["heads"], rt["head_dim"])
        self.hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.N_FFT) / self.N_FFT)).astype(np.float32)

    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """[80, 3000] for one 30 s window (cut or zero-padded), as openai-whisper computes it."""
        audio = np.zeros(self.WINDOW, np.float32)
        audio[:min(len(samples), self.WINDOW)] = samples[:self.WINDOW]
        padded = np.pad(audio, self.N_FFT // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.N_FFT)[::self.HOP][:self.N_FRAMES]
        spec = np.fft.rfft(frames * self.hann, axis=-1)
        power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)  # [3000, 201]
        mel = np.log10(np.maximum(self.filters @ power.T, 1e-10))
        return (np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0

    def greedy(self, cross: np.ndarray) -> list[int]:
        past = np.zeros((2 * self.layers, 1, self.heads, 0, self.head_dim), np.float32)
        tokens = np.array([self.prompt], np.int64)
        offset, out = 0, []
        # The decoder takes each layer's cross-attention keys and values as inputs of their own.
        layers = {f"cross_{kv}{l}": cross[2 * l + j] for l in range(self.layers) for j, kv in enumerate("kv")}
        for step in range(self.max_new_tokens):
            logits, past = self.decoder.run(["logits", "present_kv"], {
                "tokens": tokens, **layers, "past_kv": past, "offset": np.array([offset], np.int64)})
            row = logits[0, -1].copy()
            row[self.suppress_first if step == 0 else self.suppress] = -np.inf
            nxt = int(row.argmax())
            offset += tokens.shape[1]
            if nxt == self.eot:
                break
            out.append(nxt)
            tokens = np.array([[nxt]], np.int64)
        return out

    def transcribe(self, pcm: np.ndarray) -> str:
        windows = [pcm[i:i + self.WINDOW] for i in range(0, len(pcm), self.WINDOW)]
        voiced = [w for w in windows if np.sqrt(np.mean(w.astype(np.float64) ** 2)) >= self.SILENCE_RMS]
        pieces = []
        for at in range(0, len(voiced), 4):  # the windows of a recording go through the encoder together
            mels = np.stack([self.log_mel(w) for w in voiced[at:at + 4]])
            cross = self.encoder.run(["cross_kv"], {"mel": mels})[0]
            for i in range(len(mels)):
                ids = [t for t in self.greedy(np.ascontiguousarray(cross[:, i:i + 1])) if t < self.eot]
                pieces.append(self.tokenizer.decode(ids, skip_special_tokens=True).strip())
        return " ".join(p for p in pieces if p)


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    import soxr
    return samples if rate == Whisper.RATE else soxr.resample(samples, rate, Whisper.RATE).astype(np.float32)


def decode_audio(path: str) -> np.ndarray:
    """16 kHz mono float32: soundfile where libsndfile reads the format, else PyAV."""
    import soundfile
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        return to_16k(data.mean(axis=1), rate)
    except soundfile.LibsndfileError:
        pass
    import av
    with av.open(path) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")  # planar float; layout and rate kept
        chunks = [f.to_ndarray() for frame in container.decode(stream) for f in resampler.resample(frame)]
        rate = stream.codec_context.sample_rate
    return to_16k(planar_mono(chunks), rate)


def planar_mono(chunks: list[np.ndarray]) -> np.ndarray:
    """Planar [channels, samples] chunks to one mono signal, channels averaged."""
    if not chunks:
        return np.zeros(0, np.float32)
    return np.concatenate([c.mean(axis=0) for c in chunks]).astype(np.float32)


def run_voice(task: list[tuple[str, str]]) -> list[dict]:
    out = []
    for eid, path in task:
        try:
            pcm = decode_audio(path)
            text = W["whisper"].transcribe(pcm)
            out.append(verdict_record(eid, W["tagger"].tag_texts([text], W["embed"])[0],
                                      media_s=len(pcm) / Whisper.RATE))
        except Exception as e:
            out.append(failed(eid, e))
    return out


# video

def decode_video(path: str) -> tuple[list, np.ndarray, float]:
    """Every frame decoded (PyAV's default threading) and the first at or after each whole second
    kept, scaled by swscale (area) to a 256-pixel shorter side in RGB, as attune-decode-video does;
    the audio track resampled by swresample to 16 kHz mono; the video's duration in seconds."""
    import av
    from PIL import Image
    frames, audio, next_t, last_t = [], [], 0.0, 0.0
    with av.open(path) as container:
        v = container.streams.video[0]
        a = container.streams.audio[0] if container.streams.audio else None
        duration = float(v.duration * v.time_base) if v.duration else None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=Whisper.RATE)
        for frame in container.decode(*(s for s in (v, a) if s is not None)):
            if isinstance(frame, av.VideoFrame):
                t = frame.time or 0.0
                last_t = max(last_t, t)
                if t >= next_t:
                    w, h = frame.width, frame.height
                    scale = min(1.0, EfficientNet.SHORTER / min(w, h))
                    rgb = frame.reformat(width=max(1, round(w * scale)), height=max(1, round(h * scale)),
                                         format="rgb24", interpolation="AREA")
                    frames.append(Image.fromarray(rgb.to_ndarray()))
                    next_t = float(int(t)) + 1.0
            else:
                audio += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        audio += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]  # what swresample still holds
    pcm = np.concatenate(audio).astype(np.float32) if audio else np.zeros(0, np.float32)
    return frames, pcm, duration or last_t


def run_video(task: list[tuple[str, str]]) -> list[dict]:
    out = []
    for eid, path in task:
        try:
            frames, pcm, seconds = decode_video(path)
            pictures = []
            tensors = [EfficientNet.preprocess(f) for f in frames]
            for at in range(0, len(tensors), 16):
                pictures += [W["image_tagger"].tag(p) for p in W["image"].classify(tensors[at:at + 16])]
            speech = [W["tagger"].tag_texts([W["whisper"].transcribe(pcm)], W["embed"])[0]] if len(pcm) else []
            out.append(verdict_record(eid, combine([pictures, speech]), media_s=seconds))
        except Exception as e:
            out.append(failed(eid, e))
    return out


def combine(sources: list[list]) -> tuple:
    """attune-tag's Verdict::combine: any sensitive part drops the video; within a source (the
    frames, the speech) a topic keeps its best score; across sources scores add up as independent
    evidence, 1 - (1 - a)(1 - b); the best 6."""
    combined: dict[int, float] = {}
    for source in sources:
        best: dict[int, float] = {}
        for kind, value in source:
            if kind == "sensitive":
                return (kind, value)
            for t, s in value:
                best[t] = max(best.get(t, 0.0), s)
        for t, s in best.items():
            combined[t] = 1.0 - (1.0 - combined[t]) * (1.0 - s) if t in combined else s
    return ("topics", sorted(combined.items(), key=lambda x: -x[1])[:tagging.MAX_COMBINED_TOPICS])


RUNNERS = {"text": run_text, "photos": run_photos, "voice": run_voice, "video": run_video}


# ---------------------------------------------------------------- main

def read_manifest(path: Path, modality: str, policy: Policy) -> tuple[list, list[dict], int]:
    """(tasks' items, records already decided by the gate or the parser, records read)."""
    items, decided, n = [], [], 0
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        n += 1
        try:
            e = json.loads(line)
            eid = str(e["event_id"])
        except Exception as err:
            decided.append({"event_id": f"line:{line_no}", "outcome": "failed", "error": str(err), "topics": []})
            continue
        try:
            reason = policy.exclusion(e)
        except Exception as err:  # a missing or malformed key fails that line only
            decided.append(failed(eid, err))
            continue
        if reason:
            decided.append({"event_id": eid, "outcome": f"skipped:{reason}", "topics": []})
        elif e.get("kind") != KINDS[modality]:
            decided.append({"event_id": eid, "outcome": "skipped:other_kind", "topics": []})
        elif modality == "text":
            items.append((eid, e["text"]))
        else:
            items.append((eid, str(path.parent / e["media"])))
    return items, decided, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("modality", choices=sorted(RUNNERS))
    p.add_argument("manifest", type=Path)
    p.add_argument("--policy", type=Path, help="default: policy.toml beside the manifest, if any")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, help="per-event results (JSON Lines)")
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--style", choices=["first-reach", "tuned"], default="first-reach")
    args = p.parse_args()
    W["style"] = args.style
    started = time.perf_counter()
    policy_path = args.policy or (args.manifest.parent / "policy.toml")
    policy = Policy(policy_path if policy_path.exists() else None)
    items, decided, events = read_manifest(args.manifest, args.modality, policy)

    # Built once, before the pool forks, so every worker inherits them: the taxonomy's and
    # categories' reference embeddings, and the class table.
    if args.modality in ("text", "voice", "video"):
        embed = tagging.Embedder(args.models / "minilm-l6-v2", session_options())
        W["tagger"] = tagging.TextTagger(embed)
        del embed
    if args.modality in ("photos", "video"):
        W["image_tagger"] = tagging.ImageTagger()

    size = TASK_SIZE[args.modality]
    tasks = [items[i:i + size] for i in range(0, len(items), size)]
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(args.workers + 1)
    results: list[dict] = []
    with ctx.Pool(args.workers, initializer=init_worker, initargs=(args.modality, args.models, barrier)) as pool:
        barrier.wait(timeout=600)  # every worker has its sessions
        ready = time.perf_counter()
        for chunk in pool.imap_unordered(RUNNERS[args.modality], tasks):
            results += chunk
        elapsed = time.perf_counter() - ready
    results += decided
    results.sort(key=lambda r: r["event_id"])

    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    media_s = sum(r.get("media_s", 0.0) for r in results)
    summary = {
        "baseline": args.modality, "style": args.style, "manifest": str(args.manifest), "workers": args.workers,
        "events": events,
        "processed": outcomes.get("tagged", 0) + outcomes.get("no_topic", 0), "tagged": outcomes.get("tagged", 0),
        "dropped": outcomes.get("dropped", 0), "failed": outcomes.get("failed", 0),
        "skipped": sum(v for k, v in outcomes.items() if k.startswith("skipped:")),
        "elapsed_s": round(elapsed, 3), "startup_s": round(ready - started, 3),
        "events_per_s": round(events / elapsed, 3) if elapsed > 0 else 0.0,
    }
    if args.modality in ("voice", "video"):
        summary["media_s"] = round(media_s, 2)
        summary["media_s_per_s"] = round(media_s / elapsed, 3) if elapsed > 0 else 0.0
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(r) + "\n" for r in results))
    rate = f", {summary['media_s_per_s']:.1f} media-s/s" if "media_s" in summary else ""
    print(f"baseline {args.modality}: {events} events ({summary['processed']} processed, {summary['dropped']} dropped, "
          f"{summary['failed']} failed, {summary['skipped']} skipped) in {elapsed:.2f} s "
          f"(+{summary['startup_s']:.2f} s start-up) = {summary['events_per_s']:.1f} events/s{rate}, "
          f"{args.workers} workers, {args.style}", file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
