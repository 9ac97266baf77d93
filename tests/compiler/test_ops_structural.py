"""Structural ops for the importer and the layers: forward against NumPy references
written here or onnx's reference evaluator running the plain ONNX op, float64 gradients
against central differences, float32 graphs in onnxruntime at several opsets."""
import numpy as np
import pytest

from symgrad.compiler import ops, ParameterError, ShapeError
from layer_harness import np_conv
from op_harness import check_op, onnx_op

rng = np.random.default_rng(0)


def distinct(*shape):
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) / 5.0


# ---------------------------------------------------------------- conv_transpose

def np_conv_transpose(x, w, b, strides, pads, output_padding, dilations, groups):
    """Scatter form, straight from the definition: every input pixel adds w * x at its
    strided position; then crop the pads and append output_padding."""
    n, cin = x.shape[:2]
    r = x.ndim - 2
    cog = w.shape[1]
    k = w.shape[2:]
    full = [(x.shape[2 + i] - 1) * strides[i] + dilations[i] * (k[i] - 1) + 1 + output_padding[i] for i in range(r)]
    y = np.zeros((n, cog * groups) + tuple(full), dtype=np.result_type(x, w))
    cig = cin // groups
    for g in range(groups):
        for ci in range(g * cig, (g + 1) * cig):
            for pos in np.ndindex(*x.shape[2:]):
                for tap in np.ndindex(*k):
                    at = tuple(pos[i] * strides[i] + tap[i] * dilations[i] for i in range(r))
                    y[(slice(None), slice(g * cog, (g + 1) * cog)) + at] += \
                        x[(slice(None), ci) + pos][:, None] * w[(ci, slice(None)) + tap][None, :]
    crop = tuple(slice(pads[i], full[i] - pads[r + i]) for i in range(r))
    y = y[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * r)
    return y


