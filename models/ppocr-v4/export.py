"""PP-OCRv4 detection with its scalar layers folded away: the same function, fewer operators.

`export.py det.onnx det-folded.onnx` (run by `scripts/setup.py models`, in the export venv: numpy
and onnx, no ONNX Runtime).

PP-OCRv4's backbone (PPLCNetV3) wraps every convolution in "learnable affine blocks": a scalar
multiply and add after the convolution, HardSwish written out as four operators (x + 3, clip to
[0, 6], times x, / 6), and another scalar multiply and add after it. ONNX Runtime fuses none of
them, so at the glance's size (256 x 192) those ~200 elementwise operators and the layout changes
around them took half of detection's time. Here:

- a scalar multiply / add (or a per-channel add) that is a convolution's only consumer goes into
  its weights and bias (exact algebra);
- the four-operator HardSwish becomes ONNX's HardSwish (opset 14; the same function);
- a scalar multiply + add whose only consumers are 1x1 convolutions without padding goes into
  their weights (bias + d * sum of each filter's weights); before a padded convolution only the
  multiply goes in (c h + d = c (h + d / c): the padding's zeros scale but would not shift).

Every sum is exactly rounded (math.fsum) and every product a single IEEE rounding, so the file is
the same bytes on every CPU and its sha256 can be pinned. attune-model-ppocr's `tests/read.rs`
runs both graphs on the OCR fixtures and requires the same glance peaks and the same lines read.
"""

