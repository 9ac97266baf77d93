"""Every structural VJP rule against sympy on small explicit symbolic tensors.

For each op: the inputs are arrays of sympy symbols, the op's output is computed
elementwise in sympy (NumPy object arrays), sympy.diff of sum(G * out) gives the exact
gradient, evaluated at random values; our IR rule is emitted to ONNX (float32) and run
in onnxruntime. Shapes with 'N' exercise the symbolic batch paths.
"""
import numpy as np
import pytest
import sympy

from symgrad.compiler import ir, ops
from symgrad.compiler.autodiff import gradients
from symgrad.compiler.build import build_ir
from symgrad.compiler.gradcheck import Runner, emit_graph
from layer_harness import np_conv, np_avg_pool, np_max_pool, same_pads

_max = np.frompyfunc(sympy.Max, 2, 1)
_min = np.frompyfunc(sympy.Min, 2, 1)
_exp = np.frompyfunc(sympy.exp, 1, 1)
_log = np.frompyfunc(sympy.log, 1, 1)


def check_vjp(build, inputs, reference, shapes=None, opsets=(17,), seed=0, rtol=2e-4):
    """build(values) -> IR Value; reference(*arrays) -> object array of sympy expressions.
    ``inputs``: numeric arrays (integer arrays are indices, not differentiated)."""
    rng = np.random.default_rng(seed)
    syms, sym_arrays = [], []
    for i, a in enumerate(inputs):
        if a.dtype.kind in "iu":
            sym_arrays.append(a)
            continue
        s = sympy.symbols(f"a{i}_0:{a.size}", real=True)
        syms.append(s)
        sym_arrays.append(np.array(s, dtype=object).reshape(a.shape))
    out = np.asarray(reference(*sym_arrays), dtype=object)
    G = rng.standard_normal(out.shape)
    objective = sympy.Add(*[sympy.Float(g) * o for g, o in zip(G.ravel(), out.ravel())])
    flat_syms = [s for group in syms for s in group]
    values = [a.ravel() for a in inputs if a.dtype.kind not in "iu"]
    flat_vals = np.concatenate(values) if values else np.array([])
    at = {s: sympy.Float(v) for s, v in zip(flat_syms, flat_vals)}
    exact = [float(sympy.diff(objective, s).xreplace(at)) for s in flat_syms]
    forward = [float(sympy.sympify(o).xreplace(at)) for o in out.ravel()]

    shapes = shapes or [a.shape for a in inputs]
    vals = [ir.input_value(f"in{i}", s, dtype="int64" if a.dtype.kind in "iu" else "float")
            for i, (a, s) in enumerate(zip(inputs, shapes))]
    y = build(vals)
    g = ir.input_value("G", y.shape)
    wrt = [v for v in vals if v.dtype != "int64"]
    grads = gradients(y, wrt, seed=g.sym)
    for opset in opsets:
        model = emit_graph([(v.name, v) for v in vals] + [("G", g)],
                           [("y", y)] + [(f"grad_{v.name}", d) for v, d in zip(wrt, grads)],
                           dtype="float32", opset=opset)
        runner = Runner(model)
        assert runner.backend == "onnxruntime"
        feeds = {v.name: (a if a.dtype.kind in "iu" else a.astype(np.float32)) for v, a in zip(vals, inputs)}
        got = runner({**feeds, "G": G.astype(np.float32)})
        np.testing.assert_allclose(got["y"].ravel(), np.asarray(forward, dtype=float), rtol=rtol, atol=rtol,
                                   err_msg=f"forward at opset {opset}")
        ours = np.concatenate([got[f"grad_{v.name}"].ravel() for v in wrt])
        want = np.asarray(exact, dtype=float)
        np.testing.assert_allclose(ours, want, rtol=rtol, atol=rtol * (1 + np.abs(want).max()),
                                   err_msg=f"VJP at opset {opset}")


def apply(op, **attrs):
    return lambda vals: ir.apply(op, vals, **attrs)


rng = np.random.default_rng(1)


