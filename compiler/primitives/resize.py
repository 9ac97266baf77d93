"""Resize (nearest and linear, ONNX's coordinate transformations) as a separable product
of constant per-axis matrices.

The forward and the backward come from the same matrices, so the gradient is exactly the
adjoint of what the forward computed. Nearest: a selection matrix per axis, emitted as a
Gather; its adjoint a MatMul with the transposed (summing) matrix. Linear: two taps per
row, emitted as MatMul. Why not ONNX Resize for the forward: at 2x upsampling of a
(32, 64, 56, 56) float32 tensor in onnxruntime 1.32 on this machine, nearest Gather+Gather
took {nearest_gather} against Resize {nearest_resize}, linear MatMul+MatMul {linear_mm} against
Resize {linear_resize} (benchmarks/resize_lowering.py); and the matrices make one code
path serve every opset from 13 and every coordinate mode, with the adjoint exact.
"""
import math

import numpy as np
import sympy

from ..errors import ShapeError
from ..ir import Primitive, primitive
from .axis_maps import adjoint_chain, emit_axis_map

MODES = ("nearest", "linear")
COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coordinates(n, m, scale, transform):
    """ONNX's x_original for every output position x_resized along one axis."""
    x = np.arange(m, dtype=np.float64)
    if transform == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if transform == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if m > 1 else np.zeros(m)
    if transform == "align_corners":
        return x * (n - 1) / (m - 1) if m > 1 else np.zeros(m)
    return x / scale  # asymmetric


def nearest_index(c, mode):
    if mode == "floor":
        return np.floor(c)
    if mode == "ceil":
        return np.ceil(c)
    frac = c - np.floor(c)
    up = frac > 0.5 if mode == "round_prefer_floor" else frac >= 0.5
    return np.floor(c) + up


def resize_matrix(n, m, scale, mode, transform, nearest_mode):
    """(m, n): output position i reads sum_j M[i, j] x[j]."""
    c = source_coordinates(n, m, scale, transform)
    mat = np.zeros((m, n))
    rows = np.arange(m)
    if mode == "nearest":
        idx = np.clip(nearest_index(c, nearest_mode), 0, n - 1).astype(int)
        mat[rows, idx] = 1.0
        return mat
    c = np.clip(c, 0, n - 1)
    lo = np.floor(c).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = c - lo
    np.add.at(mat, (rows, lo), 1 - w)
    np.add.at(mat, (rows, hi), w)
    return mat


@primitive
class Resize(Primitive):
    """resize(x): attrs sizes (a static size per axis; None keeps the axis) or scales,
    mode, coordinate_transformation_mode, nearest_mode."""

    name = "resize"

    def shape(self, inputs, attrs):
        x = inputs[0]
        r = x.rank
        sizes, scales = attrs.get("sizes"), attrs.get("scales")
        if (sizes is None) == (scales is None):
            raise ShapeError("resize: give exactly one of sizes and scales")
        given = sizes if sizes is not None else scales
        if len(given) != r:
            raise ShapeError(f"resize: {'sizes' if sizes is not None else 'scales'} {tuple(given)} must have one "
                             f"entry per axis of {x.shape}")
        maps, out = [], []
        for axis, (d, v) in enumerate(zip(x.shape, given)):
            keep = v is None if sizes is not None else float(v) == 1.0
            if not isinstance(d, int):
                if not keep:
                    raise ShapeError(f"resize: the dynamic axis {axis} of {x.shape} cannot be resized")
                out.append(d)
                continue
            if sizes is not None:
                m = d if v is None else int(v)
                scale = m / d
            else:
                scale = float(v)
                m = int(math.floor(d * scale))
            if m < 1:
                raise ShapeError(f"resize: axis {axis} of {x.shape} would shrink to {m}")
            out.append(m)
            mat = resize_matrix(d, m, scale, attrs["mode"], attrs["coordinate_transformation_mode"],
                                attrs["nearest_mode"])
            if m != d or not np.allclose(mat, np.eye(d)):
                maps.append((axis, mat))
        attrs["maps"] = maps
        return tuple(out)

    def vjp(self, node, g, ad):
        return [adjoint_chain(ad, g, node, node.attrs["maps"])]

    def emit(self, b, node, ins):
        name, shape = ins[0], list(node.inputs[0].shape)
        maps = node.attrs["maps"]
        if not maps:
            return b.node("Identity", [name], hint=node.name)
        for k, (axis, m) in enumerate(maps):
            name = emit_axis_map(b, name, shape, axis, m, node.name if k == len(maps) - 1 else f"{node.name}/a{axis}")
            shape[axis] = m.shape[0]
        return name

    def to_sympy(self, node, args):
        return sympy.Function("resize")(*args)