@pytest.mark.parametrize("xs, ws, kw", [
    ((2, 2, 3, 3), (2, 3, 3, 3), dict(strides=2, pads=1, output_padding=1)),
    ((1, 4, 2, 3), (4, 1, 2, 2), dict(strides=(1, 2), groups=2, dilations=(2, 1))),
    ((2, 2, 4), (2, 3, 3), dict(strides=3, pads=(1, 0), output_padding=2)),
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose(xs, ws, kw, bias):
    r = len(xs) - 2
    per = {k: (v if isinstance(v, tuple) else (v,) * r) for k, v in kw.items()}
    strides, dil = per.get("strides", (1,) * r), per.get("dilations", (1,) * r)
    pads = per.get("pads", (0,) * r)
    pads = pads if len(pads) == 2 * r else pads + pads
    op, groups = per.get("output_padding", (0,) * r), kw.get("groups", 1)
    ws = (ws[0], ws[1]) + ws[2:]
    inputs = [rng.standard_normal(xs), rng.standard_normal(ws)] + ([rng.standard_normal(ws[1] * groups)] if bias else [])

    def ref(x, w, b=None):
        return np_conv_transpose(x, w, b, strides, pads, op, dil, groups)

    def fn(x, w, b=None):
        return ops.conv_transpose(x, w, b, **kw)

    got = check_op(fn, inputs, ref, shapes=[("N",) + xs[1:]] + [a.shape for a in inputs[1:]], opsets=(13, 17))
    onnx_y = onnx_op("ConvTranspose", inputs, strides=list(strides), pads=list(pads), output_padding=list(op),
                     dilations=list(dil), group=groups) if groups == 1 else None
    if onnx_y is not None:
        np.testing.assert_allclose(got["y"], onnx_y, rtol=1e-9, atol=1e-9)


def test_conv_transpose_is_the_adjoint_of_conv():
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    from op_harness import CompiledOp
    y = np_conv(x, w, None, (2, 2), (1, 1, 1, 1))
    g = rng.standard_normal(y.shape)
    c = CompiledOp(lambda g_, w_: ops.conv_transpose(g_, w_, strides=2, pads=1), [g, w])
    back = c.run([g, w], np.zeros(x.shape))["y"]
    assert back.shape == x.shape
    assert np.sum(back * x) == pytest.approx(np.sum(g * y), rel=1e-10)


def test_conv_transpose_errors():
    from op_harness import CompiledOp
    with pytest.raises(ShapeError, match="output_padding"):
        CompiledOp(lambda x, w: ops.conv_transpose(x, w, strides=2, output_padding=2),
                   [np.zeros((1, 2, 3, 3)), np.zeros((2, 1, 3, 3))])
    with pytest.raises(ShapeError, match="channels"):
        CompiledOp(lambda x, w: ops.conv_transpose(x, w), [np.zeros((1, 3, 3, 3)), np.zeros((2, 1, 3, 3))])


# ---------------------------------------------------------------- pad, slice, split, tile, broadcast

@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(mode):
    x = rng.standard_normal((2, 3, 4, 5))
    pads = (0, 1, 2, 0, 0, 2, 1, 3)
    np_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}[mode]
    widths = [(pads[i], pads[4 + i]) for i in range(4)]
    kw = {"constant_values": 1.5} if mode == "constant" else {}

    def ref(x):
        return np.pad(x, widths, mode=np_mode, **kw)

    check_op(lambda v: ops.pad(v, pads, mode=mode, value=1.5 if mode == "constant" else 0.0), [x], ref,
             shapes=[("N", 3, 4, 5)], opsets=(13, 21))


def test_pad_with_negative_pads_crops():
    x = rng.standard_normal((2, 5, 6))
    check_op(lambda v: ops.pad(v, (0, -1, 2, 0, 1, -2)), [x],
             lambda x: np.pad(x, [(0, 0), (0, 1), (2, 0)])[:, 1:, :-2], shapes=[("N", 5, 6)])


@pytest.mark.parametrize("starts, ends, axes, steps", [
    ((1, 0), (3, -1), (1, 2), (1, 1)),
    ((-1,), (-100,), (2,), (-2,)),
    ((0, 4), (100, 0), (1, 2), (2, -1)),
])
def test_slice_matches_python_slicing(starts, ends, axes, steps):
    x = rng.standard_normal((2, 4, 6))

    def ref(x):
        sl = [slice(None)] * 3
        for s, e, a, st in zip(starts, ends, axes, steps):
            sl[a] = slice(s, e, st)
        return x[tuple(sl)]

    check_op(lambda v: ops.slice(v, starts, ends, axes, steps), [x], ref, shapes=[("N", 4, 6)], opsets=(13, 17))


def test_split_into_sizes_and_equal_parts():
    x = rng.standard_normal((2, 7, 3))
    for parts, want in (([2, 5], [2, 5]), (3, [3, 3, 1])):
        from op_harness import CompiledOp
        for k in range(len(want)):
            start = sum(want[:k])
            check_op(lambda v, k=k: ops.split(v, parts, axis=1)[k], [x],
                     lambda x, s=start, n=want[k]: x[:, s:s + n], shapes=[("N", 7, 3)])
    with pytest.raises(ParameterError, match="add up"):
        CompiledOp(lambda v: ops.split(v, [2, 2], axis=1)[0], [x])


def test_tile_and_broadcast_to():
    x = rng.standard_normal((2, 3, 1))
    check_op(lambda v: ops.tile(v, (1, 2, 3)), [x], lambda x: np.tile(x, (1, 2, 3)), shapes=[("N", 3, 1)],
             opsets=(13, 17))
    check_op(lambda v: ops.broadcast_to(v, (-1, 3, 4)), [x], lambda x: np.broadcast_to(x, (2, 3, 4)),
             shapes=[("N", 3, 1)])
    check_op(lambda v: ops.expand(v, (2, 1, 3, 4)), [x], lambda x: np.broadcast_to(x, (2, 2, 3, 4)))


# ---------------------------------------------------------------- resize

@pytest.mark.parametrize("mode, ctm, nearest_mode, scales, sizes", [
    ("nearest", "asymmetric", "floor", (1, 1, 2, 3), None),
    ("nearest", "half_pixel", "round_prefer_floor", None, (2, 2, 7, 3)),
    ("nearest", "align_corners", "round_prefer_ceil", None, (2, 2, 5, 8)),
    ("linear", "half_pixel", "round_prefer_floor", (1, 1, 2, 2), None),
    ("linear", "align_corners", "round_prefer_floor", None, (2, 2, 7, 3)),
    ("linear", "asymmetric", "round_prefer_floor", (1, 1, 1.5, 0.5), None),
    ("linear", "pytorch_half_pixel", "round_prefer_floor", None, (2, 2, 1, 6)),
])
def test_resize_matches_onnx_reference(mode, ctm, nearest_mode, scales, sizes):
    x = rng.standard_normal((2, 2, 4, 5))
    consts = (None, np.asarray(scales, dtype=np.float32), None) if scales else (None, None, np.asarray(sizes))

    def ref(x):
        return onnx_op("Resize", [x], consts=consts, mode=mode, coordinate_transformation_mode=ctm,
                       nearest_mode=nearest_mode)

    size_arg = None if sizes is None else (None,) + tuple(sizes[1:])
    check_op(lambda v: ops.resize(v, scales=scales, sizes=size_arg, mode=mode, coordinate_transformation_mode=ctm,
                                  nearest_mode=nearest_mode), [x], ref, shapes=[("N", 2, 4, 5)], opsets=(13, 21))


# ---------------------------------------------------------------- depth/space, gather_elements

@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_and_back(mode):
    x = rng.standard_normal((2, 8, 2, 3))
    check_op(lambda v: ops.depth_to_space(v, 2, mode), [x],
             lambda x: onnx_op("DepthToSpace", [x], blocksize=2, mode=mode), shapes=[("N", 8, 2, 3)])
    y = rng.standard_normal((2, 2, 4, 6))

    # the x with depth_to_space(x) == y, from the ONNX op applied to every index at once
    perm = onnx_op("DepthToSpace", [np.arange(48.0).reshape(1, 8, 2, 3)], blocksize=2, mode=mode).ravel()
    perm = perm.astype(int)                               # y.flat[j] = x.flat[perm[j]]

    def inverse(y):
        out = np.empty((y.shape[0], 48))
        out[:, perm] = y.reshape(y.shape[0], -1)
        return out.reshape(-1, 8, 2, 3)

    check_op(lambda v: ops.space_to_depth(v, 2, mode), [y], inverse, shapes=[("N", 2, 4, 6)], opsets=(13, 17))


@pytest.mark.parametrize("opset", [13, 17])
def test_gather_elements(opset):
    x = rng.standard_normal((2, 4, 3))
    idx = np.array([[[0, 3, -1], [1, 1, 0]], [[3, 3, 3], [0, -4, 2]]])   # repeats accumulate
    check_op(lambda v, i: ops.gather_elements(v, i, axis=1), [x, idx],
             lambda x, i: np.take_along_axis(x, np.where(i < 0, i + 4, i), axis=1), opsets=(opset,))
    small = np.array([[[2], [0]]])                                   # smaller off the axis
    if opset >= 16:
        check_op(lambda v, i: ops.gather_elements(v, i, axis=1), [x[:1], small],
                 lambda x, i: np.array([[[x[0, i[0, j, 0], 0]] for j in range(2)]]), opsets=(opset,))


# ---------------------------------------------------------------- normalisation and pooling

@pytest.mark.parametrize("size", [3, 4])
def test_lrn(size):
    """onnx 1.23's reference LRN loops over the batch instead of the channels; the oracles
    are the spec written out here and onnxruntime's LRN."""
    x = rng.standard_normal((2, 5, 3, 2))
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)

    def ref(x):
        sq = np.stack([(x[:, max(0, c - lo):c + hi + 1] ** 2).sum(axis=1) for c in range(x.shape[1])], axis=1)
        return x / (2.0 + 0.3 / size * sq) ** 0.75

    got = check_op(lambda v: ops.lrn(v, size, alpha=0.3, beta=0.75, bias=2.0), [x], ref, shapes=[("N", 5, 3, 2)])
    if size % 2:  # onnxruntime's LRN takes odd sizes only; symgrad's lowering takes any
        ort_y = onnx_op("LRN", [x], size=size, alpha=0.3, beta=0.75, bias=2.0, runtime="onnxruntime", opset=17)
        np.testing.assert_allclose(got["y"], ort_y, rtol=1e-5, atol=1e-6)


