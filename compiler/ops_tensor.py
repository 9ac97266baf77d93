"""Structural tensor functions beyond the layers' first vocabulary: transpose, slicing,
split, pad, tile, broadcast, resize, depth/space rearrangement, gather_elements, and the
normalisations written from them (lrn, instance_norm, group_norm). Re-exported by
``symgrad.compiler.ops``; the ONNX importer and the Keras layers both call these.

Each is an unevaluated sympy function whose last argument packs its static attributes
(see ops_nn); its IR primitive carries the shape rule, the VJP rule and the emitter.
Functions that need the input's shape (split into equal parts, the normalisations) read
it from the IR value their argument builds to.
"""
import builtins

import sympy
from sympy import Integer

from .errors import ParameterError
from .ops_nn import _Structural, _int_tuple, reshape
from .primitives.axis_maps import PAD_MODES
from .primitives.rearrange import BLOCK_MODES
from .primitives.resize import COORDINATES, MODES as RESIZE_MODES, NEAREST_MODES

_BIG = 2 ** 62


class Transpose(_Structural):
    ir_op, user_name = "transpose", "transpose"
    attr_names = ("perm",)


class StridedSlice(_Structural):
    ir_op, user_name = "strided_slice", "slice"
    attr_names = ("starts", "ends", "axes", "steps")


class Pad(_Structural):
    ir_op, user_name = "pad", "pad"
    attr_names = ("pads", "mode", "value_text")

    def ir_attrs(self):
        a = super().ir_attrs()
        a["value"] = float(a.pop("value_text"))
        return a


class Tile(_Structural):
    ir_op, user_name = "tile", "tile"
    attr_names = ("repeats",)


class BroadcastTo(_Structural):
    ir_op, user_name = "broadcast_to", "broadcast_to"
    attr_names = ("shape",)


class Resize(_Structural):
    ir_op, user_name = "resize", "resize"
    attr_names = ("sizes", "scales_text", "mode", "coordinate_transformation_mode", "nearest_mode")

    def ir_attrs(self):
        a = super().ir_attrs()
        scales = a.pop("scales_text")
        a["scales"] = builtins.tuple(float(s) for s in scales) if scales else None
        a["sizes"] = builtins.tuple(None if s < 0 else s for s in a["sizes"]) if a["sizes"] else None
        return a


class DepthToSpace(_Structural):
    ir_op, user_name = "depth_to_space", "depth_to_space"
    attr_names = ("blocksize", "mode")


class SpaceToDepth(_Structural):
    ir_op, user_name = "space_to_depth", "space_to_depth"
    attr_names = ("blocksize", "mode")


class GatherElements(_Structural):
    ir_op, user_name = "gather_elements", "gather_elements"
    attr_names = ("axis",)


class WindowSum(_Structural):
    ir_op, user_name = "window_sum", "window_sum"
    attr_names = ("axis", "before", "after")


class GlobalMaxPool(_Structural):
    ir_op, user_name = "global_max_pool", "global_max_pool"


def _ints(owner, name, value, minimum=None):
    vals = builtins.tuple(value) if isinstance(value, (builtins.tuple, builtins.list)) else (value,)
    if builtins.any(isinstance(v, bool) or not isinstance(v, (int, Integer)) or (minimum is not None and v < minimum)
                    for v in vals):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ParameterError(f"{owner}: parameter {name!r} must be integers{bound}, got {value!r}")
    return builtins.tuple(int(v) for v in vals)


def _choice(owner, name, value, accepted):
    if value not in accepted:
        raise ParameterError(f"{owner}: parameter {name!r} must be one of {', '.join(map(repr, accepted))}, "
                             f"got {value!r}")
    return value


def value_of_expr(x):
    """The IR Value an expression builds to (its shape is then known)."""
    from .build import build_ir
    return build_ir(sympy.sympify(x), name="shape_of")


def transpose(x, perm):
    """Permute the axes of x: output axis i is input axis perm[i] (numpy.transpose)."""
    perm = _ints("transpose", "perm", perm, 0)
    if sorted(perm) != builtins.list(builtins.range(builtins.len(perm))):
        raise ParameterError(f"transpose: parameter 'perm' must be a permutation of 0..{len(perm) - 1}, got {perm}")
    return Transpose.make((x,), perm=perm)


def slice(x, starts, ends, axes=None, steps=None):  # noqa: A001 - ONNX's word
    """ONNX Slice: x[starts:ends:steps] on ``axes`` (default 0, 1, ...); out-of-range
    bounds are clamped, negative ones count from the end, negative steps walk back."""
    starts, ends = _ints("slice", "starts", starts), _ints("slice", "ends", ends)
    axes = builtins.tuple(builtins.range(builtins.len(starts))) if axes is None else _ints("slice", "axes", axes)
    steps = (1,) * builtins.len(starts) if steps is None else _ints("slice", "steps", steps)
    if not builtins.len(starts) == builtins.len(ends) == builtins.len(axes) == builtins.len(steps):
        raise ParameterError(f"slice: starts {starts}, ends {ends}, axes {axes} and steps {steps} must have the "
                             f"same length")
    clamp = [builtins.max(builtins.min(v, _BIG), -_BIG) for v in ends]
    return StridedSlice.make((x,), starts=starts, ends=builtins.tuple(clamp), axes=axes, steps=steps)


