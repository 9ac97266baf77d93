"""Build the small graph of one op that the table's Sample describes, and check the
importer's gradient of sum(R * y) against float64 central finite differences of the
*original* node run by onnxruntime (or onnx.reference where it has no double kernel)."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from symgrad.compiler import ir
from symgrad.compiler.autodiff import gradients
import math

from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from symgrad.compiler.gradcheck import ConvTranspose, Runner, emit_graph
from symgrad.compiler.onnx_import.graph import OnnxModel

OPSET = 17


def build(op_type, sample, seed=0):
    """(model, feeds for x, {initializer name: float64 array}) for one op."""
    rng = np.random.default_rng(seed)
    names, inits, weights, x_value, graph_inputs = [], [], {}, None, []
    for i, spec in enumerate(sample.inputs):
        if spec is None:
            names.append("")
        elif isinstance(spec, str):
            names.append(spec)
        elif isinstance(spec, np.ndarray):
            name = f"c{i}"
            inits.append(numpy_helper.from_array(spec, name))
            names.append(name)
        elif x_value is None:
            x_value = rng.uniform(sample.low, sample.high, size=spec)
            graph_inputs.append(helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N"] + list(spec[1:])))
            names.append("x")
        else:
            name = f"w{i}"
            weights[name] = rng.uniform(sample.low, sample.high, size=spec)
            inits.append(numpy_helper.from_array(weights[name], name))
            names.append(name)
    outs = [f"y{k}" for k in range(sample.outputs)]
    node = helper.make_node(op_type, names, outs, name=f"the_{op_type.lower()}", **sample.attrs)
    graph = helper.make_graph([node], op_type, graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.DOUBLE, None) for o in outs], inits)
    opset = sample.opset or OPSET
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))
    model = onnx.shape_inference.infer_shapes(model)
    return model, x_value, weights


class Erf(OpRun):
    """onnx.reference's Erf rounds through float32; math.erf is the float64 oracle."""

    op_domain = ""

    def _run(self, x):
        return (np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype),)


class Gelu(OpRun):
    """The spec's formula in float64 (the reference expands Gelu through its float32 Erf)."""

    op_domain = ""

    def _run(self, x, approximate="none"):
        if approximate == "tanh":
            return (0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),)
        return (0.5 * x * (1 + np.vectorize(math.erf, otypes=[np.float64])(x / np.sqrt(2))),)


class LRN(OpRun):
    """The spec's formula (onnx.reference's LRN disagrees with it): the window runs
    floor((size-1)/2) channels back and ceil((size-1)/2) forward."""

    op_domain = ""

    def _run(self, x, alpha=1e-4, beta=0.75, bias=1.0, size=None):
        sq = np.zeros_like(x)
        for c in range(x.shape[1]):
            lo, hi = max(0, c - (size - 1) // 2), min(x.shape[1] - 1, c + size // 2)
            sq[:, c] = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        return (x / (bias + alpha / size * sq) ** beta,)


class Original:
    """The original node in float64 with onnx.reference (NumPy): onnxruntime's double
    kernels of some ops (Erf, HardSigmoid, Celu...) are missing or float32-accurate,
    which finite differences with a 1e-6 step cannot tolerate."""

    def __init__(self, model, output="y0"):
        self.session = ReferenceEvaluator(model, new_ops=[ConvTranspose, Erf, Gelu, LRN])
        self.output = output

    def __call__(self, feeds):
        return {"y0": self.session.run([self.output], feeds)[0]}


def check_gradient(op_type, sample, seed=0, eps=1e-6, atol=1e-6, rtol=1e-5):
    return sum(check_output(op_type, sample, k, seed, eps, atol, rtol) for k in range(sample.outputs))


def check_output(op_type, sample, k, seed=0, eps=1e-6, atol=1e-6, rtol=1e-5):
    model, x, weights = build(op_type, sample, seed)
    original = Original(model, f"y{k}")
    imported = OnnxModel(model, output=f"y{k}", require_batch_output=False)
    xv = imported.input_value("x")
    trace = imported.trace(xv, training=False)
    y_ref = original({"x": x, **{}})["y0"]
    r = np.random.default_rng(seed + 1).normal(size=y_ref.shape)
    rv = ir.input_value("r", trace.output.shape)
    loss = ir.apply("reduce_sum", [ir.elementwise(rv.sym * trace.output.sym)], axes=(), keepdims=False)
    trainable = [w for w in trace.weights if w.trainable]
    grads = gradients(loss, [xv] + [w.value for w in trainable])
    ins = [("x", xv), ("r", rv)] + [(w.name, w.value) for w in trace.weights]
    outs = [("loss", loss), ("y", trace.output)] + [(f"grad/{n}", g) for n, g in
                                                     zip(["x"] + [w.name for w in trainable], grads)]
    graph = emit_graph(ins, outs, dtype="float64", name=op_type)
    assert all(n.domain in ("", "ai.onnx") for n in graph.graph.node)
    feeds = {"x": x, "r": r, **{w.name: weights[w.name] for w in trace.weights}}
    got = Runner(graph)(feeds)
    np.testing.assert_allclose(got["y"], y_ref, atol=1e-8, rtol=1e-7, err_msg=f"{op_type}: forward differs")

    def loss_at(x_, w_):
        m = model
        if w_:
            m = onnx.ModelProto()
            m.CopyFrom(model)
            for t in m.graph.initializer:
                if t.name in w_:
                    t.CopyFrom(numpy_helper.from_array(w_[t.name], t.name))
        return float(np.sum(r * Original(m, f"y{k}")({"x": x_})["y0"]))

    targets = [("x", x)] + [(w.name, weights[w.name]) for w in trainable]
    for name, base in targets:
        fd = np.zeros_like(base)
        flat = base.reshape(-1)
        for i in range(flat.size):
            plus, minus = flat.copy(), flat.copy()
            plus[i] += eps
            minus[i] -= eps
            if name == "x":
                fp, fm = loss_at(plus.reshape(base.shape), None), loss_at(minus.reshape(base.shape), None)
            else:
                fp = loss_at(x, {name: plus.reshape(base.shape)})
                fm = loss_at(x, {name: minus.reshape(base.shape)})
            fd.reshape(-1)[i] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(got[f"grad/{name}"], fd, atol=atol, rtol=rtol,
                                   err_msg=f"{op_type}: gradient of {name!r} differs from finite differences")
    return len(targets)
