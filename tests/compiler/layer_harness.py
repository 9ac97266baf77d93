"""Test helpers for layers: NumPy reference implementations written independently of the
compiler (they also run on object arrays of sympy symbols), float64 central finite
differences of those references, and a compiled-graph runner."""
import numpy as np
import onnx

from symgrad.compiler import ir
from symgrad.compiler.autodiff import gradients
from symgrad.compiler.gradcheck import Runner, emit_graph
from symgrad.compiler.model import Model, trace_layer

# ---------------------------------------------------------------- references


def same_pads(spatial, kernel, strides, dilations=None):
    """TensorFlow's 'same': output ceil(n / s), the odd padding cell at the end."""
    dilations = dilations or (1,) * len(spatial)
    begins, ends = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return tuple(begins + ends)


def _windows(shape, kernel, strides, pads, dilations):
    """For every kernel tap: the slices of the padded input that tap reads."""
    r = len(kernel)
    out = [(shape[i] + pads[i] + pads[r + i] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1
           for i in range(r)]
    for tap in np.ndindex(*kernel):
        yield tap, tuple(slice(tap[i] * dilations[i], tap[i] * dilations[i] + strides[i] * (out[i] - 1) + 1,
                               strides[i]) for i in range(r)), out


def np_conv(x, w, b=None, strides=None, pads=None, dilations=None, groups=1):
    r = x.ndim - 2
    strides, dilations = strides or (1,) * r, dilations or (1,) * r
    pads = pads or (0,) * (2 * r)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[r + i]) for i in range(r)])
    m, cg = w.shape[:2]
    mg = m // groups
    parts = []
    for g in range(groups):
        acc = 0
        for tap, sl, out in _windows(xp.shape[2:], w.shape[2:], strides, (0,) * (2 * r), dilations):
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + sl]
            acc = acc + np.einsum("nc...,mc->nm...", patch, w[(slice(g * mg, (g + 1) * mg), slice(None)) + tap])
        parts.append(acc)
    y = np.concatenate(parts, axis=1)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * r)
    return y


def np_avg_pool(x, kernel, strides=None, pads=None):
    """Padding cells neither add nor count (Keras / TF 'same')."""
    r = x.ndim - 2
    strides, pads = strides or kernel, pads or (0,) * (2 * r)
    widths = [(0, 0), (0, 0)] + [(pads[i], pads[r + i]) for i in range(r)]
    xp, inside = np.pad(x, widths), np.pad(np.ones(x.shape[2:]), widths[2:])
    total, count = 0, 0
    for tap, sl, out in _windows(xp.shape[2:], kernel, strides, (0,) * (2 * r), (1,) * r):
        total = total + xp[(slice(None), slice(None)) + sl]
        count = count + inside[sl]
    return total / count


def np_max_pool(x, kernel, strides=None, pads=None, maximum=np.maximum):
    r = x.ndim - 2
    strides, pads = strides or kernel, pads or (0,) * (2 * r)
    widths = [(0, 0), (0, 0)] + [(pads[i], pads[r + i]) for i in range(r)]
    xp = np.pad(x, widths, constant_values=np.nan)  # NaN marks padding; never chosen
    best = None
    for tap, sl, out in _windows(xp.shape[2:], kernel, strides, (0,) * (2 * r), (1,) * r):
        cand = xp[(slice(None), slice(None)) + sl]
        if best is None:
            best = cand.copy()
            continue
        if best.dtype == object:  # sympy: skip the NaN padding cells by hand
            def pick(a, b):
                if isinstance(a, float) and a != a:
                    return b
                return a if isinstance(b, float) and b != b else maximum(a, b)
            best = np.frompyfunc(pick, 2, 1)(best, cand)
        else:
            best = np.fmax(best, cand)
    return best


# ---------------------------------------------------------------- finite differences


def fd_grads(f, arrays, wrt, G, eps=1e-6):
    """Central differences of sum(G * f(*arrays)) w.r.t. arrays[i] for i in wrt (float64)."""
    out = {}
    for i in wrt:
        base = np.asarray(arrays[i], dtype=np.float64)
        grad = np.zeros_like(base)
        for idx in np.ndindex(*base.shape):
            vals = []
            for sign in (1, -1):
                a = list(arrays)
                x = base.copy()
                x[idx] += sign * eps
                a[i] = x
                vals.append(np.sum(G * f(*a)))
            grad[idx] = (vals[0] - vals[1]) / (2 * eps)
        out[i] = grad
    return out


# ---------------------------------------------------------------- compiled graphs


