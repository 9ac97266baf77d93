"""gradcheck: the compiled gradient of a layer, model or loss against float64 central
finite differences, as ``torch.autograd.gradcheck``.

The graphs are emitted in float64 and run with onnxruntime, or with onnx's reference
evaluator for the ops onnxruntime has no double kernel for (Conv, pooling). For a layer
or a model the checked scalar is sum(G * y) for a fixed random G, so every output
element takes part.
"""
import numpy as np
import onnxruntime as ort
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops.op_conv_transpose import ConvTranspose as _RefConvTranspose

from . import ir
from .autodiff import gradients
from .emit import DEFAULT_OPSET, OnnxBuilder, check, emit_values, make_model
from .errors import GradcheckError, ParameterError, ShapeError
from .layers.base import Layer
from .loss import Loss
from .model import Model, trace_layer

try:  # onnxruntime raises this for an op without a kernel for the dtype
    from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as _OrtNotImplemented
except ImportError:  # pragma: no cover
    _OrtNotImplemented = RuntimeError


class ConvTranspose(_RefConvTranspose):
    """onnx 1.23's reference ConvTranspose slices grouped kernels wrongly; run each group alone."""

    op_domain = ""

    def _run(self, X, W, B=None, **kw):
        group = kw.get("group") or 1
        if group == 1:
            return super()._run(X, W, B, **kw)
        c = X.shape[1] // group
        parts = [super(ConvTranspose, self)._run(X[:, k * c:(k + 1) * c], W[k * c:(k + 1) * c], None,
                                                   **{**kw, "group": 1})[0] for k in range(group)]
        y = np.concatenate(parts, axis=1)
        if B is not None:
            y = y + B.reshape((1, -1) + (1,) * (y.ndim - 2))
        return (y.astype(X.dtype),)


class Runner:
    """Run an ONNX model: onnxruntime on the CPU, else the reference evaluator (with
    double-precision ConvTranspose groups)."""

    def __init__(self, model):
        self.model = model
        self.names = [o.name for o in model.graph.output]
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            self.backend = "onnxruntime"
        except _OrtNotImplemented:
            self.session = ReferenceEvaluator(model, new_ops=[ConvTranspose])
            self.backend = "reference"

    def __call__(self, feeds):
        return dict(zip(self.names, self.session.run(None, feeds)))


def emit_graph(inputs, outputs, dtype="float64", opset=DEFAULT_OPSET, name="graph"):
    """An ONNX model with graph inputs ``[(name, Value)]`` and outputs ``[(name, Value)]``."""
    b = OnnxBuilder(opset, dtype)
    names, signature = {}, []
    for n, v in inputs:
        names[v.id] = b.reserve(n)
        signature.append((n, v.shape, TensorProto.INT64 if v.dtype == "int64" else None))
    for n, _ in outputs:
        b.reserve(n)
    emitted = emit_values(b, [v for _, v in outputs], names)
    for (n, _), src in zip(outputs, emitted):
        b.alias(src, n)
    return check(make_model(b, signature, [(n, v.shape) for n, v in outputs], graph_name=name))