def distinct(*shape):
    """Values far from ties, for max-like ops."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) / 3.0


# ---------------------------------------------------------------- linear algebra, reductions, softmax

def test_matmul_2d_and_batched():
    check_vjp(apply("matmul"), [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))], lambda a, b: a @ b)
    check_vjp(apply("matmul"), [rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2))], lambda a, b: a @ b,
              shapes=[("N", 3, 4), (4, 2)])


@pytest.mark.parametrize("op, axes, ref", [
    ("reduce_sum", (1,), lambda x: x.sum(axis=1, keepdims=True)),
    ("reduce_mean", (0, 2), lambda x: x.sum(axis=(0, 2), keepdims=True) / 8),
    ("reduce_max", (2,), lambda x: _max.reduce(x, axis=2, keepdims=True)),
    ("reduce_min", (1,), lambda x: _min.reduce(x, axis=1, keepdims=True)),
    ("logsumexp", (2,), lambda x: _log(_exp(x).sum(axis=2, keepdims=True))),
])
def test_reductions(op, axes, ref):
    check_vjp(apply(op, axes=axes), [distinct(2, 3, 4)], ref, shapes=[("N", 3, 4)])


@pytest.mark.parametrize("op, axis", [("softmax", 1), ("log_softmax", -1)])
def test_softmax_family(op, axis):
    def ref(x):
        e = _exp(x)
        sm = e / e.sum(axis=axis, keepdims=True)
        return sm if op == "softmax" else _log(sm)
    check_vjp(apply(op, axes=(axis,)), [rng.standard_normal((2, 3, 4))], ref)


# ---------------------------------------------------------------- convolution

@pytest.fixture(params=["per_tap", "im2col", "correlation"])
def weight_grad_lowering(request, monkeypatch):
    """Every lowering of conv_grad_weight, whichever the rules would pick (per_tap serves
    group 1 only: grouped cases fall to im2col there)."""
    from symgrad.compiler.primitives import conv
    monkeypatch.setattr(conv, "USE_PER_TAP_WEIGHT_GRAD", request.param == "per_tap")
    monkeypatch.setattr(conv, "IM2COL_MAX_PATCH_ELEMENTS", 0 if request.param == "correlation" else 1 << 40)
    return request.param


@pytest.mark.parametrize("attrs, xs, ws, bias", [
    (dict(), (2, 2, 4, 4), (3, 2, 2, 2), True),
    (dict(strides=(2,), padding="same"), (1, 2, 5, 4), (2, 2, 3, 3), False),
    (dict(dilations=(2, 1), pads=(1, 0, 0, 1), padding="explicit"), (1, 1, 5, 4), (2, 1, 2, 2), True),
    (dict(group=2, strides=(1, 2)), (1, 4, 3, 5), (4, 2, 2, 2), False),
    (dict(strides=(2,), dilations=(2,)), (2, 2, 9), (3, 2, 3), True),
])
def test_conv(attrs, xs, ws, bias, weight_grad_lowering):
    r = len(xs) - 2
    a = dict(strides=(1,), padding="valid", pads=(), dilations=(1,), group=1, spatial_rank=0)
    a.update(attrs)
    strides = a["strides"] * r if len(a["strides"]) == 1 else a["strides"]
    dil = a["dilations"] * r if len(a["dilations"]) == 1 else a["dilations"]
    pads = {"valid": None, "same": same_pads(xs[2:], ws[2:], strides, dil), "explicit": a["pads"]}[a["padding"]]
    inputs = [rng.standard_normal(xs), rng.standard_normal(ws)] + ([rng.standard_normal(ws[0])] if bias else [])
    shapes = [("N",) + xs[1:]] + [i.shape for i in inputs[1:]]

    def ref(x, w, b=None):
        return np_conv(x, w, b, strides, pads, dil, a["group"])

    check_vjp(apply("conv", **a), inputs, ref, shapes=shapes, opsets=(17, 13))


def test_conv_adjoints_are_closed_under_differentiation(weight_grad_lowering):
    """conv_transpose and conv_grad_weight, differentiated once more."""
    geo = dict(strides=(2, 1), pads=(1, 0, 0, 1), dilations=(1, 2), group=2)
    x, w = rng.standard_normal((1, 4, 5, 5)), rng.standard_normal((4, 2, 2, 2))
    pads = geo["pads"]

    def conv(x, w):
        return np_conv(x, w, None, geo["strides"], pads, geo["dilations"], geo["group"])

    g_shape = conv(x, w).shape
    # conv_transpose(g, w) = d/dx <g, conv(x, w)>, linear in g and w
    xsym = np.array(sympy.symbols("x0:%d" % x.size, real=True), dtype=object).reshape(x.shape)

    def transpose_ref(g, w):
        inner = sympy.Add(*(g * conv(xsym, w)).ravel())
        return np.array([sympy.diff(inner, s) for s in xsym.ravel()], dtype=object).reshape(x.shape)

    check_vjp(apply("conv_transpose", out_spatial=(5, 5), **geo),
              [rng.standard_normal(g_shape), w], transpose_ref)
    wsym = np.array(sympy.symbols("w0:%d" % w.size, real=True), dtype=object).reshape(w.shape)

    def grad_weight_ref(x, g):
        inner = sympy.Add(*(g * conv(x, wsym)).ravel())
        return np.array([sympy.diff(inner, s) for s in wsym.ravel()], dtype=object).reshape(w.shape)

    check_vjp(apply("conv_grad_weight", kernel=(2, 2), **geo), [x, rng.standard_normal(g_shape)], grad_weight_ref)


# ---------------------------------------------------------------- pooling

@pytest.mark.parametrize("kernel, strides, padding, shape", [
    ((2, 2), (2, 2), "valid", (2, 2, 4, 4)),
    ((3, 3), (2, 2), "same", (1, 2, 5, 4)),
    ((2, 3), (1, 1), "valid", (1, 1, 3, 4)),
    ((3,), (2,), "same", (2, 2, 6)),
    ((2, 2), (2, 2), "valid", (1, 2, 5, 7)),     # tiles, with rows and columns left over
    ((2,), (2,), "valid", (2, 1, 6)),
])
@pytest.mark.parametrize("op", ["max_pool", "max_pool_general", "avg_pool"])
def test_pooling(op, kernel, strides, padding, shape, monkeypatch):
    if op == "max_pool_general":  # the one-hot-window lowering, also where the windows tile
        from symgrad.compiler.primitives import pooling
        monkeypatch.setattr(pooling, "USE_TILED_MAX_POOL_GRAD", False)
        op = "max_pool"
    pads = same_pads(shape[2:], kernel, strides) if padding == "same" else None

    def ref(x):
        if op == "avg_pool":
            return np_avg_pool(x, kernel, strides, pads)
        return np_max_pool(x, kernel, strides, pads, maximum=_max)

    check_vjp(apply(op, kernel=kernel, strides=strides, padding=padding, pads=()), [distinct(*shape)], ref,
              shapes=[("N",) + shape[1:]], opsets=(17, 13))


def test_global_avg_pool():
    check_vjp(apply("global_avg_pool"), [rng.standard_normal((2, 3, 2, 3))],
              lambda x: x.sum(axis=(2, 3)) / 6, shapes=[("N", 3, 2, 3)])


def test_avg_pool_grad_is_linear_and_its_vjp_is_avg_pool():
    kernel, strides, pads = (3, 3), (2, 2), (1, 1, 1, 1)
    x = rng.standard_normal((1, 1, 5, 5))
    xsym = np.array(sympy.symbols("x0:25", real=True), dtype=object).reshape(x.shape)

    def ref(g):
        inner = sympy.Add(*(g * np_avg_pool(xsym, kernel, strides, pads)).ravel())
        return np.array([sympy.diff(inner, s) for s in xsym.ravel()], dtype=object).reshape(x.shape)

    like = ir.const_value(np.zeros(x.shape), name="like")
    check_vjp(lambda vals: ir.apply("avg_pool_grad", [vals[0], like], kernel=kernel, strides=strides, pads=pads),
              [rng.standard_normal((1, 1, 3, 3))], ref)


# ---------------------------------------------------------------- gather / scatter-add

@pytest.mark.parametrize("opset", [13, 16, 21])
def test_gather_backward_is_a_scatter_add(opset):
    ids = np.array([[0, 3, 3], [1, 0, 3]])  # repeated rows must accumulate
    check_vjp(apply("gather"), [rng.standard_normal((5, 2)), ids], lambda t, i: t[i],
              shapes=[(5, 2), ("N", 3)], opsets=(opset,))


def test_scatter_add_vjp_is_gather():
    ids = np.array([2, 0, 2, 1])

    def ref(u, i):
        out = np.zeros((3, 2), dtype=object)
        for k, row in enumerate(i):
            out[row] = out[row] + u[k]
        return out

    check_vjp(lambda vals: ir.apply("scatter_add", [vals[1], vals[0]], rows=3),
              [rng.standard_normal((4, 2)), ids], ref, opsets=(13, 17))


# ---------------------------------------------------------------- layout

def test_concat_and_its_slicing_vjp():
    check_vjp(apply("concat", axis=1), [rng.standard_normal((2, 1, 3)), rng.standard_normal((2, 2, 3)),
                                        rng.standard_normal((2, 3, 3))],
              lambda a, b, c: np.concatenate([a, b, c], axis=1), shapes=[("N", 1, 3), ("N", 2, 3), ("N", 3, 3)])


def test_slice_and_pad_are_adjoint():
    check_vjp(apply("slice", axis=2, start=1, end=3), [rng.standard_normal((2, 3, 4))], lambda x: x[:, :, 1:3])
    check_vjp(apply("pad_axis", axis=1, before=2, after=1), [rng.standard_normal((2, 3))],
              lambda x: np.concatenate([np.zeros((2, 2)), x, np.zeros((2, 1))], axis=1))


@pytest.mark.parametrize("target, ref", [
    ("flatten", lambda x: x.reshape(2, -1)),
    ((-1, 4, 3), lambda x: x.reshape(2, 4, 3)),
])
def test_reshape(target, ref):
    check_vjp(apply("reshape", shape=target), [rng.standard_normal((2, 3, 2, 2))], ref, shapes=[("N", 3, 2, 2)])


# ---------------------------------------------------------------- normalisation (composites of the rules above)

def test_layer_normalization_expression():
    def build(vals):
        x, gamma = vals
        mean = ops.mean(x.sym, axis=-1)
        var = ops.mean((x.sym - mean) ** 2, axis=-1)
        return build_ir((x.sym - mean) / sympy.sqrt(var + sympy.Float(1e-3)) * gamma.sym)

    def ref(x, gamma):
        mean = x.sum(axis=-1, keepdims=True) / x.shape[-1]
        var = ((x - mean) ** 2).sum(axis=-1, keepdims=True) / x.shape[-1]
        return (x - mean) / np.frompyfunc(sympy.sqrt, 1, 1)(var + sympy.Float(1e-3)) * gamma

    check_vjp(build, [rng.standard_normal((2, 4)), rng.standard_normal(4)], ref, shapes=[("N", 4), (4,)])


def test_batch_normalization_expression_over_batch_and_space():
    def build(vals):
        (x,) = vals
        mean = ops.mean(x.sym, axis=(0, 2))
        var = ops.mean((x.sym - mean) ** 2, axis=(0, 2))
        return build_ir((x.sym - mean) / sympy.sqrt(var + sympy.Float(1e-3)))

    def ref(x):
        n = x.shape[0] * x.shape[2]
        mean = x.sum(axis=(0, 2), keepdims=True) / n
        var = ((x - mean) ** 2).sum(axis=(0, 2), keepdims=True) / n
        return (x - mean) / np.frompyfunc(sympy.sqrt, 1, 1)(var + sympy.Float(1e-3))

    check_vjp(build, [rng.standard_normal((3, 2, 2))], ref, shapes=[("N", 2, 2)])


# ---------------------------------------------------------------- display

@pytest.mark.parametrize("op, attrs, shapes", [
    ("conv", dict(strides=(2,), padding="same", pads=(), dilations=(1,), group=1, spatial_rank=2),
     [("N", 2, 5, 5), (3, 2, 3, 3), (3,)]),
    ("max_pool", dict(kernel=(3, 3), strides=(2, 2), padding="same", pads=()), [("N", 2, 5, 5)]),
    ("avg_pool", dict(kernel=(2,), strides=(1,), padding="valid", pads=()), [("N", 2, 5)]),
    ("global_avg_pool", {}, [("N", 2, 5, 5)]),
    ("concat", dict(axis=1), [("N", 2, 3), ("N", 1, 3)]),
    ("reshape", dict(shape="flatten"), [("N", 2, 3)]),
])
def test_to_sympy_gives_an_expression_that_builds_back_to_the_same_node(op, attrs, shapes):
    from symgrad.compiler.build import to_sympy
    vals = [ir.input_value(f"t{i}", s) for i, s in enumerate(shapes)]
    node = ir.apply(op, vals, **attrs)
    leaves = {v.id: v.sym for v in vals}
    expr = to_sympy(node, leaves)
    assert sympy.latex(expr) and str(expr).startswith(type(expr).user_name)
    rebuilt = build_ir(expr)
    assert (rebuilt.op, rebuilt.shape) == (node.op, node.shape)
    assert {k: v for k, v in rebuilt.attrs.items()} == {k: v for k, v in node.attrs.items()}


def test_gather_with_float_ids_casts_them():
    table, ids = ir.input_value("table", (4, 2)), ir.input_value("ids", ("N",))
    y = ir.apply("gather", [table, ids])
    model = emit_graph([("table", table), ("ids", ids)], [("y", y)], dtype="float32")
    t = rng.standard_normal((4, 2)).astype(np.float32)
    got = Runner(model)({"table": t, "ids": np.array([3.0, 0.0, 3.0], np.float32)})["y"]
    np.testing.assert_array_equal(got, t[[3, 0, 3]])