def split(x, split_or_n, axis=0):
    """Pieces of x along ``axis``: sizes (a list), or a number of equal parts. A list of
    expressions (ONNX Split: a last part may be smaller when the parts are uneven)."""
    v = value_of_expr(x)
    (ax,) = _ints("split", "axis", axis)
    if not -v.rank <= ax < v.rank or not isinstance(v.shape[ax], int):
        raise ParameterError(f"split: axis {axis} must be a static axis of {v.shape}")
    n = v.shape[ax]
    if isinstance(split_or_n, (builtins.list, builtins.tuple)):
        sizes = _ints("split", "split", split_or_n, 1)
        if builtins.sum(sizes) != n:
            raise ParameterError(f"split: sizes {sizes} must add up to the axis size {n} of {v.shape}")
    else:
        (parts,) = _ints("split", "num_outputs", split_or_n, 1)
        each = -(-n // parts)
        sizes = builtins.tuple(builtins.min(each, n - k * each) for k in builtins.range(parts))
        if builtins.any(s < 1 for s in sizes):
            raise ParameterError(f"split: {parts} parts do not fit axis {ax} of size {n}")
    out, start = [], 0
    for s in sizes:
        out.append(v.sym if s == n else slice(v.sym, (start,), (start + s,), (ax,)))
        start += s
    return out


def pad(x, pads, mode="constant", value=0.0):
    """ONNX Pad: ``pads`` begins then ends, one of each per axis of x; a negative pad
    crops. mode 'constant' (with ``value``), 'reflect' or 'edge'."""
    pads = _ints("pad", "pads", pads)
    mode = _choice("pad", "mode", mode, PAD_MODES)
    if builtins.len(pads) % 2:
        raise ParameterError(f"pad: parameter 'pads' needs a begin and an end per axis, got {len(pads)} entries")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"pad: parameter 'value' must be a number, got {value!r}") from None
    r = builtins.len(pads) // 2
    grow = builtins.tuple(builtins.max(p, 0) for p in pads)
    y = Pad.make((x,), pads=grow, mode=mode, value_text=repr(value)) if builtins.any(grow) else sympy.sympify(x)
    if builtins.all(p >= 0 for p in pads):
        return y
    axes = [i for i in builtins.range(r) if pads[i] < 0 or pads[r + i] < 0]
    starts = [builtins.max(-pads[i], 0) for i in axes]
    ends = [pads[r + i] if pads[r + i] < 0 else _BIG for i in axes]
    return slice(y, starts, ends, axes)


def tile(x, repeats):
    """ONNX Tile: repeat x ``repeats[i]`` times along axis i."""
    return Tile.make((x,), repeats=_ints("tile", "repeats", repeats, 1))


def broadcast_to(x, shape):
    """ONNX Expand (bidirectional broadcast) to a static shape; a dynamic batch dim may
    be given as -1 or 1 and stays the input's."""
    dims = _ints("broadcast_to", "shape", shape, -1)
    return BroadcastTo.make((x,), shape=builtins.tuple(1 if d == -1 else d for d in dims))


expand = broadcast_to


def resize(x, scales=None, sizes=None, mode="nearest", coordinate_transformation_mode="half_pixel",
           nearest_mode="round_prefer_floor"):
    """ONNX Resize (default attributes as ONNX): ``scales`` (one float per axis) or
    ``sizes`` (one int per axis, None keeps that axis) for nearest or linear interpolation."""
    mode = _choice("resize", "mode", mode, RESIZE_MODES)
    ctm = _choice("resize", "coordinate_transformation_mode", coordinate_transformation_mode, COORDINATES)
    nearest_mode = _choice("resize", "nearest_mode", nearest_mode, NEAREST_MODES)
    if (scales is None) == (sizes is None):
        raise ParameterError("resize: give exactly one of 'scales' and 'sizes'")
    if scales is not None:
        try:
            scales = builtins.tuple(float(s) for s in scales)
        except (TypeError, ValueError):
            raise ParameterError(f"resize: parameter 'scales' must be numbers, got {scales!r}") from None
        if builtins.any(not s > 0 for s in scales):
            raise ParameterError(f"resize: parameter 'scales' must be positive, got {scales}")
        return Resize.make((x,), sizes=(), scales_text=builtins.tuple(repr(s) for s in scales), mode=mode,
                           coordinate_transformation_mode=ctm, nearest_mode=nearest_mode)
    sizes = builtins.tuple(-1 if s is None else s for s in sizes)
    _ints("resize", "sizes", [s for s in sizes if s != -1], 1)
    return Resize.make((x,), sizes=sizes, scales_text=(), mode=mode, coordinate_transformation_mode=ctm,
                       nearest_mode=nearest_mode)


