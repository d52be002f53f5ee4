#!/usr/bin/env python3
"""Make the fuzzers' seed corpora in fuzz/seeds/ (committed; about 100 KB in all).

Small real files cut from the media fixtures with ffmpeg and heif-enc (run
`python3 fixtures/make_images.py` and `python3 fixtures/make_audio.py` first), and manifest
lines in the shapes the parser meets. Only needed again when a format is added; libFuzzer grows
its own corpus in fuzz/corpus/ (git-ignored) from these.
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
SEEDS = HERE / "seeds"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def images(out: Path) -> None:
    src = FIXTURES / "images" / "coffee.png"
    small = "scale=24:16"
    ffmpeg("-i", str(src), "-vf", small, str(out / "rgb.png"))
    ffmpeg("-i", str(src), "-vf", f"{small},format=gray", str(out / "gray.png"))
    ffmpeg("-i", str(src), "-vf", f"{small},format=rgba", str(out / "rgba.png"))
    ffmpeg("-i", str(src), "-vf", f"{small},format=pal8", str(out / "palette.png"))
    ffmpeg("-i", str(src), "-vf", small, "-q:v", "5", str(out / "baseline.jpg"))
    ffmpeg("-i", str(src), "-vf", "scale=64:48,format=gray", "-q:v", "5", str(out / "gray.jpg"))
    ffmpeg("-i", str(src), "-vf", small, "-c:v", "libwebp", "-lossless", "0", "-quality", "50", str(out / "lossy.webp"))
    ffmpeg("-i", str(src), "-vf", small, "-c:v", "libwebp", "-lossless", "1", str(out / "lossless.webp"))
    # A 4:2:0 JPEG large enough (2x a short side of 16) for the reduced-scale path.
    ffmpeg("-i", str(src), "-vf", "scale=48:32", "-q:v", "8", str(out / "scalable.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "in.png"
        ffmpeg("-i", str(src), "-vf", "scale=16:16", str(png))
        subprocess.run(["heif-enc", "-q", "30", "-o", str(out / "tiny.heic"), str(png)], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["heif-enc", "-A", "-q", "30", "-o", str(out / "tiny.avif"), str(png)], check=True,
                       stdout=subprocess.DEVNULL)


def audio(out: Path) -> None:
    src = FIXTURES / "audio" / "camping.wav"
    cut = ["-ss", "0.5", "-t", "0.15", "-i", str(src)]
    ffmpeg(*cut, "-ar", "8000", "-c:a", "pcm_s16le", str(out / "s16.wav"))
    ffmpeg(*cut, "-ar", "11025", "-ac", "2", "-c:a", "pcm_u8", str(out / "u8-stereo.wav"))
    ffmpeg(*cut, "-ar", "8000", "-c:a", "pcm_f32le", str(out / "f32.wav"))
    ffmpeg(*cut, "-ar", "8000", "-c:a", "adpcm_ima_wav", str(out / "adpcm.wav"))
    ffmpeg(*cut, "-ar", "16000", "-c:a", "libmp3lame", "-b:a", "16k", str(out / "clip.mp3"))
    ffmpeg(*cut, "-ar", "16000", "-c:a", "flac", str(out / "clip.flac"))
    ffmpeg(*cut, "-ar", "16000", "-c:a", "libvorbis", "-q:a", "0", str(out / "clip.ogg"))
    ffmpeg(*cut, "-ar", "16000", "-c:a", "libopus", "-b:a", "8k", str(out / "clip.opus"))
    ffmpeg(*cut, "-ar", "16000", "-c:a", "libopus", "-b:a", "8k", str(out / "clip.webm"))
    ffmpeg(*cut, "-ar", "16000", "-c:a", "aac", "-b:a", "16k", str(out / "clip.m4a"))


def video(out: Path) -> None:
    """Tiny clips (48x32, 1 s, 10 fps, a tone under them) in each container/codec pair."""
    clip = ["-f", "lavfi", "-i", "testsrc2=size=48x32:rate=10:duration=1",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=8000", "-pix_fmt", "yuv420p"]
    ffmpeg(*clip, "-c:v", "libx264", "-g", "5", "-c:a", "aac", "-b:a", "8k", str(out / "h264-aac.mp4"))
    ffmpeg(*clip, "-c:v", "libx265", "-x265-params", "log-level=error", "-tag:v", "hvc1", "-c:a", "aac", "-b:a", "8k",
           str(out / "hevc.mov"))
    ffmpeg(*clip, "-c:v", "libvpx-vp9", "-b:v", "20k", "-c:a", "libopus", "-b:a", "8k", str(out / "vp9-opus.webm"))
    ffmpeg(*clip, "-vf", "scale=64:64", "-c:v", "libsvtav1", "-preset", "12", "-c:a", "libopus", "-b:a", "8k",
           str(out / "av1.mkv"))  # SVT-AV1 needs 64 px a side
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=48x32:rate=10:duration=1", "-pix_fmt", "yuv420p", "-c:v", "libx264",
           "-metadata:s:v:0", "rotate=90", str(out / "rotated.mp4"))


def manifests(out: Path) -> None:
    # The first byte of each input is the target's mode byte (buffer size, stretching); `!` means
    # a 75-byte buffer and no stretching.
    base = {"event_id": "e1", "user_id": "u1", "country": "US", "product": "glasses",
            "captured_at": "2026-02-01T10:05:00Z"}
    lines = {
        "text": dict(base, product="assistant", kind="text", text="any tips for a first trip to Lisbon?"),
        "image": dict(base, kind="image", media="a.jpg"),
        "audio": dict(base, kind="audio", media="sub/../a.jpg", country=None),
        "video": dict(base, kind="video", media="out.jpg", event_id=7, extra={"k": [1, None]}),
        "link": dict(base, kind="image", media="in.jpg", captured_at="2026-02-01T10:05:00+02:00"),
    }
    for name, record in lines.items():
        (out / f"{name}.jsonl").write_bytes(b"!" + json.dumps(record).encode() + b"\n")
    many = b"\n".join(json.dumps(r).encode() for r in lines.values())
    (out / "several.jsonl").write_bytes(b"!" + many + b"\r\n\n  \n" + b"{bad json\n\xff\xfe\n")
    (out / "stretched.jsonl").write_bytes(b"\x00" + many)  # mode 0: a 1 MiB+ run is spliced in


def main() -> None:
    if not (FIXTURES / "images" / "coffee.png").exists() or not (FIXTURES / "audio" / "camping.wav").exists():
        sys.exit("run `python3 fixtures/make_images.py` and `python3 fixtures/make_audio.py` first")
    for target, make in (("image_decode", images), ("audio_decode", audio), ("video_decode", video),
                         ("manifest_line", manifests)):
        out = SEEDS / target
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        make(out)
    total = sum(p.stat().st_size for p in SEEDS.rglob("*") if p.is_file())
    print(f"seeds ready in {SEEDS}: {total} bytes")


if __name__ == "__main__":
    main()
