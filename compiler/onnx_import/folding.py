"""Constant folding at import: a node whose inputs are all known is evaluated now.

Plain constants go through ``onnx.reference`` (the ONNX spec's own semantics). Shape
tensors may hold the batch size as the sympy symbol ``BATCH`` (object arrays); the
few ops that shape arithmetic uses are evaluated on those with NumPy here.
"""
import numpy as np
import sympy
from onnx import helper

from ..errors import SymgradError


def _attrs(ctx, node):
    return ctx.attrs(node)


def _axes(ctx, node, a, idx=1):
    if "axes" in a:
        return list(a["axes"])
    if len(node.input) > idx and node.input[idx]:
        return [int(v) for v in ctx.const(node.input[idx]).reshape(-1)]
    return None


def _slice(ctx, node, a, x):
    ins = list(node.input) + [""] * 5
    starts = [int(v) for v in ctx.const(ins[1])] if ins[1] else a.get("starts")
    ends = [int(v) for v in ctx.const(ins[2])] if ins[2] else a.get("ends")
    axes = [int(v) for v in ctx.const(ins[3])] if ins[3] else a.get("axes", list(range(len(starts))))
    steps = [int(v) for v in ctx.const(ins[4])] if ins[4] else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        index[ax] = slice(s, e, st)
    return x[tuple(index)]


def _int_div(a, b):
    out = np.empty(np.broadcast(a, b).shape, dtype=object)
    for idx, (p, q) in zip(np.ndindex(out.shape), np.broadcast(a, b)):
        out[idx] = sympy.floor(sympy.sympify(p) / q) if not (isinstance(p, (int, np.integer)) and
                                                             isinstance(q, (int, np.integer))) else int(p / q)
    return out


def _compare(fn):
    def run(a, b):
        out = np.empty(np.broadcast(a, b).shape, dtype=bool)
        for idx, (p, q) in zip(np.ndindex(out.shape), np.broadcast(a, b)):
            r = fn(sympy.sympify(p), sympy.sympify(q))
            if not isinstance(r, (bool, sympy.logic.boolalg.BooleanAtom)):
                raise SymgradError(f"shape arithmetic compares {p} with {q}, which depends on the batch size")
            out[idx] = bool(r)
        return out
    return run


# ops evaluated on object arrays (shape tensors that contain the batch symbol)
def _symbolic(ctx, node, ins):
    op, a = node.op_type, _attrs(ctx, node)
    x = ins[0]
    if op == "Identity" or op == "Cast":
        return x
    if op == "Gather":
        return np.take(x, ins[1].astype(np.int64), axis=a.get("axis", 0))
    if op == "Slice":
        return _slice(ctx, node, a, x)
    if op == "Concat":
        return np.concatenate([i.reshape(i.shape or (1,)) if i.ndim == 0 else i for i in ins], axis=a["axis"])
    if op == "Unsqueeze":
        out = x
        axes = sorted(v % (x.ndim + len(_axes(ctx, node, a))) for v in _axes(ctx, node, a))
        for ax in axes:
            out = np.expand_dims(out, ax)
        return out
    if op == "Squeeze":
        axes = _axes(ctx, node, a)
        return np.squeeze(x, axis=None if axes is None else tuple(axes))
    if op == "Reshape":
        return x.reshape([int(d) for d in ins[1]])
    if op in ("Add", "Sub", "Mul"):
        return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op](ins[0], ins[1])
    if op == "Div":
        return _int_div(ins[0], ins[1])
    if op == "Mod":
        return np.vectorize(lambda p, q: sympy.Mod(p, q), otypes=[object])(ins[0], ins[1])
    if op == "Equal":
        return _compare(sympy.Eq)(ins[0], ins[1])
    if op == "Less":
        return _compare(lambda p, q: p < q)(ins[0], ins[1])
    if op == "Greater":
        return _compare(lambda p, q: p > q)(ins[0], ins[1])
    if op == "Where":
        return np.where(ins[0].astype(bool), ins[1], ins[2])
    if op == "Neg":
        return -x
    if op in ("Max", "Min"):
        out = ins[0]
        for other in ins[1:]:
            fn = sympy.Max if op == "Max" else sympy.Min
            out = np.vectorize(lambda p, q: fn(p, q), otypes=[object])(out, other)
        return out
    if op == "ReduceProd":
        return np.array(sympy.Mul(*x.reshape(-1)), dtype=object).reshape((1,) * x.ndim if a.get("keepdims", 1)
                                                                          else ())
    if op == "Expand":
        return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(int(d) for d in ins[1]))).copy()
    raise SymgradError(f"{op} over a shape that depends on the batch size cannot be folded at import; accepted in "
                       "batch-dependent shape arithmetic: Identity, Cast, Gather, Slice, Concat, Unsqueeze, Squeeze, "
                       "Reshape, Add, Sub, Mul, Div, Mod, Equal, Less, Greater, Where, Neg, Max, Min, ReduceProd, Expand, "
                       "ConstantOfShape")


def _simplify(out):
    """An object array whose entries are all plain integers becomes an int64 array."""
    if out.dtype == object:
        flat = [sympy.sympify(v) for v in out.reshape(-1)]
        if all(v.is_Integer for v in flat):
            return np.array([int(v) for v in flat], dtype=np.int64).reshape(out.shape)
        if all(isinstance(v, sympy.logic.boolalg.BooleanAtom) for v in flat):
            return np.array([bool(v) for v in flat], dtype=bool).reshape(out.shape)
    return out


def _reference(ctx, node, ins):
    from onnx.reference import ReferenceEvaluator
    names = [f"in{i}" if n else "" for i, n in enumerate(node.input)]
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for n, a in zip([n for n in names if n], ins)]
    outputs = [helper.make_tensor_value_info(f"out{i}", 0, None) for i in range(len(node.output))]
    one = helper.make_node(node.op_type, names, [o.name for o in outputs], domain=node.domain,
                           **{k: v for k, v in _attrs(ctx, node).items()})
    graph = helper.make_graph([one], "fold", inputs, outputs)
    opset = ctx.model.opset if hasattr(ctx.model, "opset") else 17
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        return ReferenceEvaluator(model).run(None, {n: a for n, a in zip([n for n in names if n], ins)})
    except Exception as exc:
        raise SymgradError(f"{ctx.where()}: folding this constant node failed ({type(exc).__name__}: {exc})") from None


def fold_node(ctx, node):
    """The node's outputs as NumPy arrays (its inputs are all constants)."""
    ins = [ctx.const(i) if i else None for i in node.input]
    present = [i for i in ins if i is not None]
    if node.op_type == "ConstantOfShape" and present[0].dtype == object:
        return [constant_of_symbolic_shape(ctx, node, present[0])]
    if any(i.dtype == object for i in present):
        return [_simplify(np.asarray(_symbolic(ctx, node, present)))]
    return [np.asarray(o) for o in _reference(ctx, node, present)]


def constant_of_symbolic_shape(ctx, node, shape):
    """ConstantOfShape whose shape holds the batch size (zero initial states of an RNN):
    a constant Lazy expression with that shape, never materialised unless used as data."""
    from onnx import numpy_helper
    from .context import Lazy, ir_dim, number
    a = ctx.attrs(node)
    value = numpy_helper.to_array(a["value"]).reshape(-1)[0] if "value" in a else 0.0
    return Lazy(number(value), tuple(ir_dim(d) for d in shape.reshape(-1)))
