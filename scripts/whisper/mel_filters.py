#!/usr/bin/env python3
"""Where mel_filters_80x201.f32 comes from (developer tool; the file itself is committed).
(Paths below use a scratch folder: WORK=$(mktemp -d).)

  pip download --no-deps openai-whisper==20250625 -d $WORK/w     # an sdist; needs `wheel` in pip's
  tar xzf $WORK/w/openai_whisper-20250625.tar.gz -C $WORK/w       # environment to prepare its metadata
  python3 mel_filters.py $WORK/w/openai_whisper-20250625/whisper/assets/mel_filters.npz [--write]

openai-whisper (MIT) ships the 80-bin filterbank it uses as `whisper/assets/mel_filters.npz`, key
"mel_80", float32 [80, 201] (sdist sha256 37a91a39…, npz sha256 7450ae70…). This script checks it
against an independent numpy rebuild of `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`
(Slaney mel scale, Slaney area normalisation, fmin 0, fmax 8000: how the npz was made), compares it
with the committed file, and with --write (re)writes mel_filters_80x201.f32: the npz array's bytes as
little-endian float32, row-major (row = mel bin, column = FFT bin 0..200). Needs numpy only.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "models", "whisper-base", "mel_filters_80x201.f32")  # each Whisper model keeps a copy


def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-30) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def slaney_mel(sr: int = 16000, n_fft: int = 400, n_mels: int = 80) -> np.ndarray:
    """librosa.filters.mel (librosa 0.10, htk=False, norm='slaney'), float32 as librosa returns it."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("npz", help="whisper/assets/mel_filters.npz from the openai-whisper sdist")
    ap.add_argument("--write", action="store_true", help=f"write {os.path.basename(OUT)}")
    args = ap.parse_args()
    with np.load(args.npz, allow_pickle=False) as z:
        ref = z["mel_80"]
    if ref.shape != (80, 201) or ref.dtype != np.float32:
        sys.exit(f"mel_80 is {ref.dtype} {ref.shape}, expected float32 (80, 201)")
    mine = slaney_mel()
    diff = np.abs(mine.astype(np.float64) - ref.astype(np.float64))
    print(f"numpy Slaney rebuild vs npz: max |diff| {diff.max():.3e} (max weight {ref.max():.6f}), "
          f"bitwise equal: {np.array_equal(mine, ref)}", file=sys.stderr)
    data = ref.astype("<f4").tobytes()
    print(f"npz mel_80 as f32le: sha256 {hashlib.sha256(data).hexdigest()}", file=sys.stderr)
    if os.path.exists(OUT):
        with open(OUT, "rb") as f:
            print(f"committed {os.path.basename(OUT)} equal to the npz: {f.read() == data}", file=sys.stderr)
    if args.write:
        with open(OUT, "wb") as f:
            f.write(data)
        print(f"wrote {OUT}", file=sys.stderr)
    if diff.max() > 1e-6:
        sys.exit("the numpy rebuild disagrees with the npz")


if __name__ == "__main__":
    main()
