#!/usr/bin/env python3
"""Reference run of the exported EfficientNet-Lite0 in onnxruntime-python, written to
reference-top5.json beside this file; `crates/attune-model-efficientnet/tests/reference.rs`
checks that attune's own decoding, preprocessing and inference give the same top-5 labels and
probabilities within 1e-3.

Developer check (the JSON is committed; CI only runs the Rust side):
    pip install onnxruntime==1.32.0 pillow==13.0.0 numpy
    just setup && python3 fixtures/make_images.py
    python3 models/efficientnet-lite0/reference.py

Preprocessing, independently written with Pillow: decode, apply EXIF orientation, take the centre
224/256 of the shorter side and resize it to 224x224 with Pillow's bilinear filter (which, like
fast_image_resize's, widens its support when downscaling) on 32-bit float planes, then
(x/255 - 0.5)/0.5, NCHW.
"""
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / ".attune/models/efficientnet-lite0"
PHOTOS = ["coffee.png", "chelsea.png", "motorcycle.png", "astronaut.png", "camera.png", "rocket.jpg", "china.jpg",
          "flower.jpg"]


def preprocess(path: Path) -> np.ndarray:
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = img.size
    side = min(w, h) * 224 / 256
    left, top = (w - side) / 2, (h - side) / 2
    box = (left, top, left + side, top + side)
    # Each channel resampled as a 32-bit float image: no rounding to 8 bits in between.
    planes = [np.asarray(c.convert("F").resize((224, 224), Image.BILINEAR, box=box)) for c in img.split()]
    x = np.stack(planes).astype(np.float32) / 255.0
    return (x - 0.5) / 0.5


def main() -> None:
    labels = (MODEL / "imagenet-labels.txt").read_text().splitlines()
    sess = ort.InferenceSession(str(MODEL / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = np.stack([preprocess(ROOT / "fixtures/images" / p) for p in PHOTOS])
    logits = sess.run(None, {"input": batch})[0]
    e = np.exp(logits - logits.max(1, keepdims=True))
    probs = e / e.sum(1, keepdims=True)
    out = {}
    for name, p in zip(PHOTOS, probs):
        top = np.argsort(-p)[:5]
        out[name] = [{"index": int(i), "label": labels[i], "probability": round(float(p[i]), 6)} for i in top]
        print(name, ", ".join(f"{labels[i]} {p[i]:.4f}" for i in top))
    (Path(__file__).parent / "reference-top5.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