import itertools
import math
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def main(src: str, dst: str) -> None:
    model = onnx.load(src)
    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = []
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        else:
            nodes.append(n)
    outputs = {o.name for o in graph.output}
    counter = itertools.count()

    def consumers(name):
        return [n for n in nodes if name in n.input]

    def scalar(name):
        value = consts.get(name)
        return float(value.ravel()[0]) if value is not None and value.size == 1 else None

    def other(node, x):
        return node.input[1] if node.input[0] == x else node.input[0]

    def attribute(node, key, default=None):
        return next((helper.get_attribute_value(a) for a in node.attribute if a.name == key), default)

    def add_const(array, base):
        name = f"{base}.folded{next(counter)}"
        consts[name] = array.astype(np.float32)
        return name

    def weights(conv):
        w = consts[conv.input[1]].astype(np.float64)
        b = consts[conv.input[2]].astype(np.float64) if len(conv.input) > 2 else np.zeros(w.shape[0])
        return w, b

    def set_weights(conv, w, b):
        conv.input[1] = add_const(w, conv.input[1])
        bias = add_const(b, conv.input[1])
        if len(conv.input) > 2:
            conv.input[2] = bias
        else:
            conv.input.append(bias)

    def bypass(node, kept):
        """Remove `node`, its consumers reading `kept` instead of its output."""
        for n in nodes:
            for i, x in enumerate(n.input):
                if x == node.output[0]:
                    n.input[i] = kept
        nodes.remove(node)

    folded = {
        "scale or shift into a convolution": 0,
        "HardSwish": 0,
        "scale and shift into 1x1 convolutions": 0,
        "scale into padded convolutions": 0,
    }

    # 1. A convolution's only consumer a scalar multiply or a (scalar or per-channel) add.
    changed = True
    while changed:
        changed = False
        for conv in [n for n in nodes if n.op_type == "Conv"]:
            y = conv.output[0]
            after = consumers(y)
            if len(after) != 1 or y in outputs or after[0].output[0] in outputs:
                continue
            op = after[0]
            if op.op_type not in ("Mul", "Add") or len(op.input) != 2:
                continue
            c = other(op, y)
            channels = consts[conv.input[1]].shape[0]
            # A shift per output channel broadcasts as [1, C, 1, 1] (or [C, 1, 1]), not along width.
            per_channel = c in consts and tuple(consts[c].shape) in ((1, channels, 1, 1), (channels, 1, 1))
            if op.op_type == "Mul" and scalar(c) is not None:
                w, b = weights(conv)
                set_weights(conv, w * scalar(c), b * scalar(c))
            elif op.op_type == "Add" and (scalar(c) is not None or per_channel):
                w, b = weights(conv)
                set_weights(conv, w, b + consts[c].astype(np.float64).ravel())
            else:
                continue
            bypass(op, y)
            folded["scale or shift into a convolution"] += 1
            changed = True

    # 2. Add(x, 3) -> Clip(0, 6) -> Mul(x, ·) -> Div(6): HardSwish(x).
    for add in [n for n in nodes if n.op_type == "Add"]:
        x = next((i for i in add.input if i not in consts), None)
        if x is None or scalar(other(add, x)) != 3.0:
            continue
        chain = [add]
        for op_type, test in (
            ("Clip", lambda n: scalar(n.input[1]) == 0.0 and scalar(n.input[2]) == 6.0),
            ("Mul", lambda n: other(n, chain[-1].output[0]) == x),
            ("Div", lambda n: n.input[0] == chain[-1].output[0] and scalar(n.input[1]) == 6.0),
        ):
            after = consumers(chain[-1].output[0])
            if len(after) != 1 or after[0].op_type != op_type or not test(after[0]):
                break
            chain.append(after[0])
        if len(chain) != 4 or any(n.output[0] in outputs for n in chain[:3]):
            continue
        at = nodes.index(add)
        for n in chain:
            nodes.remove(n)
        nodes.insert(at, helper.make_node("HardSwish", [x], [chain[-1].output[0]], name=chain[-1].name + ".hardswish"))
        folded["HardSwish"] += 1

    # 3. Mul(x, c) -> Add(·, d) read only by unpadded 1x1 convolutions: W' = c W, b' = b + d sum(W).
    for mul in [n for n in nodes if n.op_type == "Mul"]:
        x = next((i for i in mul.input if i not in consts), None)
        if x is None or scalar(other(mul, x)) is None:
            continue
        after = consumers(mul.output[0])
        if len(after) != 1 or after[0].op_type != "Add" or scalar(other(after[0], mul.output[0])) is None:
            continue
        add = after[0]
        convs = consumers(add.output[0])
        if not convs or add.output[0] in outputs or mul.output[0] in outputs:
            continue
        if not all(n.op_type == "Conv" and n.input[0] == add.output[0] for n in convs):
            continue
        c, d = scalar(other(mul, x)), scalar(other(add, mul.output[0]))
        if not all(
            consts[n.input[1]].shape[2:] == (1, 1) and attribute(n, "group", 1) == 1 and not any(attribute(n, "pads", [0]))
            for n in convs
        ):
            # A padded convolution: its zero padding scales but does not shift, so only the
            # multiply goes into its weights: conv_W(c h + d) = conv_cW(h + d / c).
            if c == 0.0:
                continue
            for conv in convs:
                w, b = weights(conv)
                set_weights(conv, w * c, b)
            mul_output = mul.output[0]
            add.input[list(add.input).index(mul_output)] = x
            shift = other(add, x)
            add.input[list(add.input).index(shift)] = add_const(np.array(d / c), shift)
            nodes.remove(mul)
            folded["scale into padded convolutions"] += 1
            continue
        for conv in convs:
            w, b = weights(conv)
            filters = consts[conv.input[1]]
            sums = np.array([math.fsum(float(v) for v in filters[o].ravel()) for o in range(filters.shape[0])])
            set_weights(conv, w * c, b + d * sums)
            conv.input[0] = x
        nodes.remove(mul)
        nodes.remove(add)
        folded["scale and shift into 1x1 convolutions"] += 1

    used = {i for n in nodes for i in n.input}
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in sorted(consts.items()) if k in used)
    for opset in model.opset_import:
        if opset.domain == "":
            opset.version = 14  # HardSwish
    model.doc_string = "PP-OCRv4 detection (rapidocr-onnxruntime 1.4.4), scalar layers folded by attune"
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    print(f"export: {len(nodes)} operators; folded {folded}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
