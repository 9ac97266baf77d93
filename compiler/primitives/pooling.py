"""Pooling: max, average (padding not counted, as Keras), global average.

The backward passes use only Conv / ConvTranspose, so they hold for any window, stride
and padding and at every opset: average pooling's adjoint spreads g / count back with a
ones kernel; max pooling extracts each window with a one-hot kernel, marks its maxima
(ties share the gradient evenly, as for reduce_max) and scatters back the same way.
"""
import numpy as np
import sympy

from .. import ops
from ..errors import ShapeError, SymgradError
from ..ir import Primitive, primitive
from .conv import conv_out_spatial, resolve_pads, static_spatial, _per_dim


def _pool_geometry(inputs, attrs, op):
    x = inputs[0]
    r = x.rank - 2
    want = int(attrs.get("spatial_rank", 0) or 0)
    if r < 1 or (want and r != want):
        raise ShapeError(f"{op} expects an input of shape (batch, channels, {'length' if want == 1 else '...'})"
                         f"{'' if want != 2 else ' with height and width'}, got {x.shape}")
    spatial = static_spatial(x, op)
    kernel = _per_dim(attrs["kernel"], r, "pool_size", op)
    strides = _per_dim(attrs.get("strides", kernel), r, "strides", op)
    pads = resolve_pads(attrs.get("padding", "explicit"), attrs.get("pads", (0,)), spatial, kernel, strides,
                        (1,) * r, op)
    if any(pads[i] >= kernel[i] or pads[r + i] >= kernel[i] for i in range(r)):
        raise ShapeError(f"{op}: padding {pads} must be smaller than the window {kernel}")
    geo = {"strides": strides, "pads": pads, "dilations": (1,) * r, "group": 1}
    out = conv_out_spatial(spatial, kernel, geo, op, what="window")
    attrs.update({"kernel": kernel, "strides": strides, "pads": pads, "padding": "explicit", "spatial_rank": r})
    return spatial, out


def _window_mask(spatial, kernel, strides, pads):
    """(prod(kernel), *out) with 1 where that tap of that window lies inside the input."""
    r = len(spatial)
    geo = {"strides": strides, "pads": pads, "dilations": (1,) * r, "group": 1}
    out = conv_out_spatial(spatial, kernel, geo, "pool")
    axes = []
    for i in range(r):
        pos = np.arange(out[i])[None, :] * strides[i] + np.arange(kernel[i])[:, None] - pads[i]  # (k, o)
        axes.append((pos >= 0) & (pos < spatial[i]))
    mask = np.ones(tuple(kernel) + tuple(out), dtype=bool)
    for i, m in enumerate(axes):
        shape = [1] * (2 * r)
        shape[i], shape[r + i] = m.shape
        mask = mask & m.reshape(shape)
    return mask.reshape((-1,) + tuple(out))


def _per_channel(b, name, hint, r, spatial):
    """(N, C, *S) -> (N*C, 1, *S): pooling acts on each channel alone."""
    return b.node("Reshape", [name, b.const_i64([-1, 1] + list(spatial))], hint=hint)


def _back_to_channels(b, name, like, hint):
    return b.node("Reshape", [name, b.const_i64([-1] + list(like.shape[1:]))], hint=hint)


def _scatter_back(b, node, gp, kernel_w, x):
    """ConvTranspose of window-shaped values gp back onto the input grid."""
    a, r = node.attrs, x.rank - 2
    o = conv_out_spatial(tuple(x.shape[2:]), a["kernel"], {"strides": a["strides"], "pads": a["pads"],
                                                           "dilations": (1,) * r}, "pool")
    extra = [x.shape[2 + i] - ((o[i] - 1) * a["strides"][i] + a["kernel"][i] - a["pads"][i] - a["pads"][r + i])
             for i in range(r)]
    return b.node("ConvTranspose", [gp, kernel_w], hint=node.name + "/scatter", kernel_shape=list(a["kernel"]),
                  strides=list(a["strides"]), pads=list(a["pads"]), output_padding=extra)


def _pool_kwargs(node):
    return {k: node.attrs[k] for k in ("kernel", "strides", "pads", "spatial_rank")}


@primitive
class MaxPool(Primitive):
    name = "max_pool"

    def shape(self, inputs, attrs):
        _, out = _pool_geometry(inputs, attrs, "max_pool")
        return tuple(inputs[0].shape[:2]) + out

    def vjp(self, node, g, ad):
        return [ad.apply("max_pool_grad", [node.inputs[0], ad.materialize(g, node)], **_pool_kwargs(node)).sym]

    def emit(self, b, node, ins):
        a = node.attrs
        return b.node("MaxPool", ins, hint=node.name, kernel_shape=list(a["kernel"]), strides=list(a["strides"]),
                      pads=list(a["pads"]))

    def to_sympy(self, node, args):
        return ops.MaxPool.make(args, **{**_pool_kwargs(node), "padding": "explicit"})


