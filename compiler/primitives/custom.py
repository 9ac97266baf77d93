"""custom_vjp: a forward value whose gradient comes from its author, not from the graph.

``custom_vjp(y, *xs)`` is y itself in the forward graph (no ONNX node); its VJP calls
``attrs['backward'](node, g, ad)``, which returns one contribution per x, and gives none
to y, so autodiff never walks into the forward's own subgraph. Layers with an explicit
``backward`` (like torch.autograd.Function) are traced through it.
"""
import sympy

from ..ir import Primitive, primitive


@primitive
class CustomVJP(Primitive):
    name = "custom_vjp"

    def shape(self, inputs, attrs):
        if not callable(attrs.get("backward")):
            raise ValueError("custom_vjp needs a callable 'backward' attribute")
        return inputs[0].shape

    def vjp(self, node, g, ad):
        return [None] + list(node.attrs["backward"](node, g, ad))

    def emit(self, b, node, ins):
        return ins[0]

    def to_sympy(self, node, args):
        return sympy.Function(node.attrs.get("label", "custom"))(*args[1:])
