"""Emit: IR values -> an ONNX ModelProto.

``OnnxBuilder`` owns names, constants and opset differences; elementwise nodes go
through the OnnxPrinter after one ``sympy.cse`` over every elementwise expression of
the graph (so forward and backward share work); structural nodes call their
primitive's ``emit``.
"""
import numpy as np
import onnx
import sympy
from onnx import TensorProto, helper, numpy_helper

from . import ir
from .errors import OpsetError
from .printer import OnnxPrinter

SUPPORTED_OPSETS = range(13, 22)
DEFAULT_OPSET = 17
DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "float64": (np.float64, TensorProto.DOUBLE)}
# reductions whose axes moved from an attribute to an input at opset 18 (ReduceSum at 13)
_AXES_AS_INPUT_SINCE = {"ReduceSum": 13}


def check_opset(opset):
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or int(opset) not in SUPPORTED_OPSETS:
        raise OpsetError(f"opset {opset!r} is not supported; accepted: integers "
                         f"{SUPPORTED_OPSETS.start} to {SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET})")
    return int(opset)


def check_dtype(dtype):
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in DTYPES:
        raise OpsetError(f"dtype {dtype!r} is not supported; accepted: float32, float64")
    return key


def ir_version_for(opset):
    """The lowest IR version that carries ``opset``: onnx 1.23 would stamp 14 otherwise,
    which onnxruntime 1.31 rejects."""
    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)], ignore_unknown=True)


class OnnxBuilder:
    def __init__(self, opset=DEFAULT_OPSET, dtype="float32"):
        self.opset = check_opset(opset)
        self.np_dtype, self.float_type = DTYPES[check_dtype(dtype)]
        self.is_double = self.float_type == TensorProto.DOUBLE
        self.nodes, self.initializers = [], []
        self._used = set()
        self._next_suffix = {}      # hint -> the suffix to try next: fresh() stays O(1) per name
        self._consts = {}
        self.int_source = {}  # float value name -> the integer tensor it was cast from

    def fresh(self, hint):
        hint = hint.replace(" ", "_") or "v"
        name, k = hint, self._next_suffix.get(hint, 1)
        if k > 1:
            name = f"{hint}_{k}"
        while name in self._used:
            k += 1
            name = f"{hint}_{k}"
        self._next_suffix[hint] = k + 1
        self._used.add(name)
        return name

    def reserve(self, name):
        self._used.add(name)
        return name

    def node(self, op, inputs, hint=None, n_out=1, **attrs):
        outs = [self.fresh(hint or op) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=outs[0], **attrs))
        return outs[0] if n_out == 1 else outs

    def _initializer(self, array, hint):
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = self.fresh(hint)
            self.initializers.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def const(self, value, hint="const"):
        return self._initializer(np.asarray(value, dtype=self.np_dtype), hint)

    def const_f32(self, values, hint="const"):
        """float32 whatever the graph's dtype (Resize scales)."""
        return self._initializer(np.asarray(values, dtype=np.float32), hint)

    def const_i64(self, values, hint="axes"):
        return self._initializer(np.asarray(values, dtype=np.int64), hint)

    def const_bool(self, value):
        return self._initializer(np.asarray(value, dtype=bool), "flag")

    def array(self, array, name):
        """A named initializer (weights baked into an inference graph)."""
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=self.np_dtype), self.reserve(name)))
        return name

    def alias(self, src, name):
        """Expose ``src`` under the exact graph-output ``name`` (reserved beforehand)."""
        self.nodes.append(helper.make_node("Identity", [src], [name], name=f"output/{name}"))
        return name

    def reduce(self, op, x, axes, keepdims, hint):
        axes = [int(a) for a in axes]
        since = _AXES_AS_INPUT_SINCE.get(op, 18)
        if self.opset >= since:
            return self.node(op, [x, self.const_i64(axes)], hint=hint, keepdims=int(keepdims))
        return self.node(op, [x], hint=hint, axes=axes, keepdims=int(keepdims))

    def value_info(self, name, shape, elem_type=None):
        dims = [d if isinstance(d, int) else str(d) for d in shape]
        return helper.make_tensor_value_info(name, elem_type or self.float_type, dims)