class Compiled:
    """A layer or model traced on inputs like ``xs``; run(xs, weights, G, noise) returns
    {'y': ..., 'grad/<name>': ...} with gradients of sum(G * y)."""

    def __init__(self, target, xs, training=False, dtype="float64", opset=17):
        self.xs_values = [ir.input_value(f"x{i}", ("N",) + np.shape(a)[1:],
                                         dtype="int64" if np.asarray(a).dtype.kind in "iu" else "float")
                          for i, a in enumerate(xs)]
        arg = self.xs_values if len(xs) > 1 else self.xs_values[0]
        if isinstance(target, Model):
            self.trace = target.trace(arg, training)
        else:
            self.trace = trace_layer(target, self.xs_values, training)
        tr = self.trace
        y = tr.output
        G = ir.input_value("G", y.shape)
        objective = ir.apply("reduce_sum", [ir.elementwise(G.sym * y.sym)], keepdims=False)
        self.wrt = [(v.name, v) for v in self.xs_values if v.dtype != "int64"]
        self.wrt += [(w.name, w.value) for w in tr.weights if w.trainable]
        grads = gradients(objective, [v for _, v in self.wrt])
        inputs = [(v.name, v) for v in self.xs_values] + [(w.name, w.value) for w in tr.weights]
        inputs += [(r.name, r.value) for r in tr.random_inputs] + [("G", G)]
        outputs = [("y", y)] + [(f"grad/{n}", g) for (n, _), g in zip(self.wrt, grads)]
        outputs += [(f"next/{k}", v) for k, v in tr.updates.items()]
        self.model = emit_graph(inputs, outputs, dtype=dtype, opset=opset)
        self.runner = Runner(self.model)
        self.dtype = np.float64 if dtype == "float64" else np.float32

    def run(self, xs, weights=None, G=None, noise=None):
        feeds = {}
        for v, a in zip(self.xs_values, xs):
            feeds[v.name] = np.asarray(a, dtype=np.int64 if v.dtype == "int64" else self.dtype)
        ws = weights if weights is not None else [w.initial for w in self.trace.weights]
        feeds.update({w.name: np.asarray(a, dtype=self.dtype) for w, a in zip(self.trace.weights, ws)})
        for r in self.trace.random_inputs:
            feeds[r.name] = np.asarray(noise[r.name], dtype=self.dtype)
        n = np.shape(xs[0])[0]
        yshape = tuple(d if isinstance(d, int) else n for d in self.trace.output.shape)
        feeds["G"] = np.asarray(np.ones(yshape) if G is None else G, dtype=self.dtype)
        return self.runner(feeds)


def check_layer(layer, xs, reference, training=False, noise=None, seed=0, rtol=1e-6, atol=1e-7,
                fd_eps=1e-6, opsets=(17,), float32_rtol=1e-4, float32_atol=0.0):
    """Compiled forward == reference(*xs, *weights); compiled gradients of sum(G*y) ==
    central differences of the reference (float64); float32 graphs agree too."""
    xs = [np.asarray(a) for a in xs]
    c64 = Compiled(layer, xs, training=training, opset=opsets[0])
    weights = [np.asarray(w.initial, dtype=np.float64) for w in c64.trace.weights]
    rng = np.random.default_rng(seed)
    n = xs[0].shape[0]
    G = rng.standard_normal(tuple(d if isinstance(d, int) else n for d in c64.trace.output.shape))
    got = c64.run(xs, weights, G, noise)
    args = xs + weights
    want = reference(*args)
    np.testing.assert_allclose(got["y"], want, rtol=rtol, atol=atol, err_msg="forward")
    wrt_index = [i for i, a in enumerate(xs) if a.dtype.kind == "f"]
    wrt_index += [len(xs) + i for i, w in enumerate(c64.trace.weights) if w.trainable]
    fd = fd_grads(reference, args, wrt_index, G, eps=fd_eps)
    names = [n for n, _ in c64.wrt]
    for name, i in zip(names, wrt_index):
        np.testing.assert_allclose(got[f"grad/{name}"], fd[i], rtol=1e-5, atol=1e-6, err_msg=f"d/d {name}")
    for opset in opsets:
        c32 = Compiled(layer, xs, training=training, dtype="float32", opset=opset)
        onnx.checker.check_model(c32.model, full_check=True)
        assert c32.runner.backend == "onnxruntime"
        got32 = c32.run(xs, weights, G, noise)
        for key, value in got.items():
            scale = np.abs(value).max() + 1e-6
            np.testing.assert_allclose(got32[key], value, rtol=float32_rtol,
                                       atol=max(float32_rtol * scale, float32_atol),
                                       err_msg=f"float32 {key} at opset {opset}")
    return got
