"""The VJP rules of the importer's and layers' structural primitives against sympy on
small explicit symbolic tensors (the method of test_vjp_rules.py): the op written on
object arrays of symbols, sympy.diff of sum(G * out), our rule emitted and run in
onnxruntime (float32)."""
import numpy as np
import pytest
import sympy

from symgrad.compiler import ir, ops
from symgrad.compiler.build import build_ir
from test_vjp_rules import check_vjp, distinct, _max
from test_ops_structural import np_conv_transpose, np_pool
from op_harness import onnx_op

rng = np.random.default_rng(3)


def fn(f):
    return lambda vals: build_ir(f(*[v.sym for v in vals]))


def along(m, x, axis):
    """Apply matrix m (k, n) to axis of object array x."""
    return np.moveaxis(np.tensordot(m, np.moveaxis(x, axis, 0), axes=1), 0, axis)


@pytest.mark.parametrize("axis", [1, 2, 3])
@pytest.mark.parametrize("selection", [False, True])
def test_axis_map(axis, selection):
    x = rng.standard_normal((2, 3, 4, 2))
    n = x.shape[axis]
    m = np.eye(n)[[1, 0, 0, n - 1, 1]] if selection else rng.standard_normal((3, n))
    check_vjp(lambda vals: ir.apply("axis_map", vals, axis=axis, matrix=m), [x], lambda x: along(m, x, axis),
              shapes=[("N", 3, 4, 2)])


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(mode):
    pads = (0, 2, 1, 0, 1, 2)
    widths = [(pads[i], pads[3 + i]) for i in range(3)]
    check_vjp(fn(lambda x: ops.pad(x, pads, mode=mode, value=0.5 if mode == "constant" else 0)),
              [rng.standard_normal((2, 3, 4))],
              lambda x: np.pad(x, widths, mode=mode, **({"constant_values": 0.5} if mode == "constant" else {})),
              shapes=[("N", 3, 4)])


def test_tile_slice_broadcast():
    x = rng.standard_normal((2, 3, 2))
    check_vjp(fn(lambda v: ops.tile(v, (1, 3, 2))), [x], lambda x: np.tile(x, (1, 3, 2)), shapes=[("N", 3, 2)])
    check_vjp(fn(lambda v: ops.slice(v, (2, 0), (-100, 2), (1, 2), (-2, 1))), [x], lambda x: x[:, 2::-2, 0:2],
              shapes=[("N", 3, 2)])
    check_vjp(fn(lambda v: ops.slice(v, (1,), (3,), (1,))), [x], lambda x: x[:, 1:3], shapes=[("N", 3, 2)])
    check_vjp(fn(lambda v: ops.broadcast_to(v, (2, 2, 3, 2))), [x],
              lambda x: np.broadcast_to(x, (2, 2, 3, 2)))


