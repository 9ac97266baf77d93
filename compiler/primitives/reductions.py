"""Reductions over axes: sum, mean, max, min, logsumexp, and the runtime axis size."""
import sympy

from .. import ops
from ..ir import Primitive, primitive, normalize_axes, static_size


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


class _Reduce(Primitive):
    onnx_op = None
    display = None

    def shape(self, inputs, attrs):
        x = inputs[0]
        axes = tuple(attrs.get("axes", ()))
        attrs["axes"] = normalize_axes(axes, x.rank) if axes else tuple(range(x.rank))
        attrs.setdefault("keepdims", True)
        if not attrs["keepdims"] and len(attrs["axes"]) != x.rank:
            raise ValueError("keepdims=False is only used for full reductions")
        return reduced_shape(x.shape, attrs["axes"], attrs["keepdims"])

    def emit(self, b, node, ins):
        return b.reduce(self.onnx_op, ins[0], node.attrs["axes"], node.attrs["keepdims"], node.name)

    def to_sympy(self, node, args):
        return self.display(args[0], sympy.Tuple(*node.attrs["axes"]))


@primitive
class ReduceSum(_Reduce):
    name, onnx_op, display = "reduce_sum", "ReduceSum", ops.ReduceSum

    def vjp(self, node, g, ad):
        return [g]  # keepdims (or a full reduction): g broadcasts back over the reduced axes


def count(ad, x, axes):
    """Number of elements over ``axes`` of ``x``: a number when static, else a graph value."""
    n = static_size([x.shape[a] for a in axes])
    if n is not None:
        return sympy.Integer(n)
    return ad.apply("axis_size", [x], axes=tuple(axes)).sym


@primitive
class ReduceMean(_Reduce):
    name, onnx_op, display = "reduce_mean", "ReduceMean", ops.ReduceMean

    def vjp(self, node, g, ad):
        return [g / count(ad, node.inputs[0], node.attrs["axes"])]


class _ReduceExtremum(_Reduce):
    def vjp(self, node, g, ad):
        # gradient flows to every element equal to the extremum, split evenly between ties
        x = node.inputs[0]
        mask = sympy.Piecewise((1, sympy.Eq(x.sym, node.sym)), (0, True))
        ties = ad.apply("reduce_sum", [ad.ew(mask)], axes=node.attrs["axes"], keepdims=node.attrs["keepdims"])
        return [g * mask / ties.sym]


@primitive
class ReduceMax(_ReduceExtremum):
    name, onnx_op, display = "reduce_max", "ReduceMax", ops.ReduceMax


@primitive
class ReduceMin(_ReduceExtremum):
    name, onnx_op, display = "reduce_min", "ReduceMin", ops.ReduceMin


@primitive
class LogSumExp(_Reduce):
    name, onnx_op, display = "logsumexp", "ReduceLogSumExp", ops.LogSumExp

    def vjp(self, node, g, ad):
        return [g * sympy.exp(node.inputs[0].sym - node.sym)]


@primitive
class AxisSize(Primitive):
    """The number of elements over some axes of x, at run time (for symbolic dims)."""

    name = "axis_size"
    differentiable = False

    def shape(self, inputs, attrs):
        attrs["axes"] = normalize_axes(attrs["axes"], inputs[0].rank)
        return ()

    def vjp(self, node, g, ad):
        return [None]

    def emit(self, b, node, ins):
        shape = b.node("Shape", [ins[0]], hint=node.name + "/shape")
        picked = b.node("Gather", [shape, b.const_i64(list(node.attrs["axes"]))], hint=node.name + "/dims", axis=0)
        n = b.reduce("ReduceProd", picked, (0,), False, node.name + "/count")
        return b.node("Cast", [n], hint=node.name, to=b.float_type)

    def to_sympy(self, node, args):
        return sympy.Symbol("n", positive=True)