def test_instance_norm():
    x, s, b = rng.standard_normal((2, 3, 4, 2)), rng.standard_normal(3), rng.standard_normal(3)

    def ref(x, s, b):
        m = x.mean(axis=(2, 3), keepdims=True)
        v = x.var(axis=(2, 3), keepdims=True)
        return (x - m) / np.sqrt(v + 1e-5) * s[:, None, None] + b[:, None, None]

    check_op(lambda x, s, b: ops.instance_norm(x, s, b), [x, s, b], ref, shapes=[("N", 3, 4, 2), (3,), (3,)])
    np.testing.assert_allclose(ref(x, s, b), onnx_op("InstanceNormalization", [x, s, b], epsilon=1e-5), rtol=1e-10)


@pytest.mark.parametrize("axis, shape", [(1, (2, 6, 3, 2)), (-1, (2, 3, 2, 6))])
def test_group_norm(axis, shape):
    x, s, b = rng.standard_normal(shape), rng.standard_normal(6), rng.standard_normal(6)

    def ref(x, s, b):
        xm = np.moveaxis(x, axis, 1)
        g = xm.reshape(2, 3, -1)
        g = (g - g.mean(axis=-1, keepdims=True)) / np.sqrt(g.var(axis=-1, keepdims=True) + 1e-3)
        y = g.reshape(xm.shape) * s[:, None, None] + b[:, None, None]
        return np.moveaxis(y, 1, axis)

    check_op(lambda x, s, b: ops.group_norm(x, 3, s, b, epsilon=1e-3, axis=axis), [x, s, b], ref,
             shapes=[("N",) + shape[1:], (6,), (6,)])