@ir.scoped
def gradcheck(target, inputs=None, *, weights="random", training=True, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0,
              batch_size=2, max_elements=100, opset=DEFAULT_OPSET):
    """Check ``target``'s compiled gradients against float64 central finite differences.

    target:   a Layer (gradients w.r.t. its float inputs and trainable weights), a Model,
              or a Loss (gradients w.r.t. y_pred and its extra inputs).
    inputs:   layer/model: an array (batch first) or a list for several inputs; loss: a
              dict {'y_true', 'y_pred', ...} or a (y_true, y_pred) pair. None: random.
    weights:  'random' (the default): each trainable weight is its initial value plus
              N(0, 0.5^2) noise drawn from ``seed``, so that an initialiser of ones or zeros
              cannot hide a backward that drops a factor (non-trainable state keeps its
              initial value); 'initial': the initial weights; or arrays replacing them (in
              get_weights order).
    Checks at most ``max_elements`` random elements of each tensor. Returns
    {tensor: max |compiled - numerical|}; raises GradcheckError on disagreement."""
    for key, value in (("eps", eps), ("atol", atol), ("rtol", rtol)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0 or \
                (key == "eps" and value == 0):
            raise ParameterError(f"gradcheck: {key!r} must be a {'positive' if key == 'eps' else 'non-negative'} "
                                 f"number, got {value!r}")
    rng = np.random.default_rng(seed)
    if isinstance(target, Loss):
        problem = _loss_problem(target, inputs, rng, opset)
    elif isinstance(target, (Layer, Model)):
        problem = _layer_problem(target, inputs, weights, training, rng, batch_size, opset)
    else:
        raise ParameterError(f"gradcheck expects a Layer, a Model or a Loss, got {type(target).__name__}")
    return _compare(problem, eps, atol, rtol, rng, max_elements)


class _Problem:
    def __init__(self, what, forward, grad_model, feeds, wrt, objective, hint=""):
        self.what, self.forward, self.grad_model = what, forward, grad_model
        self.feeds, self.wrt, self.objective, self.hint = feeds, wrt, objective, hint


def _layer_problem(target, inputs, weights, training, rng, batch_size, opset):
    is_model = isinstance(target, Model)
    arrays = _layer_inputs(target, inputs, rng, batch_size)
    xs = [ir.input_value(f"x{i}" if len(arrays) > 1 else "x", ("N",) + a.shape[1:],
                         dtype="int64" if a.dtype.kind in "iu" else "float") for i, a in enumerate(arrays)]
    tr = target.trace(xs if len(xs) > 1 else xs[0], training) if is_model else trace_layer(target, xs, training)
    if isinstance(weights, str) or weights is None:
        if weights not in ("random", "initial", None):
            raise ParameterError(f"gradcheck: weights must be 'random', 'initial' or a list of arrays, got {weights!r}")
        wvals = [np.asarray(w.initial, np.float64) for w in tr.weights]
        if weights == "random":
            wvals = [a + rng.normal(0.0, 0.5, np.shape(a)) if w.trainable else a for w, a in zip(tr.weights, wvals)]
    else:
        wvals = list(weights)
    if len(wvals) != len(tr.weights):
        raise ParameterError(f"gradcheck: {len(tr.weights)} weights expected, got {len(wvals)} arrays")
    feeds = {v.name: (a.astype(np.int64) if v.dtype == "int64" else a.astype(np.float64))
             for v, a in zip(xs, arrays)}
    for w, a in zip(tr.weights, wvals):
        if np.shape(a) != w.shape:
            raise ShapeError(f"gradcheck: weight {w.name!r} has shape {w.shape}, got an array of shape {np.shape(a)}")
        feeds[w.name] = np.asarray(a, dtype=np.float64)
    for r in tr.random_inputs:
        shape = tuple(arrays[0].shape[0] if not isinstance(d, int) else d for d in r.shape)
        feeds[r.name] = rng.uniform(size=shape)
    graph_in = [(v.name, v) for v in xs] + [(w.name, w.value) for w in tr.weights]
    graph_in += [(r.name, r.value) for r in tr.random_inputs]
    y = tr.output
    G = ir.input_value("grad_output", y.shape)
    objective = ir.apply("reduce_sum", [ir.elementwise(G.sym * y.sym)], keepdims=False)
    fwd = Runner(emit_graph(graph_in + [("grad_output", G)], [("y", y), ("objective", objective)], opset=opset))
    batch = arrays[0].shape[0]
    feeds["grad_output"] = rng.standard_normal(tuple(d if isinstance(d, int) else batch for d in y.shape))
    wrt = [(v.name, v) for v in xs if v.dtype != "int64"] + [(w.name, w.value) for w in tr.weights if w.trainable]
    grads = gradients(objective, [v for _, v in wrt], scope="gradcheck")
    gmodel = Runner(emit_graph(graph_in + [("grad_output", G)],
                               [(f"grad/{n}", g) for (n, _), g in zip(wrt, grads)], opset=opset))
    what = f"{'model' if is_model else 'layer'} {target.name!r}"
    hint = (" The layer defines an explicit backward(); that is what was checked."
            if not is_model and callable(getattr(type(target), "backward", None)) else "")
    return _Problem(what, fwd, gmodel, feeds, [n for n, _ in wrt], "objective", hint)


def _layer_inputs(target, inputs, rng, batch_size):
    if inputs is not None:
        arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        return [np.asarray(a) for a in arrays]
    if isinstance(target, Model):
        shapes = target.input_shape if isinstance(target.input_shape, list) else [target.input_shape]
        dtypes = target.input_dtype if isinstance(target.input_dtype, list) else [target.input_dtype]
    else:
        shape = target.input_shape or (None,) + tuple(target.declared_input_shape or ())
        if target.input_shape is None and target.declared_input_shape is None:
            raise ParameterError(f"gradcheck: layer {target.name!r} is not built; pass inputs= (an array with the "
                                 f"batch first)")
        shapes, dtypes = [shape[1:]], [target.input_dtype]
    if any(d == "int64" for d in dtypes):
        raise ParameterError(f"gradcheck: {target.name!r} takes integer inputs; pass inputs= with valid ids")
    return [rng.standard_normal((batch_size,) + tuple(s)) for s in shapes]


def _loss_problem(loss, inputs, rng, opset):
    if inputs is None:
        inputs = {"y_pred": rng.standard_normal((3, 4))}
    elif isinstance(inputs, (list, tuple)):
        if len(inputs) != 2:
            raise ParameterError("gradcheck: a loss takes inputs=(y_true, y_pred) or a dict of named arrays")
        inputs = {"y_true": inputs[0], "y_pred": inputs[1]}
    if not isinstance(inputs, dict) or "y_pred" not in inputs:
        raise ParameterError("gradcheck: a loss takes inputs=(y_true, y_pred) or a dict with 'y_pred'")
    y_pred = np.asarray(inputs["y_pred"], dtype=np.float64)
    feeds = {"y_pred": y_pred}
    if "y_true" in inputs:
        y_true = np.asarray(inputs["y_true"])
    elif loss.labels == "sparse":
        y_true = rng.integers(0, y_pred.shape[-1], size=y_pred.shape[:-1])
    else:
        y_true = rng.uniform(size=y_pred.shape)
    feeds["y_true"] = y_true.astype(np.int64 if loss.labels == "sparse" else np.float64)
    for name in loss.inputs:
        feeds[name] = np.asarray(inputs[name], dtype=np.float64) if name in inputs else rng.standard_normal(y_pred.shape)
    if "sample_weight" in inputs:
        feeds["sample_weight"] = np.asarray(inputs["sample_weight"], dtype=np.float64)
    model = loss.to_onnx(opset=opset, dtype="float64", shape=(None,) + y_pred.shape[1:],
                         sample_weight="sample_weight" in feeds)
    declared = {i.name for i in model.graph.input}
    feeds = {k: v for k, v in feeds.items() if k in declared}
    runner = Runner(model)
    wrt = ["y_pred"] + list(loss.inputs)
    return _Problem(f"loss {loss.name!r}", runner, runner, feeds, wrt, "loss")


def _compare(p, eps, atol, rtol, rng, max_elements):
    compiled = p.grad_model(p.feeds)
    report = {}
    for name in p.wrt:
        analytic = np.asarray(compiled[f"grad/{name}" if f"grad/{name}" in compiled else f"grad_{name}"])
        base = p.feeds[name]
        flat = np.arange(base.size)
        if base.size > max_elements:
            flat = np.sort(rng.choice(base.size, size=max_elements, replace=False))
        numeric = np.empty(len(flat))
        for k, i in enumerate(flat):
            idx = np.unravel_index(i, base.shape)
            vals = []
            for sign in (1, -1):
                x = base.copy()
                x[idx] += sign * eps
                vals.append(float(np.sum(p.forward({**p.feeds, name: x})[p.objective])))
            numeric[k] = (vals[0] - vals[1]) / (2 * eps)
        got = analytic.reshape(-1)[flat]
        err = np.abs(got - numeric)
        ratio = err / (atol + rtol * np.abs(numeric))
        report[name] = float(err.max()) if err.size else 0.0
        bad = ratio > 1
        if bad.any():
            k = int(np.argmax(ratio))
            idx = tuple(int(i) for i in np.unravel_index(flat[k], base.shape))
            raise GradcheckError(
                f"gradcheck failed for {p.what}: the gradient with respect to {name!r} disagrees with float64 "
                f"central finite differences (eps={eps:g}) at {int(bad.sum())} of {len(flat)} checked elements; "
                f"worst element {idx}: compiled {got[k]:.8g} vs finite differences {numeric[k]:.8g} "
                f"(|difference| {err[k]:.3g} > atol {atol:g} + rtol {rtol:g} * |finite difference|).{p.hint}")
    return report


class _CallableModule(type(np)):
    """``from symgrad.compiler import gradcheck`` may bind this module (it shares the
    function's name), so the module itself calls through to the function."""

    def __call__(self, *args, **kwargs):
        return gradcheck(*args, **kwargs)


import sys  # noqa: E402

sys.modules[__name__].__class__ = _CallableModule
