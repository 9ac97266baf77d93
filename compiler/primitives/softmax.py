"""softmax and log_softmax over one axis."""
import sympy

from .. import ops
from ..errors import ShapeError
from ..ir import Primitive, primitive, normalize_axes


class _SoftmaxLike(Primitive):
    onnx_op = None
    display = None

    def shape(self, inputs, attrs):
        axes = normalize_axes(attrs.get("axes", (-1,)), inputs[0].rank)
        if len(axes) != 1:
            raise ShapeError(f"{self.name} takes exactly one axis, got {axes}")
        attrs["axes"] = axes
        return inputs[0].shape

    def emit(self, b, node, ins):
        return b.node(self.onnx_op, [ins[0]], hint=node.name, axis=node.attrs["axes"][0])

    def to_sympy(self, node, args):
        return self.display(args[0], sympy.Tuple(*node.attrs["axes"]))


@primitive
class Softmax(_SoftmaxLike):
    name, onnx_op, display = "softmax", "Softmax", ops.Softmax

    def vjp(self, node, g, ad):
        y = node.sym
        s = ad.apply("reduce_sum", [ad.materialize(g * y, node)], axes=node.attrs["axes"])
        return [y * (g - s.sym)]


@primitive
class LogSoftmax(_SoftmaxLike):
    name, onnx_op, display = "log_softmax", "LogSoftmax", ops.LogSoftmax

    def vjp(self, node, g, ad):
        s = ad.apply("reduce_sum", [ad.materialize(g, node)], axes=node.attrs["axes"])
        return [g - sympy.exp(node.sym) * s.sym]