@pytest.mark.parametrize("mode, ctm, scales", [
    ("linear", "half_pixel", (1, 1, 2, 1.5)),
    ("nearest", "asymmetric", (1, 1, 2, 2)),
    ("linear", "align_corners", (1, 1, 0.5, 3)),
])
def test_resize(mode, ctm, scales):
    x = rng.standard_normal((1, 2, 4, 2))

    def ref(x):  # the linear map onnx's reference Resize applies, read off basis vectors
        cols = [onnx_op("Resize", [e.reshape(1, 1, 4, 2)], consts=(None, np.asarray(scales, np.float32)), mode=mode,
                        coordinate_transformation_mode=ctm, nearest_mode="floor").reshape(-1) for e in np.eye(8)]
        a = np.array(cols).T                                         # (out, 8)
        flat = x.reshape(x.shape[0] * x.shape[1], 8)
        return np.array([[sum(a[i, j] * row[j] for j in range(8) if a[i, j]) for i in range(a.shape[0])]
                         for row in flat], dtype=object).reshape(x.shape[:2] + (-1, int(2 * scales[3])))

    check_vjp(fn(lambda v: ops.resize(v, scales=scales, mode=mode, coordinate_transformation_mode=ctm,
                                      nearest_mode="floor")), [x], ref)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_and_space_to_depth(mode):
    b = 2

    def d2s(x):
        n, c, h, w = x.shape
        order = (0, 3, 4, 1, 5, 2) if mode == "DCR" else (0, 1, 4, 2, 5, 3)
        split = (n, b, b, c // 4, h, w) if mode == "DCR" else (n, c // 4, b, b, h, w)
        return x.reshape(split).transpose(order).reshape(n, c // 4, h * b, w * b)

    def s2d(y):
        n, c, h, w = y.shape
        if mode == "DCR":
            return y.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4).reshape(n, c * 4, h // b, w // b)
        return y.reshape(n, c, h // b, b, w // b, b).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // b, w // b)

    check_vjp(fn(lambda v: ops.depth_to_space(v, b, mode)), [rng.standard_normal((2, 8, 1, 2))], d2s,
              shapes=[("N", 8, 1, 2)])
    check_vjp(fn(lambda v: ops.space_to_depth(v, b, mode)), [rng.standard_normal((1, 2, 2, 4))], s2d)


@pytest.mark.parametrize("opset", [13, 17])
def test_gather_elements_and_its_scatter_add(opset):
    idx = np.array([[0, 2, 2], [1, -3, 0]])
    check_vjp(fn(lambda v, i: ops.gather_elements(v, i, axis=1)), [rng.standard_normal((2, 3)), idx],
              lambda x, i: np.take_along_axis(x, i % 3, axis=1), opsets=(opset,))


def test_window_sum_and_global_max_pool():
    def band(x):
        return np.stack([x[:, max(0, c - 1):c + 3].sum(axis=1) for c in range(x.shape[1])], axis=1)

    check_vjp(fn(lambda v: ops.window_sum(v, 1, 1, 2)), [rng.standard_normal((2, 5, 2))], band, shapes=[("N", 5, 2)])
    check_vjp(fn(ops.global_max_pool), [distinct(2, 3, 2, 2)], lambda x: _max.reduce(_max.reduce(x, axis=3), axis=2),
              shapes=[("N", 3, 2, 2)])


def test_conv_transpose_with_bias():
    x, w, b = rng.standard_normal((1, 2, 2, 3)), rng.standard_normal((2, 2, 2, 2)), rng.standard_normal(2)
    check_vjp(fn(lambda x, w, b: ops.conv_transpose(x, w, b, strides=2, pads=(1, 0, 0, 0), output_padding=1)),
              [x, w, b], lambda x, w, b: np_conv_transpose(x, w, b, (2, 2), (1, 0, 0, 0), (1, 1), (1, 1), 1),
              opsets=(13, 17))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_with_ceil_mode_and_dilation(kind):
    kernel, strides, pads, dil = (2, 2), (2, 1), (1, 0, 0, 1), (1, 2)
    x = distinct(1, 2, 4, 5)
    if kind == "max":
        f = lambda v: ops.max_pool(v, kernel, strides, padding=pads, dilations=dil, ceil_mode=True)  # noqa: E731
    else:
        f = lambda v: ops.avg_pool(v, kernel, strides, padding=pads, dilations=dil, ceil_mode=True,  # noqa: E731
                                   count_include_pad=True)
    check_vjp(fn(f), [x], lambda x: np_pool(x, kernel, strides, pads, dil, True, kind, True, maximum=_max),
              shapes=[("N", 2, 4, 5)], opsets=(13, 19))


@pytest.mark.parametrize("make, shapes", [
    (lambda x, w, b: ops.conv_transpose(x, w, b, strides=2, pads=1, output_padding=1), [("N", 2, 3, 3), (2, 3, 3, 3),
                                                                                       (3,)]),
    (lambda x: ops.transpose(x, (0, 2, 1)), [("N", 2, 3)]),
    (lambda x: ops.max_pool(x, 3, 2, padding=1, dilations=2, ceil_mode=True), [("N", 2, 7, 7)]),
    (lambda x: ops.avg_pool(x, 2, 2, padding=(1, 0, 0, 1), ceil_mode=True, count_include_pad=True),
     [("N", 2, 5, 5)]),
    (lambda x: ops.global_max_pool(x), [("N", 2, 3, 3)]),
])
def test_to_sympy_builds_back_to_the_same_node(make, shapes):
    from symgrad.compiler.build import to_sympy
    vals = [ir.input_value(f"t{i}", s) for i, s in enumerate(shapes)]
    node = build_ir(make(*[v.sym for v in vals]))
    expr = to_sympy(node, {v.id: v.sym for v in vals})
    assert sympy.latex(expr)
    rebuilt = build_ir(expr)
    assert (rebuilt.op, rebuilt.shape) == (node.op, node.shape)
