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
from ..ir import Primitive, apply, elementwise, primitive
from .conv import conv_out_spatial, resolve_pads, static_spatial, _per_dim


def _pool_geometry(inputs, attrs, op):
    """Normalise kernel / strides / pads / dilations / ceil_mode against the input; returns
    (spatial, out). ``conv_pads`` holds the pads extended at the end so that ceil_mode's
    last window fits a floor-mode Conv (its cells lie outside the input: never counted)."""
    x = inputs[0]
    r = x.rank - 2
    want = int(attrs.get("spatial_rank", 0) or 0)
    if r < 1 or (want and r != want):
        raise ShapeError(f"{op} expects an input of shape (batch, channels, {'length' if want == 1 else '...'})"
                         f"{'' if want != 2 else ' with height and width'}, got {x.shape}")
    spatial = static_spatial(x, op)
    kernel = _per_dim(attrs["kernel"], r, "pool_size", op)
    strides = _per_dim(attrs.get("strides") or kernel, r, "strides", op)
    dilations = _per_dim(attrs.get("dilations") or (1,), r, "dilations", op)
    pads = resolve_pads(attrs.get("padding", "explicit"), attrs.get("pads", (0,)), spatial, kernel, strides,
                        dilations, op)
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    if any(pads[i] >= span[i] or pads[r + i] >= span[i] for i in range(r)):
        raise ShapeError(f"{op}: padding {pads} must be smaller than the window {kernel}")
    ceil_mode = bool(attrs.get("ceil_mode", False))
    out, ends = [], []
    for i in range(r):
        room = spatial[i] + pads[i] + pads[r + i] - span[i]
        if room < 0:
            raise ShapeError(f"{op}: the window {kernel} does not fit the input {spatial} padded by {pads}")
        o = (-(-room // strides[i]) if ceil_mode else room // strides[i]) + 1
        if ceil_mode and (o - 1) * strides[i] >= spatial[i] + pads[i]:
            o -= 1  # a window may not start in the end padding (PyTorch's and onnxruntime's rule)
        out.append(o)
        ends.append(max(pads[r + i], (o - 1) * strides[i] + span[i] - spatial[i] - pads[i]))
    attrs.update({"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations, "padding": "explicit",
                  "ceil_mode": ceil_mode, "spatial_rank": r, "conv_pads": tuple(pads[:r]) + tuple(ends)})
    return spatial, tuple(out)


def _window_mask(spatial, kernel, strides, pads, dilations=None, lo=None, hi=None):
    """(prod(kernel), *out) with 1 where that tap of that window lies in [lo, hi) on every
    axis (default: inside the input)."""
    r = len(spatial)
    dilations = dilations or (1,) * r
    geo = {"strides": strides, "pads": pads, "dilations": dilations, "group": 1}
    out = conv_out_spatial(spatial, kernel, geo, "pool")
    lo = lo or (0,) * r
    hi = hi or tuple(spatial)
    mask = np.ones(tuple(kernel) + tuple(out), dtype=bool)
    for i in range(r):
        pos = np.arange(out[i])[None, :] * strides[i] + np.arange(kernel[i])[:, None] * dilations[i] - pads[i]
        m = (pos >= lo[i]) & (pos < hi[i])                                  # (k, o)
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
    pads, dil = a["conv_pads"], a["dilations"]
    o = conv_out_spatial(tuple(x.shape[2:]), a["kernel"], {"strides": a["strides"], "pads": pads,
                                                           "dilations": dil}, "pool")
    extra = [x.shape[2 + i] - ((o[i] - 1) * a["strides"][i] + dil[i] * (a["kernel"][i] - 1) + 1 - pads[i]
                               - pads[r + i]) for i in range(r)]
    return b.node("ConvTranspose", [gp, kernel_w], hint=node.name + "/scatter", kernel_shape=list(a["kernel"]),
                  strides=list(a["strides"]), pads=list(pads), dilations=list(dil), output_padding=extra)


def _windows(b, node, xname, x, kernel_w, h):
    """Conv of the per-channel input with a kernel over every window (conv_pads geometry)."""
    a = node.attrs
    xr = _per_channel(b, xname, h + "/x", x.rank - 2, x.shape[2:])
    return b.node("Conv", [xr, kernel_w], hint=h + "/windows", kernel_shape=list(a["kernel"]),
                  strides=list(a["strides"]), pads=list(a["conv_pads"]), dilations=list(a["dilations"]))


_POOL_ATTRS = ("kernel", "strides", "pads", "dilations", "ceil_mode", "spatial_rank")


def _pool_kwargs(node):
    out = {k: node.attrs[k] for k in _POOL_ATTRS}
    if "count_include_pad" in node.attrs:
        out["count_include_pad"] = node.attrs["count_include_pad"]
    return out


def _onnx_pool(node):
    a = node.attrs
    out = {"kernel_shape": list(a["kernel"]), "strides": list(a["strides"]), "pads": list(a["pads"])}
    if a["ceil_mode"]:
        out["ceil_mode"] = 1
    if any(d != 1 for d in a["dilations"]):
        out["dilations"] = list(a["dilations"])
    return out


# Move a ReLU that feeds a max pooling past it (see MaxPool.rewrite). Two-conv CNN train
# step, onnxruntime 1.32, interleaved workers: 1.07x on two threads, 1.08x on one; the
# one-conv CNN 1.09x on two.
COMMUTE_RELU = True


@primitive
class MaxPool(Primitive):
    name = "max_pool"

    def shape(self, inputs, attrs):
        _, out = _pool_geometry(inputs, attrs, "max_pool")
        return tuple(inputs[0].shape[:2]) + out

    def vjp(self, node, g, ad):
        # the pooled output rides along: the tiled backward reads the window maxima from it
        return [ad.apply("max_pool_grad", [node.inputs[0], ad.materialize(g, node), node],
                         **_pool_kwargs(node)).sym]

    def rewrite(self, inputs, attrs):
        """max_pool(relu(z)) -> relu(max_pool(z)): the ReLU and its derivative then run on
        the pooled tensor (a quarter of the cells for 2x2 pooling). Exact in floating point,
        since max(relu(a), relu(b)) = relu(max(a, b)) and padded cells never win; the
        gradient too (ties that the ReLU creates lie where its derivative is 0)."""
        x = inputs[0]
        if not COMMUTE_RELU or x.op != "elementwise" or not isinstance(x.expr, sympy.Max) or len(x.expr.args) != 2:
            return None
        a, b = x.expr.args
        inner = b if a == 0 else a if b == 0 else None
        if inner is None:
            return None
        pooled = apply("max_pool", [elementwise(inner)], name=x.name + "/pooled", **dict(attrs))
        return elementwise(sympy.Max(pooled.sym, 0), name=x.name + "/relu_after_pool")

    def emit(self, b, node, ins):
        return b.node("MaxPool", ins, hint=node.name, **_onnx_pool(node))

    def to_sympy(self, node, args):
        return ops.MaxPool.make(args, **{**_pool_kwargs(node), "padding": "explicit"})


@primitive
class MaxPoolGrad(Primitive):
    """max_pool_grad(x, g, y): g routed to the maxima of each window (ties split evenly);
    y = max_pool(x), which the tiled lowering reads instead of pooling again."""

    name = "max_pool_grad"

    def shape(self, inputs, attrs):
        _pool_geometry(inputs, attrs, "max_pool_grad")
        return inputs[0].shape

    def vjp(self, node, g, ad):
        raise SymgradError("second derivatives through max pooling are not supported")

    def emit(self, b, node, ins):
        if USE_TILED_MAX_POOL_GRAD and _tiles(node):
            return _emit_max_pool_grad_tiled(b, node, ins)
        x = node.inputs[0]
        a, h, r = node.attrs, node.name, x.rank - 2
        kernel = a["kernel"]
        taps = int(np.prod(kernel))
        eye = np.eye(taps).reshape((taps, 1) + tuple(kernel))
        eye = b.const(eye, hint=h + "/taps")
        patches = _windows(b, node, ins[0], x, eye, h)                               # (N*C, taps, *out)
        inside = _window_mask(tuple(x.shape[2:]), kernel, a["strides"], a["conv_pads"], a["dilations"])
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


# Max pooling's backward when the windows tile the input (strides == window, no padding:
# the 2x2/2 pooling of nearly every CNN). Every input cell then lies in exactly one window,
# so the window maximum (the forward's output) upsampled by repeating each cell lines up
# with the input: the maxima are one Equal, the ties per window one AveragePool, and g / ties
# is spread back by a second upsampling. Measured for 2x2 windows (onnxruntime 1.31, one
# thread, medians of interleaved runs, x after a ReLU so that tied zeros are common):
# (64,32,11,11) 1.21 ms with SpaceToDepth/DepthToSpace, 0.93 ms here; (64,16,26,26) 3.20
# against 2.55 ms (before the forward's maxima were reused and Resize was replaced).
USE_TILED_MAX_POOL_GRAD = True


def _tiles(node):
    """Windows that tile the input: stride = window, no padding or dilation, and (with
    ceil_mode) no window hanging over the end."""
    a, (x, g, _) = node.attrs, node.inputs
    r = x.rank - 2
    return (tuple(a["strides"]) == tuple(a["kernel"]) and not any(a["pads"]) and not any(a["conv_pads"])
            and all(d == 1 for d in a["dilations"])
            and all(g.shape[2 + i] * a["kernel"][i] <= x.shape[2 + i] for i in range(r)))


def _repeat_cells(b, t, kernel, spatial, h):
    """Nearest-neighbour upsampling of t (N, C, *spatial) by the integer factors ``kernel``:
    each axis, last first, as Unsqueeze + Concat of k copies + Reshape. Exact, and measured
    faster than Resize(mode='nearest') (onnxruntime 1.32, (64,16,13,13) -> 26x26: 288 against
    438 us on one thread, 520 against 837 us on two)."""
    r, size = len(kernel), list(spatial)
    for i in reversed(range(r)):
        if kernel[i] == 1:
            continue
        axis = 2 + i + 1
        one = b.node("Unsqueeze", [t, b.const_i64([axis], hint=h + "/axis")], hint=h + "/cell")
        copies = b.node("Concat", [one] * kernel[i], hint=h + "/copies", axis=axis)
        size[i] *= kernel[i]
        t = b.node("Reshape", [copies, b.const_i64([0, 0] + size, hint=h + "/shape")], hint=h)
    return t


def _emit_max_pool_grad_tiled(b, node, ins):
    x, g, _ = node.inputs
    a, h, r = node.attrs, node.name, x.rank - 2
    kernel, spatial, out = a["kernel"], tuple(x.shape[2:]), tuple(g.shape[2:])
    covered = [o * k for o, k in zip(out, kernel)]
    xin = ins[0]
    if tuple(covered) != spatial:  # floor mode: the last rows and columns belong to no window
        xin = b.node("Slice", [xin, b.const_i64([0] * r), b.const_i64(covered), b.const_i64(list(range(2, r + 2)))],
                     hint=h + "/covered")
    window = {"kernel_shape": list(kernel), "strides": list(kernel)}
    top_up = _repeat_cells(b, ins[2], kernel, out, h + "/max_up")            # the forward's maxima
    hit = b.node("Cast", [b.node("Equal", [xin, top_up], hint=h + "/is_max")], hint=h + "/hit", to=b.float_type)
    share = b.node("AveragePool", [hit], hint=h + "/tie_share", **window)      # ties / taps
    ties = b.node("Mul", [share, b.const(float(np.prod(kernel)), hint=h + "/taps")], hint=h + "/ties")
    per_max = b.node("Div", [ins[1], ties], hint=h + "/per_max")               # g / ties, on the pooled grid
    spread = _repeat_cells(b, per_max, kernel, out, h + "/spread")
    back = b.node("Mul", [hit, spread], hint=h + "/routed")
    if tuple(covered) != spatial:
        pads = [0, 0] + [0] * r + [0, 0] + [s - cv for s, cv in zip(spatial, covered)]
        back = b.node("Pad", [back, b.const_i64(pads)], hint=h + "/uncovered")
    return b.node("Identity", [back], hint=h)


def _counts(node, spatial):
    """The divisor of each window: the input cells it covers, or with count_include_pad
    also the cells of the explicit padding (never ceil_mode's overhang), as onnxruntime
    and PyTorch divide."""
    a, r = node.attrs, len(spatial)
    lo = hi = None
    if a.get("count_include_pad"):
        lo = tuple(-p for p in a["pads"][:r])
        hi = tuple(n + p for n, p in zip(spatial, a["pads"][r:]))
    return _window_mask(spatial, a["kernel"], a["strides"], a["conv_pads"], a["dilations"], lo, hi).sum(axis=0) \
        .astype(float)


@primitive
class AvgPool(Primitive):
    name = "avg_pool"

    def vjp(self, node, g, ad):
        return [ad.apply("avg_pool_grad", [ad.materialize(g, node), node.inputs[0]], **_pool_kwargs(node)).sym]

    def shape(self, inputs, attrs):
        attrs["count_include_pad"] = bool(attrs.get("count_include_pad", False))
        _, out = _pool_geometry(inputs, attrs, "avg_pool")
        return tuple(inputs[0].shape[:2]) + out

    def emit(self, b, node, ins):
        a, x = node.attrs, node.inputs[0]
        if any(d != 1 for d in a["dilations"]) and b.opset < 19:  # AveragePool has dilations from opset 19
            h = node.name
            ones = b.const(np.ones((1, 1) + tuple(a["kernel"])), hint=h + "/window")
            sums = _windows(b, node, ins[0], x, ones, h)
            mean = b.node("Div", [sums, b.const(_counts(node, tuple(x.shape[2:])), hint=h + "/counts")],
                          hint=h + "/mean")
            return _back_to_channels(b, mean, node, h)
        return b.node("AveragePool", ins, hint=node.name, count_include_pad=int(a["count_include_pad"]),
                      **_onnx_pool(node))

    def to_sympy(self, node, args):
        return ops.AvgPool.make(args, **{**_pool_kwargs(node), "padding": "explicit"})


@primitive
class AvgPoolGrad(Primitive):
    """avg_pool_grad(g, like): the adjoint of avg_pool, shaped like the pooled input."""

    name = "avg_pool_grad"

    def shape(self, inputs, attrs):
        attrs["count_include_pad"] = bool(attrs.get("count_include_pad", False))
        _pool_geometry([inputs[1]], attrs, "avg_pool_grad")
        return inputs[1].shape

    def vjp(self, node, v, ad):  # linear: the adjoint of the adjoint is avg_pool itself
        return [ad.apply("avg_pool", [ad.materialize(v, node)], **_pool_kwargs(node)).sym, None]

    def emit(self, b, node, ins):
        g, x = node.inputs
        a, h, r = node.attrs, node.name, x.rank - 2
        counts = _counts(node, tuple(x.shape[2:]))
        scaled = b.node("Div", [ins[0], b.const(counts, hint=h + "/counts")], hint=h + "/mean_share")
        gr = _per_channel(b, scaled, h + "/g", r, g.shape[2:])
        ones = b.const(np.ones((1, 1) + tuple(a["kernel"])), hint=h + "/window")
        return _back_to_channels(b, _scatter_back(b, node, gr, ones, x), x, h)

    def to_sympy(self, node, args):
        return sympy.Function("avg_pool_grad")(*args)


def _global_pool_shape(x, op):
    """(N, C) of a pooling over every spatial axis of x (N, C, *S), S static."""
    if x.rank < 3:
        raise ShapeError(f"{op} expects an input of shape (batch, channels, ...), got {x.shape}")
    static_spatial(x, op)
    return tuple(x.shape[:2])


@primitive
class GlobalAvgPool(Primitive):
    """Mean over every spatial axis: (N, C, *S) -> (N, C)."""

    name = "global_avg_pool"

    def shape(self, inputs, attrs):
        return _global_pool_shape(inputs[0], "global_avg_pool")

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


@primitive
class GlobalMaxPool(Primitive):
    """Max over every spatial axis: (N, C, *S) -> (N, C); ties share the gradient evenly."""

    name = "global_max_pool"

    def shape(self, inputs, attrs):
        return _global_pool_shape(inputs[0], "global_max_pool")

    def vjp(self, node, g, ad):
        x = node.inputs[0]
        axes = tuple(range(2, x.rank))
        top = ad.apply("unsqueeze", [node], axes=axes)
        mask = sympy.Piecewise((1, sympy.Eq(x.sym, top.sym)), (0, True))
        ties = ad.apply("reduce_sum", [ad.ew(mask)], axes=axes, keepdims=True)
        gu = ad.apply("unsqueeze", [ad.materialize(g, node)], axes=axes)
        return [gu.sym * mask / ties.sym]

    def emit(self, b, node, ins):  # ReduceMax rather than GlobalMaxPool: onnxruntime has it for double too
        return b.reduce("ReduceMax", ins[0], range(2, node.inputs[0].rank), False, node.name)

    def to_sympy(self, node, args):
        return ops.GlobalMaxPool.make(args)