@primitive
class MaxPoolGrad(Primitive):
    """max_pool_grad(x, g): g routed to the maxima of each window (ties split evenly)."""

    name = "max_pool_grad"

    def shape(self, inputs, attrs):
        _pool_geometry(inputs, attrs, "max_pool_grad")
        return inputs[0].shape

    def vjp(self, node, g, ad):
        raise SymgradError("second derivatives through max pooling are not supported")

    def emit(self, b, node, ins):
        x = node.inputs[0]
        a, h, r = node.attrs, node.name, x.rank - 2
        kernel = a["kernel"]
        taps = int(np.prod(kernel))
        eye = np.eye(taps).reshape((taps, 1) + tuple(kernel))
        eye = b.const(eye, hint=h + "/taps")
        xr = _per_channel(b, ins[0], h + "/x", r, x.shape[2:])
        patches = b.node("Conv", [xr, eye], hint=h + "/windows", kernel_shape=list(kernel),
                         strides=list(a["strides"]), pads=list(a["pads"]))           # (N*C, taps, *out)
        inside = _window_mask(tuple(x.shape[2:]), kernel, a["strides"], a["pads"])
        if not inside.all():  # padded taps must never win (ONNX MaxPool pads with -inf)
            patches = b.node("Where", [b.const_bool(inside[None]), patches, b.const(-np.inf)], hint=h + "/inside")
        top = b.reduce("ReduceMax", patches, (1,), True, h + "/max")
        hit = b.node("Cast", [b.node("Equal", [patches, top], hint=h + "/is_max")], hint=h + "/hit", to=b.float_type)
        ties = b.reduce("ReduceSum", hit, (1,), True, h + "/ties")
        gr = _per_channel(b, ins[1], h + "/g", r, node.inputs[1].shape[2:])
        share = b.node("Div", [b.node("Mul", [hit, gr], hint=h + "/routed"), ties], hint=h + "/share")
        back = _scatter_back(b, node, share, eye, x)
        return _back_to_channels(b, back, x, h)

    def to_sympy(self, node, args):
        return sympy.Function("max_pool_grad")(*args)


def _counts(spatial, kernel, strides, pads):
    """How many input cells each window covers (padding not counted)."""
    return _window_mask(spatial, kernel, strides, pads).sum(axis=0).astype(float)


@primitive
class AvgPool(Primitive):
    name = "avg_pool"

    def shape(self, inputs, attrs):
        _, out = _pool_geometry(inputs, attrs, "avg_pool")
        return tuple(inputs[0].shape[:2]) + out

    def vjp(self, node, g, ad):
        return [ad.apply("avg_pool_grad", [ad.materialize(g, node), node.inputs[0]], **_pool_kwargs(node)).sym]

    def emit(self, b, node, ins):
        a = node.attrs
        return b.node("AveragePool", ins, hint=node.name, kernel_shape=list(a["kernel"]),
                      strides=list(a["strides"]), pads=list(a["pads"]), count_include_pad=0)

    def to_sympy(self, node, args):
        return ops.AvgPool.make(args, **{**_pool_kwargs(node), "padding": "explicit"})


@primitive
class AvgPoolGrad(Primitive):
    """avg_pool_grad(g, like): the adjoint of avg_pool, shaped like the pooled input."""

    name = "avg_pool_grad"

    def shape(self, inputs, attrs):
        _pool_geometry([inputs[1]], attrs, "avg_pool_grad")
        return inputs[1].shape

    def vjp(self, node, v, ad):  # linear: the adjoint of the adjoint is avg_pool itself
        return [ad.apply("avg_pool", [ad.materialize(v, node)], **_pool_kwargs(node)).sym, None]

    def emit(self, b, node, ins):
        g, x = node.inputs
        a, h, r = node.attrs, node.name, x.rank - 2
        counts = _counts(tuple(x.shape[2:]), a["kernel"], a["strides"], a["pads"])
        scaled = b.node("Div", [ins[0], b.const(counts, hint=h + "/counts")], hint=h + "/mean_share")
        gr = _per_channel(b, scaled, h + "/g", r, g.shape[2:])
        ones = b.const(np.ones((1, 1) + tuple(a["kernel"])), hint=h + "/window")
        return _back_to_channels(b, _scatter_back(b, node, gr, ones, x), x, h)

    def to_sympy(self, node, args):
        return sympy.Function("avg_pool_grad")(*args)


@primitive
class GlobalAvgPool(Primitive):
    """Mean over every spatial axis: (N, C, *S) -> (N, C)."""

    name = "global_avg_pool"

    def shape(self, inputs, attrs):
        x = inputs[0]
        if x.rank < 3:
            raise ShapeError(f"global_avg_pool expects an input of shape (batch, channels, ...), got {x.shape}")
        static_spatial(x, "global_avg_pool")
        return tuple(x.shape[:2])

    def vjp(self, node, g, ad):
        x = node.inputs[0]
        axes = tuple(range(2, x.rank))
        u = ad.apply("unsqueeze", [ad.materialize(g, node)], axes=axes)
        return [u.sym / int(np.prod(x.shape[2:]))]  # broadcasts back over the spatial axes

    def emit(self, b, node, ins):
        pooled = b.node("GlobalAveragePool", ins, hint=node.name + "/pool")
        return b.node("Squeeze", [pooled, b.const_i64(list(range(2, node.inputs[0].rank)))], hint=node.name)

    def to_sympy(self, node, args):
        return ops.GlobalAvgPool.make(args)
