"""Resize (nearest and linear, ONNX's coordinate transformations): the forward is ONNX's
Resize; the backward is the adjoint of a separable product of constant per-axis
matrices (two taps per row for linear, one for nearest), emitted as MatMul.

The matrices are written from the ONNX spec and tested against onnx's reference Resize
and onnxruntime's. Why the forward is not the matrices too (benchmarks/resize_lowering.py,
2x upsampling of (8, 64, 56, 56) float32, one thread, onnxruntime 1.32, median of 3
processes): nearest as Gather per axis took 186 ms against Resize's 8.1 ms; linear as
MatMul per axis 82 ms against Resize's 34 ms.
"""
import math

import numpy as np
import sympy

from ..errors import ShapeError
from ..ir import Primitive, primitive
from .axis_maps import adjoint_chain

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
        attrs["given"] = "sizes" if sizes is not None else "scales"
        return tuple(out)

    def vjp(self, node, g, ad):
        return [adjoint_chain(ad, g, node, node.attrs["maps"])]

    def emit(self, b, node, ins):
        a, x, h = node.attrs, node.inputs[0], node.name
        if not a["maps"]:
            return b.node("Identity", [ins[0]], hint=h)
        kw = {"mode": a["mode"], "coordinate_transformation_mode": a["coordinate_transformation_mode"]}
        if a["mode"] == "nearest":
            kw["nearest_mode"] = a["nearest_mode"]
        if a["given"] == "scales":  # ONNX transforms coordinates with the scale as given
            scales = b._initializer(np.asarray([float(s) for s in a["scales"]], dtype=np.float32), h + "/scales")
            return b.node("Resize", [ins[0], "", scales], hint=h, **kw)
        # sizes: the dynamic batch dim comes from the input at run time
        lead = [i for i, d in enumerate(node.shape) if not isinstance(d, int)]
        static = b.const_i64([d if isinstance(d, int) else 0 for d in node.shape], hint=h + "/static_sizes")
        if lead:
            shape = b.node("Shape", [ins[0]], hint=h + "/in_shape")
            keep = b.const_bool([not isinstance(d, int) for d in node.shape])
            static = b.node("Where", [keep, shape, static], hint=h + "/sizes")
        return b.node("Resize", [ins[0], "", "", static], hint=h, **kw)

    def to_sympy(self, node, args):
        return sympy.Function("resize")(*args)