def depth_to_space(x, blocksize, mode="DCR"):
    """ONNX DepthToSpace: (N, C*b*b, H, W) -> (N, C, H*b, W*b), 'DCR' or 'CRD' order."""
    (bs,) = _ints("depth_to_space", "blocksize", blocksize, 1)
    return DepthToSpace.make((x,), blocksize=bs, mode=_choice("depth_to_space", "mode", mode, BLOCK_MODES))


def space_to_depth(x, blocksize, mode="DCR"):
    """ONNX SpaceToDepth (mode 'DCR'); 'CRD' is the inverse of depth_to_space's CRD."""
    (bs,) = _ints("space_to_depth", "blocksize", blocksize, 1)
    return SpaceToDepth.make((x,), blocksize=bs, mode=_choice("space_to_depth", "mode", mode, BLOCK_MODES))


def gather_elements(x, indices, axis=0):
    """ONNX GatherElements: y = x[..., indices[...], ...] along ``axis``; y has the
    indices' shape. The gradient scatters back with repeated indices accumulating."""
    (axis,) = _ints("gather_elements", "axis", axis)
    return GatherElements.make((x, indices), axis=axis)


def window_sum(x, axis, before, after):
    """y[.., c, ..] = sum of x[.., c', ..] for c - before <= c' <= c + after (zeros outside)."""
    (axis,) = _ints("window_sum", "axis", axis)
    (before,), (after,) = _ints("window_sum", "before", before, 0), _ints("window_sum", "after", after, 0)
    return WindowSum.make((x,), axis=axis, before=before, after=after)


def global_max_pool(x):
    """Max over every spatial axis of x (N, C, *spatial) -> (N, C)."""
    return GlobalMaxPool.make((x,))


def lrn(x, size, alpha=1e-4, beta=0.75, bias=1.0):
    """ONNX LRN across channels of x (N, C, ...):
    y = x / (bias + alpha / size * sum of x^2 over the channel window)^beta, the window
    reaching floor((size-1)/2) channels back and ceil((size-1)/2) forward."""
    (size,) = _ints("lrn", "size", size, 1)
    sq = window_sum(sympy.sympify(x) ** 2, 1, (size - 1) // 2, size // 2)
    return x / (sympy.Float(bias) + sympy.Float(alpha) / size * sq) ** sympy.Float(beta)


def _per_channel(param, channels, rank, axis=1):
    """A (C,) parameter shaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    shape = (channels,) + (1,) * (rank - 1 - axis % rank)
    return reshape(param, shape) if builtins.len(shape) > 1 else param


def instance_norm(x, scale=None, bias=None, epsilon=1e-5):
    """ONNX InstanceNormalization of x (N, C, *spatial): each sample's channel normalised
    over its spatial axes, then scale (C,) and bias (C,)."""
    from . import ops
    v = value_of_expr(x)
    if v.rank < 3:
        raise ParameterError(f"instance_norm expects an input (batch, channels, ...), got shape {v.shape}")
    axes = builtins.tuple(builtins.range(2, v.rank))
    mean = ops.mean(v.sym, axis=axes)
    var = ops.mean((v.sym - mean) ** 2, axis=axes)
    y = (v.sym - mean) / sympy.sqrt(var + sympy.Float(epsilon))
    return _affine(y, scale, bias, v.shape[1], v.rank, 1)


def group_norm(x, num_groups, scale=None, bias=None, epsilon=1e-5, axis=1):
    """Group normalisation (PyTorch GroupNorm, ONNX GroupNormalization-21, Keras
    GroupNormalization): the channels on ``axis`` split into ``num_groups`` groups, each
    sample normalised over its group and every other non-batch axis, then a per-channel
    scale (C,) and bias (C,)."""
    from . import ops
    v = value_of_expr(x)
    (groups,) = _ints("group_norm", "num_groups", num_groups, 1)
    (axis,) = _ints("group_norm", "axis", axis)
    if v.rank < 2 or not -v.rank < axis < v.rank or builtins.any(not isinstance(d, int) for d in v.shape[1:]):
        raise ParameterError(f"group_norm: axis {axis} must be a channel axis of an input (batch, ...) with static "
                             f"dims, got shape {v.shape}")
    axis %= v.rank
    c = v.shape[axis]
    if c % groups:
        raise ParameterError(f"group_norm: {c} channels are not divisible by num_groups={groups}")
    # (N, ..., C, ...) -> (N, before, G, C/G, after): normalise over every axis but N and G
    before = int(sympy.prod(v.shape[1:axis]))
    after = int(sympy.prod(v.shape[axis + 1:]))
    xg = reshape(v.sym, (-1, before, groups, c // groups, after))
    mean = ops.mean(xg, axis=(1, 3, 4))
    var = ops.mean((xg - mean) ** 2, axis=(1, 3, 4))
    y = reshape((xg - mean) / sympy.sqrt(var + sympy.Float(epsilon)), (-1,) + builtins.tuple(v.shape[1:]))
    return _affine(y, scale, bias, c, v.rank, axis)


def _affine(y, scale, bias, channels, rank, axis):
    if scale is not None:
        y = y * _per_channel(scale, channels, rank, axis)
    if bias is not None:
        y = y + _per_channel(bias, channels, rank, axis)
    return y