def test_global_max_pool():
    x = distinct(2, 3, 2, 3)
    check_op(ops.global_max_pool, [x], lambda x: x.max(axis=(2, 3)), shapes=[("N", 3, 2, 3)])


def np_pool(x, kernel, strides, pads, dilations, ceil_mode, kind, count_include_pad=False, maximum=np.maximum):
    """PyTorch's pooling, written out: windows start at -pad + o*s; with ceil_mode a last
    window may overhang the end padding but may not start in it; the average divides by
    the cells inside the input (or, with count_include_pad, inside the padded extent)."""
    r = x.ndim - 2
    outs = []
    for i in range(r):
        span = dilations[i] * (kernel[i] - 1) + 1
        room = x.shape[2 + i] + pads[i] + pads[r + i] - span
        o = (-(-room // strides[i]) if ceil_mode else room // strides[i]) + 1
        if ceil_mode and (o - 1) * strides[i] >= x.shape[2 + i] + pads[i]:
            o -= 1
        outs.append(o)
    y = np.zeros(x.shape[:2] + tuple(outs), dtype=x.dtype)
    for o in np.ndindex(*outs):
        vals, padded = [], 0
        for tap in np.ndindex(*kernel):
            pos = [o[i] * strides[i] - pads[i] + tap[i] * dilations[i] for i in range(r)]
            if all(0 <= p < x.shape[2 + i] for i, p in enumerate(pos)):
                vals.append(x[(slice(None), slice(None)) + tuple(pos)])
            elif all(-pads[i] <= p < x.shape[2 + i] + pads[r + i] for i, p in enumerate(pos)):
                padded += 1
        stack = np.stack(vals)
        if kind == "max":
            y[(slice(None), slice(None)) + o] = maximum.reduce(stack, axis=0)
        else:
            y[(slice(None), slice(None)) + o] = stack.sum(axis=0) / (len(vals) + (padded if count_include_pad else 0))
    return y


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kernel, strides, pads, dilations, ceil_mode, cip, shape", [
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True, True, (1, 2, 6, 7)),
    ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), True, False, (2, 1, 5, 5)),
    ((2, 3), (1, 2), (1, 0, 0, 1), (2, 1), False, True, (1, 2, 5, 6)),
    ((3,), (2,), (1, 1), (2,), True, False, (2, 2, 8)),
])
def test_pooling_with_ceil_mode_dilation_and_pads(kind, kernel, strides, pads, dilations, ceil_mode, cip, shape):
    x = distinct(*shape)

    def ref(x):
        return np_pool(x, kernel, strides, pads, dilations, ceil_mode, kind, cip)

    if kind == "max":
        fn = lambda v: ops.max_pool(v, kernel, strides, padding=pads, dilations=dilations, ceil_mode=ceil_mode)  # noqa: E731
        onnx_y = onnx_op("MaxPool", [x], kernel_shape=list(kernel), strides=list(strides), pads=list(pads),
                         dilations=list(dilations), ceil_mode=int(ceil_mode))
    else:
        fn = lambda v: ops.avg_pool(v, kernel, strides, padding=pads, dilations=dilations,  # noqa: E731
                                    ceil_mode=ceil_mode, count_include_pad=cip)
        onnx_y = None if any(d != 1 for d in dilations) else onnx_op(
            "AveragePool", [x], kernel_shape=list(kernel), strides=list(strides), pads=list(pads),
            ceil_mode=int(ceil_mode), count_include_pad=int(cip), opset=17)
    got = check_op(fn, [x], ref, shapes=[("N",) + shape[1:]], opsets=(13, 19))
    if onnx_y is not None and not (kind == "avg" and ceil_mode):
        np.testing.assert_allclose(got["y"], onnx_y, rtol=1e-9, atol=1e-12)
