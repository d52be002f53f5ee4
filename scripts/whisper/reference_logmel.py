#!/usr/bin/env python3
"""Reference Whisper log-mel front end in numpy, to check the Rust one against (developer tool).

  python3 reference_logmel.py speech.wav [--out mel.f32] [--offset-s 0] [--filters mel_filters_80x201.f32]

Reads a 16 kHz mono 16-bit PCM WAV (resample others first, e.g. `sox in.wav -r 16000 -c 1 -b 16 out.wav`),
takes the 30 s window starting at --offset-s, and writes its log-mel, float32 [80, 3000] row-major
little-endian (mel bin major, frame minor), the exact `mel` input of encoder.onnx. Prints shape,
min/max/mean and the sha256 of the bytes. Needs numpy only.

It is openai-whisper's `log_mel_spectrogram(pad_or_trim(audio))` (whisper/audio.py, 20250625), the
README's way of making one 30 s window:
  samples     int16 / 32768 (what `load_audio` gets from ffmpeg as s16le), cut or zero-padded at the
              end to 480 000 samples (30 s)
  STFT        n_fft 400, hop 160, periodic Hann window (torch.hann_window(400): 0.5 - 0.5 cos(2 pi n / 400)),
              center=True: the signal is reflect-padded by 200 samples on each side (numpy 'reflect',
              the edge sample not repeated), frames t = 0 .. 3000 start at t*160 in the padded signal,
              one-sided rfft of 400 points -> 201 bins
  power       |X|^2, and the LAST frame (index 3000) is dropped -> [201, 3000]
  mel         filters [80, 201] (mel_filters_80x201.f32 = whisper/assets/mel_filters.npz "mel_80",
              librosa.filters.mel(sr=16000, n_fft=400, n_mels=80), Slaney scale and norm) @ power
  log         log10(max(x, 1e-10))
  clamp       max(x, global_max - 8) over the whole [80, 3000] window
  scale       (x + 4) / 4
The arithmetic here is float64 and rounded to float32 at the end; openai-whisper (torch, float32)
differs from it by ~1e-5 at most (see verify_export.py --check-mel), far below what changes a token.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
N_SAMPLES = 30 * SAMPLE_RATE  # 480 000
N_FRAMES = N_SAMPLES // HOP  # 3000


def load_filters(path: str = os.path.join(HERE, "..", "..", "models", "whisper-base", "mel_filters_80x201.f32")) -> np.ndarray:
    f = np.fromfile(path, dtype="<f4")
    if f.size != N_MELS * (N_FFT // 2 + 1):
        raise ValueError(f"{path}: {f.size} floats, expected {N_MELS} x {N_FFT // 2 + 1}")
    return f.reshape(N_MELS, N_FFT // 2 + 1)


def read_wav(path: str) -> np.ndarray:
    """16 kHz mono int16 WAV -> float32 samples in [-1, 1)."""
    with wave.open(path, "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path}: {w.getframerate()} Hz, {w.getnchannels()} ch, {8 * w.getsampwidth()} bit; "
                             "need 16000 Hz mono 16-bit (sox in.wav -r 16000 -c 1 -b 16 out.wav)")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def pad_or_trim(audio: np.ndarray, length: int = N_SAMPLES) -> np.ndarray:
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, (0, length - audio.shape[-1]))


def hann_periodic(n: int = N_FFT) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def log_mel(audio: np.ndarray, filters: np.ndarray | None = None) -> np.ndarray:
    """openai-whisper's log_mel_spectrogram on any length: [80, len // 160] float32."""
    if filters is None:
        filters = load_filters()
    x = np.asarray(audio, dtype=np.float64)
    x = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
    n_frames = 1 + (x.size - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(x[idx] * hann_periodic(), axis=-1)  # [frames, 201]
    power = (spec.real ** 2 + spec.imag ** 2)[:-1].T  # drop the last frame -> [201, frames - 1]
    mel = filters.astype(np.float64) @ power
    logs = np.log10(np.maximum(mel, 1e-10))
    logs = np.maximum(logs, logs.max() - 8.0)
    return ((logs + 4.0) / 4.0).astype(np.float32)


def window_features(audio: np.ndarray, filters: np.ndarray | None = None) -> np.ndarray:
    """The encoder input for one 30 s window: [80, 3000] float32."""
    mel = log_mel(pad_or_trim(audio), filters)
    assert mel.shape == (N_MELS, N_FRAMES), mel.shape
    return mel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wav")
    ap.add_argument("--offset-s", type=float, default=0.0, help="start of the 30 s window, in seconds")
    ap.add_argument("--filters", help="mel_filters_80x201.f32 (default: models/whisper-base's copy)")
    ap.add_argument("--out", help="write the [80, 3000] float32 little-endian log-mel here")
    args = ap.parse_args()
    audio = read_wav(args.wav)[int(round(args.offset_s * SAMPLE_RATE)):]
    mel = window_features(audio, load_filters(args.filters) if args.filters else load_filters())
    data = mel.astype("<f4").tobytes()
    if args.out:
        with open(args.out, "wb") as f:
            f.write(data)
    print(f"log-mel {mel.shape} min {mel.min():.6f} max {mel.max():.6f} mean {mel.mean():.6f} "
          f"sha256 {hashlib.sha256(data).hexdigest()}", file=sys.stderr)


if __name__ == "__main__":
    main()