def _elementwise_cse(values):
    """One sympy.cse over every elementwise expression: shared subtrees become defs."""
    exprs = [v.expr for v in values]
    if not exprs:
        return {}, {}
    defs, reduced = sympy.cse(exprs, symbols=sympy.numbered_symbols("_cse", real=True), order="none")
    return dict(defs), {v.id: r for v, r in zip(values, reduced)}


def _printed_shape(expr, defs, memo):
    """The shape an elementwise expression prints to: the broadcast of the values it still
    refers to once the CSE definitions are followed."""
    def leaves(e):
        out = set()
        for s in e.free_symbols:
            if s in defs:
                if s not in memo:
                    memo[s] = leaves(defs[s])
                out |= memo[s]
            else:
                out.add(s)
        return out
    shapes = [ir.value_of(s).shape for s in leaves(expr) if ir.value_of(s) is not None]
    return tuple(ir.broadcast_shapes(*shapes)) if shapes else ()


def _broadcast(b, name, v, names, hint):
    """An elementwise value whose expression lost terms to cancellation after CSE (sympy
    combines a*b - (-a)*(-b) only then) prints with a smaller shape, a scalar at worst;
    give it the value's shape, the broadcast of its inputs' shapes, as consumers expect."""
    if all(isinstance(d, int) for d in v.shape):
        return b.node("Expand", [name, b.const_i64(list(v.shape))], hint=hint)
    for i in v.inputs:
        name = b.node("Expand", [name, b.node("Shape", [names[i.id]], hint=hint)], hint=hint)
    return name


def emit_values(b, outputs, names, scope=""):
    """Emit every value ``outputs`` depend on into builder ``b``.

    ``names`` maps already-available Values (graph inputs, initializers) to ONNX names
    and is extended in place. Returns the ONNX names of ``outputs``."""
    order = ir.topological_order(outputs)
    todo = [v for v in order if v.id not in names]
    defs, reduced = _elementwise_cse([v for v in todo if v.op == "elementwise"])
    leaf_memo = {}
    sym_names = {}
    printer = OnnxPrinter(b, sym_names, defs)
    for v in todo:
        if v.op in ("input", "param"):
            raise ValueError(f"graph input {v.name} was not bound")
        for i in v.inputs:
            sym_names[i.sym] = names[i.id]
        hint = f"{scope}{v.name}"
        if v.op == "const":
            names[v.id] = b.array(v.attrs["value"], b.fresh(hint))
        elif v.op == "elementwise":
            names[v.id] = printer.emit(reduced[v.id], hint)
            if v.shape and _printed_shape(reduced[v.id], defs, leaf_memo) != tuple(v.shape):
                names[v.id] = _broadcast(b, names[v.id], v, names, hint)
        else:
            names[v.id] = ir.PRIMITIVES[v.op].emit(b, v, [names[i.id] for i in v.inputs])
        sym_names[v.sym] = names[v.id]
    return [names[v.id] for v in outputs]


def make_model(b, inputs, outputs, graph_name, doc=""):
    """inputs/outputs: lists of (onnx name, shape[, elem_type]) for the graph signature."""
    graph = helper.make_graph(
        b.nodes, graph_name,
        [b.value_info(*io) for io in inputs],
        [b.value_info(*io) for io in outputs],
        initializer=b.initializers,
        doc_string=doc,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", b.opset)],
        ir_version=ir_version_for(b.opset), producer_name="symgrad",
    )
    return model


def check(model):
    """The checker with full shape inference, as every emitted model must pass."""
    onnx.checker.check_model(model, full_check=True)
    return model
