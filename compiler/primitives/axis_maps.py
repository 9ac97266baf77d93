"""Constant linear maps along one axis, and the ops that are products of them.

``axis_map(x, M, axis)`` contracts one static axis of x with a constant matrix M (m, n):
y[..., i, ...] = sum_j M[i, j] x[..., j, ...]. Its adjoint is axis_map with M^T, so the
family is closed under differentiation. Pad (reflect, edge), resize, tile and strided
slices are separable: one such matrix per axis. Each op below emits its own forward
(one standard ONNX op where there is one) and differentiates through axis maps.

Emission of an axis map: a matrix that only selects (one 1 per row, zeros elsewhere)
becomes a Gather of its indices; any other matrix a MatMul, with no Transpose:
M @ x for the second-to-last axis, x @ M^T for the last, and otherwise a Reshape to
(..., n, rest) around M @ x.
"""
import numpy as np
import sympy

from ..errors import ShapeError
from ..ir import Primitive, primitive, normalize_axes


def selection_indices(m):
    """The column each row picks when ``m`` only selects, else None."""
    if not np.all((m == 0) | (m == 1)) or not np.all(m.sum(axis=1) == 1):
        return None
    return m.argmax(axis=1)


def emit_axis_map(b, x, shape, axis, m, hint):
    """ONNX nodes computing axis_map(x, m, axis) for x of ``shape``."""
    idx = selection_indices(m)
    if idx is not None:
        return b.node("Gather", [x, b.const_i64(idx.tolist(), hint=hint + "/index")], hint=hint, axis=axis)
    r = len(shape)
    if axis == r - 1:
        return b.node("MatMul", [x, b.const(m.T, hint=hint + "/matrix_t")], hint=hint)
    mat = b.const(m, hint=hint + "/matrix")
    if axis == r - 2:
        return b.node("MatMul", [mat, x], hint=hint)
    rest = [int(d) for d in shape[axis + 1:]]
    flat = b.node("Reshape", [x, b.const_i64([0] * axis + [shape[axis], int(np.prod(rest))])], hint=hint + "/fold")
    y = b.node("MatMul", [mat, flat], hint=hint + "/mm")
    return b.node("Reshape", [y, b.const_i64([0] * axis + [m.shape[0]] + rest)], hint=hint)


def static_axis(x, axis, op):
    (axis,) = normalize_axes((axis,), x.rank)
    n = x.shape[axis]
    if not isinstance(n, int):
        raise ShapeError(f"{op}: axis {axis} of {x.shape} must be static (the batch dim cannot be resampled)")
    return axis, n


def adjoint_chain(ad, g, node, maps):
    """g pulled back through the axis maps [(axis, M), ...] applied in order."""
    v = ad.materialize(g, node)
    for axis, m in reversed(maps):
        v = ad.apply("axis_map", [v], axis=axis, matrix=np.ascontiguousarray(m.T))
    return v.sym


