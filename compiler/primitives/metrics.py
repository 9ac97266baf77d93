"""Non-differentiable structural ops that metrics need: argmax and take-along-axis.

Both hand back float values (class indices as floats, exact below 2**24) so that the
elementwise comparisons of a metric stay in the graph's one float type."""
import sympy

from ..errors import ShapeError
from ..ir import Primitive, primitive, normalize_axes


def _last_axis(attrs, rank, what):
    (axis,) = normalize_axes((attrs.get("axis", -1),), rank, what=f"{what} axis")
    attrs["axis"] = axis
    return axis


@primitive
class ArgMax(Primitive):
    """Index of the first maximum over ``axis`` (dropped), as a float (NumPy/TF tie rule)."""

    name = "argmax"
    differentiable = False

    def shape(self, inputs, attrs):
        x = inputs[0]
        if x.rank < 1:
            raise ShapeError("argmax needs a tensor of rank >= 1, got a scalar")
        axis = _last_axis(attrs, x.rank, "argmax")
        return tuple(d for i, d in enumerate(x.shape) if i != axis)

    def vjp(self, node, g, ad):
        return [None]

    def emit(self, b, node, ins):
        idx = b.node("ArgMax", [ins[0]], hint=node.name + "/index", axis=node.attrs["axis"], keepdims=0)
        return b.node("Cast", [idx], hint=node.name, to=b.float_type)

    def to_sympy(self, node, args):
        return sympy.Function("argmax")(args[0])


@primitive
class TakeAlongAxis(Primitive):
    """take_along_axis(x, index): x[..., index[...]] over the last axis, kept (size 1).

    ``index`` holds class indices (float or int) with x's shape minus the last axis."""

    name = "take_along_axis"
    differentiable = False

    def shape(self, inputs, attrs):
        x, index = inputs
        if x.rank < 1 or index.rank != x.rank - 1:
            raise ShapeError(f"take_along_axis: index of shape {index.shape} does not index the last axis "
                             f"of a tensor of shape {x.shape} (accepted: index rank = x rank - 1)")
        return tuple(x.shape[:-1]) + (1,)

    def vjp(self, node, g, ad):
        return [None, None]

    def emit(self, b, node, ins):
        x, index = ins
        if node.inputs[1].dtype != "int64":
            index = b.node("Cast", [index], hint=node.name + "/index", to=7)  # INT64
        col = b.node("Unsqueeze", [index, b.const_i64([-1])], hint=node.name + "/col")
        return b.node("GatherElements", [x, col], hint=node.name, axis=node.inputs[0].rank - 1)

    def to_sympy(self, node, args):
        return sympy.Function("take_along_axis")(*args)
