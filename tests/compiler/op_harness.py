"""Test helpers for structural ops: run one plain ONNX op with onnx's reference
evaluator (an implementation independent of symgrad, in float64), and check a function
of ``symgrad.compiler.ops`` against a reference: forward, float64 gradients against
central differences, float32 graphs in onnxruntime (full checker) at several opsets."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
import onnxruntime as ort

from symgrad.compiler import ir
from symgrad.compiler.autodiff import gradients
from symgrad.compiler.build import build_ir
from symgrad.compiler.emit import ir_version_for
from symgrad.compiler.gradcheck import Runner, emit_graph
from layer_harness import fd_grads


def onnx_op(op_type, arrays, opset=21, consts=(), runtime="reference", **attrs):
    """Run one ONNX node on float64 ``arrays`` (then the ``consts``: int arrays or None
    for an omitted input) with onnx.reference, or in float32 with onnxruntime
    (runtime="onnxruntime"); returns the first output."""
    names, inputs, inits = [], [], []
    ftype, fdtype = (TensorProto.DOUBLE, np.float64) if runtime == "reference" else (TensorProto.FLOAT, np.float32)
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        t = TensorProto.INT64 if a.dtype.kind in "iu" else ftype
        inputs.append(helper.make_tensor_value_info(f"i{i}", t, a.shape))
        names.append(f"i{i}")
    for k, c in enumerate(consts):
        if c is None:
            names.append("")
            continue
        inits.append(numpy_helper.from_array(np.asarray(c), f"c{k}"))
        names.append(f"c{k}")
    node = helper.make_node(op_type, names, ["y"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", ftype, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version_for(opset))
    feeds = {f"i{i}": (np.asarray(a) if np.asarray(a).dtype.kind in "iu" else np.asarray(a, dtype=fdtype))
             for i, a in enumerate(arrays)}
    if runtime == "reference":
        return ReferenceEvaluator(model).run(None, feeds)[0]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0].astype(np.float64)


class CompiledOp:
    def __init__(self, fn, inputs, shapes=None, dtype="float64", opset=17):
        shapes = shapes or [np.shape(a) for a in inputs]
        self.vals = [ir.input_value(f"in{i}", s, dtype="int64" if np.asarray(a).dtype.kind in "iu" else "float")
                     for i, (a, s) in enumerate(zip(inputs, shapes))]
        y = build_ir(fn(*[v.sym for v in self.vals]))
        self.y = y
        G = ir.input_value("G", y.shape)
        objective = ir.apply("reduce_sum", [ir.elementwise(G.sym * y.sym)], keepdims=False)
        self.wrt = [v for v in self.vals if v.dtype != "int64"]
        grads = gradients(objective, self.wrt)
        self.model = emit_graph([(v.name, v) for v in self.vals] + [("G", G)],
                                [("y", y)] + [(f"grad_{v.name}", g) for v, g in zip(self.wrt, grads)],
                                dtype=dtype, opset=opset)
        self.runner = Runner(self.model)
        self.np_dtype = np.float64 if dtype == "float64" else np.float32

    def run(self, inputs, G):
        feeds = {v.name: (np.asarray(a) if v.dtype == "int64" else np.asarray(a, dtype=self.np_dtype))
                 for v, a in zip(self.vals, inputs)}
        feeds["G"] = np.asarray(G, dtype=self.np_dtype)
        return self.runner(feeds)


def check_op(fn, inputs, reference, shapes=None, opsets=(17,), seed=0, rtol=1e-6, atol=1e-7, float32_rtol=2e-4):
    """fn(*symbols) -> sympy expression; reference(*arrays) -> float64 array."""
    inputs = [np.asarray(a) for a in inputs]
    c = CompiledOp(fn, inputs, shapes)
    want = reference(*inputs)
    rng = np.random.default_rng(seed)
    G = rng.standard_normal(np.shape(want))
    got = c.run(inputs, G)
    np.testing.assert_allclose(got["y"], want, rtol=rtol, atol=atol, err_msg="forward")
    wrt = [i for i, a in enumerate(inputs) if a.dtype.kind == "f"]
    fd = fd_grads(reference, inputs, wrt, G)
    for i in wrt:
        np.testing.assert_allclose(got[f"grad_in{i}"], fd[i], rtol=1e-5, atol=1e-6, err_msg=f"d/d input {i}")
    for opset in opsets:
        c32 = CompiledOp(fn, inputs, shapes, dtype="float32", opset=opset)
        onnx.checker.check_model(c32.model, full_check=True)
        assert {o.domain for o in c32.model.opset_import} == {""}
        assert c32.runner.backend == "onnxruntime"
        got32 = c32.run(inputs, G)
        for key, value in got.items():
            scale = np.abs(value).max() + 1e-6
            np.testing.assert_allclose(got32[key], value, rtol=float32_rtol, atol=float32_rtol * scale,
                                       err_msg=f"float32 {key} at opset {opset}")
    return got