@primitive
class AxisMap(Primitive):
    """axis_map(x): attrs axis, matrix (m, n) with n = x.shape[axis]."""

    name = "axis_map"

    def shape(self, inputs, attrs):
        x = inputs[0]
        axis, n = static_axis(x, attrs["axis"], "axis_map")
        m = np.asarray(attrs["matrix"], dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != n:
            raise ShapeError(f"axis_map: a matrix of shape {m.shape} cannot map axis {axis} of {x.shape}")
        attrs.update(axis=axis, matrix=m)
        out = list(x.shape)
        out[axis] = m.shape[0]
        return tuple(out)

    def vjp(self, node, g, ad):
        return [adjoint_chain(ad, g, node, [(node.attrs["axis"], node.attrs["matrix"])])]

    def emit(self, b, node, ins):
        return emit_axis_map(b, ins[0], node.inputs[0].shape, node.attrs["axis"], node.attrs["matrix"], node.name)

    def to_sympy(self, node, args):
        return sympy.Function("axis_map")(*args)


# ---------------------------------------------------------------- pad

PAD_MODES = ("constant", "reflect", "edge")


def pad_indices(n, before, after, mode):
    """Source index of every output position along one axis (reflect / edge)."""
    pos = np.arange(-before, n + after)
    if mode == "edge":
        return np.clip(pos, 0, n - 1)
    period = 2 * (n - 1)
    if period == 0:
        return np.zeros_like(pos)
    pos = np.abs(pos) % period
    return np.where(pos >= n, period - pos, pos)


def selection_matrix(idx, n):
    m = np.zeros((len(idx), n))
    m[np.arange(len(idx)), idx] = 1.0
    return m


@primitive
class Pad(Primitive):
    """pad(x): attrs pads (begins then ends, one per axis, >= 0), mode, value."""

    name = "pad"

    def shape(self, inputs, attrs):
        x = inputs[0]
        r = x.rank
        pads = tuple(int(p) for p in attrs["pads"])
        if len(pads) != 2 * r or any(p < 0 for p in pads):
            raise ShapeError(f"pad: pads {pads} must be {2 * r} non-negative integers (begins then ends) for "
                             f"an input of shape {x.shape}")
        mode = attrs.get("mode", "constant")
        out = []
        for i, d in enumerate(x.shape):
            if pads[i] or pads[r + i]:
                if not isinstance(d, int):
                    raise ShapeError(f"pad: axis {i} of {x.shape} is dynamic and cannot be padded")
                if mode == "reflect" and max(pads[i], pads[r + i]) > d - 1:
                    raise ShapeError(f"pad: reflect padding {pads[i]}, {pads[r + i]} on axis {i} needs pads smaller "
                                     f"than the axis size {d}")
                d = d + pads[i] + pads[r + i]
            out.append(d)
        attrs.update(pads=pads, mode=mode, value=float(attrs.get("value", 0.0)))
        return tuple(out)

    def _maps(self, node):
        x, a = node.inputs[0], node.attrs
        r = x.rank
        return [(i, selection_matrix(pad_indices(x.shape[i], a["pads"][i], a["pads"][r + i], a["mode"]),
                                     x.shape[i]))
                for i in range(r) if a["pads"][i] or a["pads"][r + i]]

    def vjp(self, node, g, ad):
        a, x = node.attrs, node.inputs[0]
        if a["mode"] != "constant":
            return [adjoint_chain(ad, g, node, self._maps(node))]
        v, r = ad.materialize(g, node), x.rank
        for i in range(r):
            if a["pads"][i] or a["pads"][r + i]:
                v = ad.apply("slice", [v], axis=i, start=a["pads"][i], end=a["pads"][i] + x.shape[i])
        return [v.sym]

    def emit(self, b, node, ins):
        a = node.attrs
        extra = [b.const(a["value"], hint=node.name + "/value")] if a["mode"] == "constant" and a["value"] else []
        return b.node("Pad", [ins[0], b.const_i64(list(a["pads"]), hint=node.name + "/pads")] + extra,
                      hint=node.name, mode=a["mode"])

    def to_sympy(self, node, args):
        return sympy.Function("pad")(*args)


# ---------------------------------------------------------------- tile

@primitive
class Tile(Primitive):
    """tile(x): attrs repeats (one per axis; a dynamic axis repeats once)."""

    name = "tile"

    def shape(self, inputs, attrs):
        x = inputs[0]
        reps = tuple(int(r) for r in attrs["repeats"])
        if len(reps) != x.rank or any(r < 1 for r in reps):
            raise ShapeError(f"tile: repeats {reps} must be {x.rank} positive integers for {x.shape}")
        for d, rep in zip(x.shape, reps):
            if rep != 1 and not isinstance(d, int):
                raise ShapeError(f"tile: the dynamic axis of {x.shape} cannot be repeated (repeats {reps})")
        attrs["repeats"] = reps
        return tuple(d * rep if rep != 1 else d for d, rep in zip(x.shape, reps))

    def vjp(self, node, g, ad):
        x = node.inputs[0]
        maps = [(i, selection_matrix(np.arange(x.shape[i] * rep) % x.shape[i], x.shape[i]))
                for i, rep in enumerate(node.attrs["repeats"]) if rep != 1]
        return [adjoint_chain(ad, g, node, maps)]

    def emit(self, b, node, ins):
        return b.node("Tile", [ins[0], b.const_i64(list(node.attrs["repeats"]), hint=node.name + "/repeats")],
                      hint=node.name)

    def to_sympy(self, node, args):
        return sympy.Function("tile")(*args)


# ---------------------------------------------------------------- strided slice

@primitive
class StridedSlice(Primitive):
    """x[start:end:step] on several static axes (ONNX Slice semantics: clamped, negative
    starts count from the end, negative steps walk backwards). attrs: starts, ends,
    axes, steps; normalised to the source indices per axis."""

    name = "strided_slice"

    def shape(self, inputs, attrs):
        x = inputs[0]
        axes = tuple(attrs["axes"])
        starts, ends, steps = (tuple(attrs[k]) for k in ("starts", "ends", "steps"))
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise ShapeError(f"slice: starts {starts}, ends {ends}, axes {axes} and steps {steps} must have the "
                             f"same length")
        picks, out = {}, list(x.shape)
        for start, end, axis, step in zip(starts, ends, axes, steps):
            axis, n = static_axis(x, axis, "slice")
            if step == 0:
                raise ShapeError("slice: a step of 0 is not allowed")
            if axis in picks:
                raise ShapeError(f"slice: axis {axis} is given twice in {axes}")
            idx = np.arange(n)[slice(_clamp(start), _clamp(end), step)]
            if idx.size == 0:
                raise ShapeError(f"slice {start}:{end}:{step} of axis {axis} in {x.shape} is empty")
            picks[axis] = idx
            out[axis] = int(idx.size)
        attrs["picks"] = picks
        return tuple(out)

    def vjp(self, node, g, ad):
        x, a = node.inputs[0], node.attrs
        maps = [(axis, selection_matrix(idx, x.shape[axis])) for axis, idx in sorted(a["picks"].items())]
        contiguous = all(np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)) for idx in a["picks"].values())
        if not contiguous:
            return [adjoint_chain(ad, g, node, maps)]
        r = x.rank
        pads = [0] * (2 * r)
        for axis, idx in a["picks"].items():
            pads[axis], pads[r + axis] = int(idx[0]), int(x.shape[axis] - idx[-1] - 1)
        return [ad.apply("pad", [ad.materialize(g, node)], pads=tuple(pads), mode="constant", value=0.0).sym]

    def emit(self, b, node, ins):
        picks = sorted(node.attrs["picks"].items())
        starts, ends, steps = [], [], []
        for axis, idx in picks:
            step = int(idx[1] - idx[0]) if idx.size > 1 else 1
            starts.append(int(idx[0]))
            end = int(idx[-1]) + (1 if step > 0 else -1)
            ends.append(end if end >= 0 else -(2 ** 62))   # walking back to index 0 inclusive
            steps.append(step)
        h = node.name
        return b.node("Slice", [ins[0], b.const_i64(starts, hint=h + "/starts"), b.const_i64(ends, hint=h + "/ends"),
                                b.const_i64([a for a, _ in picks], hint=h + "/axes"),
                                b.const_i64(steps, hint=h + "/steps")], hint=h)

    def to_sympy(self, node, args):
        return sympy.Function("slice")(*args)


def _clamp(v):
    return None if v is None else int(max(min(int(v), 2 ** 62), -(2 ** 62)))


# ---------------------------------------------------------------- window sum (LRN's channel window)

def band_matrix(n, before, after):
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    return ((j >= i - before) & (j <= i + after)).astype(np.float64)


@primitive
class WindowSum(Primitive):
    """window_sum(x): y[c] = sum x[c'] for c - before <= c' <= c + after along ``axis``;
    a banded axis map (its adjoint swaps before and after)."""

    name = "window_sum"

    def shape(self, inputs, attrs):
        axis, _ = static_axis(inputs[0], attrs["axis"], "window_sum")
        attrs["axis"] = axis
        return tuple(inputs[0].shape)

    def vjp(self, node, g, ad):
        a = node.attrs
        return [ad.apply("window_sum", [ad.materialize(g, node)], axis=a["axis"], before=a["after"],
                         after=a["before"]).sym]

    def emit(self, b, node, ins):
        a, x = node.attrs, node.inputs[0]
        m = band_matrix(x.shape[a["axis"]], a["before"], a["after"])
        return emit_axis_map(b, ins[0], x.shape, a["axis"], m, node.name)

    def to_sympy(self, node, args):
        return sympy.Function("window_sum")(*args)
