"""Ops that move or copy data without arithmetic: expand, reshape, one-hot."""
from .. import ops
from ..ir import Primitive, primitive, broadcast_shapes


@primitive
class ExpandLike(Primitive):
    """Broadcast x to the shape of ``like`` (a run-time shape, so symbolic dims work)."""

    name = "expand_like"

    def shape(self, inputs, attrs):
        return broadcast_shapes(inputs[0].shape, inputs[1].shape)

    def vjp(self, node, g, ad):
        return [ad.sum_to(g, node, node.inputs[0]), None]

    def emit(self, b, node, ins):
        shape = b.node("Shape", [ins[1]], hint=node.name + "/shape")
        return b.node("Expand", [ins[0], shape], hint=node.name)

    def to_sympy(self, node, args):
        return args[0]


@primitive
class ReshapeLike(Primitive):
    """Reshape x to the (run-time) shape of ``like``; same number of elements."""

    name = "reshape_like"

    def shape(self, inputs, attrs):
        return inputs[1].shape

    def vjp(self, node, g, ad):
        return [ad.apply("reshape_like", [ad.materialize(g, node), node.inputs[0]]).sym, None]

    def emit(self, b, node, ins):
        shape = b.node("Shape", [ins[1]], hint=node.name + "/shape")
        return b.node("Reshape", [ins[0], shape], hint=node.name)

    def to_sympy(self, node, args):
        return args[0]


@primitive
class OneHot(Primitive):
    """one_hot(labels, like): float one-hot of labels over the last axis of ``like``."""

    name = "one_hot"
    differentiable = False

    def shape(self, inputs, attrs):
        labels, like = inputs
        return tuple(labels.shape) + (like.shape[-1],)

    def vjp(self, node, g, ad):
        return [None, None]

    def emit(self, b, node, ins):
        labels, like = ins
        shape = b.node("Shape", [like], hint=node.name + "/shape")
        depth = b.node("Gather", [shape, b.const_i64([-1])], hint=node.name + "/depth", axis=0)
        depth = b.node("Cast", [depth], hint=node.name + "/depthf", to=b.float_type)
        classes = b.node("Range", [b.const(0.0), b.node("Squeeze", [depth, b.const_i64([0])], hint=node.name + "/c"),
                                   b.const(1.0)], hint=node.name + "/classes")
        col = b.node("Unsqueeze", [labels, b.const_i64([-1])], hint=node.name + "/col")
        hit = b.node("Equal", [col, classes], hint=node.name + "/eq")
        return b.node("Cast", [hit], hint=node.name, to=b.float_type)

    def to_sympy(self, node, args):
        return ops.OneHot(args[0], args[1])


@primitive
class Squeeze(Primitive):
    name = "squeeze"

    def shape(self, inputs, attrs):
        axes = tuple(sorted(a % inputs[0].rank for a in attrs["axes"]))
        attrs["axes"] = axes
        return tuple(d for i, d in enumerate(inputs[0].shape) if i not in axes)

    def vjp(self, node, g, ad):
        return [ad.apply("unsqueeze", [ad.materialize(g, node)], axes=node.attrs["axes"]).sym]

    def emit(self, b, node, ins):
        return b.node("Squeeze", [ins[0], b.const_i64(list(node.attrs["axes"]))], hint=node.name)

    def to_sympy(self, node, args):
        return args[0]


@primitive
class Unsqueeze(Primitive):
    """Insert unit axes; ``axes`` index the output."""

    name = "unsqueeze"

    def shape(self, inputs, attrs):
        rank = inputs[0].rank + len(attrs["axes"])
        axes = tuple(sorted(a % rank for a in attrs["axes"]))
        attrs["axes"] = axes
        it = iter(inputs[0].shape)
        return tuple(1 if i in axes else next(it) for i in range(rank))

    def vjp(self, node, g, ad):
        return [ad.apply("squeeze", [ad.materialize(g, node)], axes=node.attrs["axes"]).sym]

    def emit(self, b, node, ins):
        return b.node("Unsqueeze", [ins[0], b.const_i64(list(node.attrs["axes"]))], hint=node.name)

    def to_sympy(self, node, args):
        return args[0]


@primitive
class CastFloat(Primitive):
    """Integer labels (class indices) to the graph's float type."""

    name = "cast_float"
    differentiable = False

    def shape(self, inputs, attrs):
        return inputs[0].shape

    def vjp(self, node, g, ad):
        return [None]

    def emit(self, b, node, ins):
        out = b.node("Cast", ins, hint=node.name, to=b.float_type)
        b.int_source[out] = ins[0]  # kernels that want integer labels use the original
        return out

    def to_sympy(self, node, args):
        return args[0]
