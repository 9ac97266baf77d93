"""Static reshapes (Flatten, Reshape) and concatenation with its slicing adjoint."""
import re

import numpy as np
import sympy

from .. import ops
from ..errors import ShapeError
from ..ir import Primitive, primitive, normalize_axes, static_size


def _symbolic(shape):
    return [d for d in shape if not isinstance(d, int)]


def _dim_expr(d):
    """A symbolic dim string ("N", "2*N") as a sympy expression over its names."""
    names = {n: sympy.Symbol(n) for n in re.findall(r"[A-Za-z_]\w*", d)}
    return sympy.sympify(d, locals=names)


def _symbolic_fill(shape, known):
    """The inferred dim when the input has symbolic dims, as a dim string ("N", "2*N"),
    or None when the element counts cannot match for every value of the symbols."""
    total = sympy.Integer(1)
    for d in shape:
        total *= sympy.Integer(d) if isinstance(d, int) else _dim_expr(d)
    fill = sympy.simplify(total / known)
    if fill.is_Integer:
        return int(fill)
    numer, denom = fill.as_numer_denom()
    if denom != 1 or fill.is_number or any(c.is_Rational and not c.is_Integer for c in fill.atoms(sympy.Rational)):
        return None
    return str(fill)


@primitive
class Reshape(Primitive):
    """reshape(x, shape): ``shape`` is the full target; one entry may be -1 (it takes the
    input's symbolic dim, the batch) or the word 'flatten' keeps dim 0 and folds the rest."""

    name = "reshape"

    def shape(self, inputs, attrs):
        x = inputs[0]
        target = attrs["shape"]
        if target == "flatten":
            if x.rank < 1:
                raise ShapeError("flatten needs an input with a batch dim")
            rest = static_size(x.shape[1:])
            if rest is None:
                raise ShapeError(f"flatten: the dims after the batch must be static, got {x.shape}")
            target = (x.shape[0], rest)
        target = tuple(target)
        free = [i for i, d in enumerate(target) if not isinstance(d, int) or d == -1]
        if len(free) > 1:
            raise ShapeError(f"reshape: at most one dim may be inferred, got {target}")
        known = static_size([d for d in target if isinstance(d, int) and d != -1])
        total = static_size(x.shape)
        if free:
            sym = _symbolic(x.shape)
            if total is not None:
                if total % known:
                    raise ShapeError(f"reshape: cannot reshape {x.shape} into {target}")
                fill = total // known
            elif len(sym) == 1 and static_size([d for d in x.shape if isinstance(d, int)]) == known:
                fill = sym[0]  # the batch stays the batch
            else:  # a multiple of a symbolic dim (batch x heads in attention): "2*N"
                fill = _symbolic_fill(x.shape, known)
                if fill is None:
                    raise ShapeError(f"reshape: cannot reshape {x.shape} into {target}: the static sizes differ")
            target = tuple(fill if i == free[0] else d for i, d in enumerate(target))
        elif total is None or total != known:
            raise ShapeError(f"reshape: cannot reshape {x.shape} ({total or 'dynamic'} elements) into {target}")
        attrs["shape"] = target
        return target

    def vjp(self, node, g, ad):
        return [ad.apply("reshape_like", [ad.materialize(g, node), node.inputs[0]]).sym]

    def emit(self, b, node, ins):
        x = node.inputs[0]
        # a symbolic dim copies the input's dim at the same place (0) or is inferred (-1)
        dims = [d if isinstance(d, int) else (0 if i < x.rank and x.shape[i] == d else -1)
                for i, d in enumerate(node.shape)]
        return b.node("Reshape", [ins[0], b.const_i64(dims)], hint=node.name)

    def to_sympy(self, node, args):
        return ops.Reshape.make(args, shape=tuple(d if isinstance(d, int) else -1 for d in node.shape))


@primitive
class Concat(Primitive):
    name = "concat"

    def shape(self, inputs, attrs):
        rank = inputs[0].rank
        if any(v.rank != rank for v in inputs):
            raise ShapeError(f"concat: every input needs the same rank, got {[v.shape for v in inputs]}")
        (axis,) = normalize_axes((attrs.get("axis", -1),), rank)
        attrs["axis"] = axis
        for i in range(rank):
            dims = {v.shape[i] for v in inputs}
            if i != axis and len(dims) > 1:
                raise ShapeError(f"concat on axis {axis}: the other dims must agree, got {[v.shape for v in inputs]}")
        sizes = [v.shape[axis] for v in inputs]
        if not all(isinstance(s, int) for s in sizes):
            raise ShapeError(f"concat: the axis {axis} must be static in every input, got {[v.shape for v in inputs]}")
        out = list(inputs[0].shape)
        out[axis] = int(np.sum(sizes))
        return tuple(out)

    def vjp(self, node, g, ad):
        gv = ad.materialize(g, node)
        axis, start, out = node.attrs["axis"], 0, []
        for v in node.inputs:
            n = v.shape[axis]
            out.append(ad.apply("slice", [gv], axis=axis, start=start, end=start + n).sym)
            start += n
        return out

    def emit(self, b, node, ins):
        return b.node("Concat", ins, hint=node.name, axis=node.attrs["axis"])

    def to_sympy(self, node, args):
        return ops.Concat.make(args, axis=node.attrs["axis"])


@primitive
class Slice(Primitive):
    """x[..., start:end, ...] on one static axis."""

    name = "slice"

    def shape(self, inputs, attrs):
        x = inputs[0]
        (axis,) = normalize_axes((attrs["axis"],), x.rank)
        attrs["axis"] = axis
        n = x.shape[axis]
        if not isinstance(n, int) or not 0 <= attrs["start"] < attrs["end"] <= n:
            raise ShapeError(f"slice {attrs['start']}:{attrs['end']} does not fit axis {axis} of {x.shape}")
        out = list(x.shape)
        out[axis] = attrs["end"] - attrs["start"]
        return tuple(out)

    def vjp(self, node, g, ad):
        a = node.attrs
        n = node.inputs[0].shape[a["axis"]]
        return [ad.apply("pad_axis", [ad.materialize(g, node)], axis=a["axis"], before=a["start"],
                         after=n - a["end"]).sym]

    def emit(self, b, node, ins):
        a = node.attrs
        return b.node("Slice", [ins[0], b.const_i64([a["start"]]), b.const_i64([a["end"]]),
                                b.const_i64([a["axis"]])], hint=node.name)

    def to_sympy(self, node, args):
        return sympy.Function("slice")(*args)


@primitive
class PadAxis(Primitive):
    """Zeros before and after x along one axis (the adjoint of slice)."""

    name = "pad_axis"

    def shape(self, inputs, attrs):
        x = inputs[0]
        (axis,) = normalize_axes((attrs["axis"],), x.rank)
        attrs["axis"] = axis
        out = list(x.shape)
        out[axis] = x.shape[axis] + attrs["before"] + attrs["after"]
        return tuple(out)

    def vjp(self, node, g, ad):
        a = node.attrs
        return [ad.apply("slice", [ad.materialize(g, node)], axis=a["axis"], start=a["before"],
                         end=a["before"] + node.inputs[0].shape[a["axis"]]).sym]

    def emit(self, b, node, ins):
        a, r = node.attrs, node.rank
        pads = [0] * (2 * r)
        pads[a["axis"]], pads[r + a["axis"]] = a["before"], a["after"]
        return b.node("Pad", [ins[0], b.const_i64(pads)], hint=node.name)

    def to_sympy(self, node, args):
        return sympy.Function("pad")(*args)
