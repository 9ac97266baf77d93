"""Convolution and its two adjoints. The family is closed under differentiation:

    conv(x, w)             -> dx = conv_transpose(g, w),   dw = conv_grad_weight(x, g)
    conv_transpose(g, w)   -> dg = conv(v, w),             dw = conv_grad_weight(v, g)
    conv_grad_weight(x, g) -> dx = conv_transpose(g, v),   dg = conv(x, v)

Layout is ONNX's (and PyTorch's): x (N, C, *spatial), w (M, C/group, *kernel). The
weight gradient is itself a Conv with the roles swapped: the batch becomes the channel
axis, strides and dilations trade places.
"""
import numpy as np
import sympy

from .. import ops
from ..errors import ShapeError
from ..ir import Primitive, primitive


def out_size(n, k, s, d, pb, pe):
    return (n + pb + pe - d * (k - 1) - 1) // s + 1


def _per_dim(vals, r, what, op):
    vals = tuple(int(v) for v in vals)
    if len(vals) == 1:
        return vals * r
    if len(vals) != r:
        raise ShapeError(f"{op}: {what} {vals} has {len(vals)} entries; the input has {r} spatial dims")
    return vals


def static_spatial(x, op):
    sp = tuple(x.shape[2:])
    if not all(isinstance(d, int) for d in sp):
        raise ShapeError(f"{op}: spatial dims must be static, got input shape {x.shape}")
    return sp


def resolve_pads(mode, pads, spatial, kernel, strides, dilations, op):
    """Explicit ONNX pads (begins then ends) for 'valid' | 'same' | 'causal' | 'explicit'."""
    r = len(spatial)
    if mode == "valid":
        return (0,) * (2 * r)
    if mode == "causal":  # Keras Conv1D: left padding only, output as long as the input
        if r != 1:
            raise ShapeError(f"{op}: padding 'causal' is for 1-d convolutions, the input has {r} spatial dims")
        return ((kernel[0] - 1) * dilations[0], 0)
    if mode == "same":  # TensorFlow's rule: the odd pixel of padding goes at the end
        begins, ends = [], []
        for n, k, s, d in zip(spatial, kernel, strides, dilations):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            begins.append(total // 2)
            ends.append(total - total // 2)
        return tuple(begins + ends)
    pads = tuple(int(p) for p in pads)
    if len(pads) == 1:
        return pads * (2 * r)
    if len(pads) == r:
        return pads + pads
    if len(pads) == 2 * r:
        return pads
    raise ShapeError(f"{op}: padding {pads} must have 1, {r} or {2 * r} entries for {r} spatial dims")


def geometry(attrs, spatial, kernel, op):
    """Normalise strides / pads / dilations against the spatial rank; returns the attrs."""
    r = len(spatial)
    strides = _per_dim(attrs.get("strides", (1,)), r, "strides", op)
    dilations = _per_dim(attrs.get("dilations", (1,)), r, "dilations", op)
    pads = resolve_pads(attrs.get("padding", "explicit"), attrs.get("pads", (0,)), spatial, kernel,
                        strides, dilations, op)
    return {"strides": strides, "pads": pads, "dilations": dilations, "group": int(attrs.get("group", 1)),
            "padding": "explicit"}


def conv_out_spatial(spatial, kernel, g, op, what="kernel"):
    r = len(spatial)
    out = tuple(out_size(spatial[i], kernel[i], g["strides"][i], g["dilations"][i], g["pads"][i], g["pads"][r + i])
                for i in range(r))
    if any(o < 1 for o in out):
        dil = f" (dilation {tuple(g['dilations'])})" if any(d != 1 for d in g["dilations"]) else ""
        raise ShapeError(f"{op}: the {what} {tuple(kernel)}{dil} does not fit the input {tuple(spatial)} "
                         f"padded by {tuple(g['pads'])}; accepted: a {what} no larger than the padded input")
    return out


def _geom_kwargs(node):
    return {k: node.attrs[k] for k in ("strides", "pads", "dilations", "group")}


def _onnx_geom(node):
    return {"strides": list(node.attrs["strides"]), "pads": list(node.attrs["pads"]),
            "dilations": list(node.attrs["dilations"]), "group": node.attrs["group"]}


def _check_channels(op, c_in, w, group):
    m, cg = w.shape[0], w.shape[1]
    if not (isinstance(m, int) and isinstance(cg, int)):
        raise ShapeError(f"{op}: the kernel shape must be static, got {w.shape}")
    if m % group:
        raise ShapeError(f"{op}: {m} output channels are not divisible by groups={group}")
    if isinstance(c_in, int) and c_in != cg * group:
        raise ShapeError(f"{op}: the input has {c_in} channels but the kernel {w.shape} expects "
                         f"{cg} x groups={group} = {cg * group}")


def _bias_grad(node, g, ad):
    """[d bias] of a conv or conv_transpose with a bias input (g summed over batch and
    space), else []."""
    if len(node.inputs) != 3:
        return []
    axes = (0,) + tuple(range(2, node.rank))
    return [ad.apply("squeeze", [ad.apply("reduce_sum", [g], axes=axes)], axes=axes).sym]


@primitive
class Conv(Primitive):
    """conv(x, w[, b]): attrs strides, padding ('valid'|'same'|'causal'|'explicit'), pads,
    dilations, group, spatial_rank (0 = any)."""

    name = "conv"

    def shape(self, inputs, attrs):
        x, w = inputs[0], inputs[1]
        r = x.rank - 2
        want = int(attrs.get("spatial_rank", 0) or 0)
        op = f"conv{want}d" if want else "conv"
        if r < 1 or (want and r != want):
            layout = {1: "(batch, channels, length)", 2: "(batch, channels, height, width)"}.get(want, "(N, C, ...)")
            raise ShapeError(f"{op} expects an input of shape {layout}, got {x.shape}")
        if w.rank != r + 2:
            raise ShapeError(f"{op}: the kernel must have rank {r + 2} (out, in/groups, *kernel), got {w.shape}")
        spatial, kernel = static_spatial(x, op), tuple(w.shape[2:])
        g = geometry(attrs, spatial, kernel, op)
        _check_channels(op, x.shape[1], w, g["group"])
        if len(inputs) == 3 and tuple(inputs[2].shape) != (w.shape[0],):
            raise ShapeError(f"{op}: the bias must have shape ({w.shape[0]},), got {inputs[2].shape}")
        attrs.update(g)
        attrs["spatial_rank"] = r
        return (x.shape[0], w.shape[0]) + conv_out_spatial(spatial, kernel, g, op)

    def vjp(self, node, g, ad):
        x, w = node.inputs[0], node.inputs[1]
        gv = ad.materialize(g, node)
        geo = _geom_kwargs(node)
        dx = ad.apply("conv_transpose", [gv, w], out_spatial=tuple(x.shape[2:]), **geo)
        dw = ad.apply("conv_grad_weight", [x, gv], kernel=tuple(w.shape[2:]), **geo)
        return [dx.sym, dw.sym] + _bias_grad(node, gv, ad)

    def emit(self, b, node, ins):
        return b.node("Conv", ins, hint=node.name, kernel_shape=list(node.inputs[1].shape[2:]), **_onnx_geom(node))

    def to_sympy(self, node, args):
        return ops.Conv.make(args, strides=node.attrs["strides"], padding="explicit", pads=node.attrs["pads"],
                             dilations=node.attrs["dilations"], group=node.attrs["group"],
                             spatial_rank=node.attrs["spatial_rank"])


def transpose_out_spatial(spatial, kernel, strides, pads, dilations, output_padding):
    """ONNX ConvTranspose's output size: (i - 1) s - pads + d (k - 1) + 1 + output_padding."""
    r = len(spatial)
    return tuple((spatial[i] - 1) * strides[i] - pads[i] - pads[r + i] + dilations[i] * (kernel[i] - 1) + 1
                 + output_padding[i] for i in range(r))


@primitive
class ConvTranspose(Primitive):
    """conv_transpose(x, w[, b]): the adjoint of conv with respect to its input, and ONNX's
    ConvTranspose. w (C_in, C_out/group, *kernel) is the kernel of the conv it undoes; the
    output spatial size is ``out_spatial`` when given (the conv's input, for its VJP), else
    it follows from ``output_padding`` (each < its stride) as in ONNX."""

    name = "conv_transpose"

    def shape(self, inputs, attrs):
        g, w = inputs[0], inputs[1]
        r = g.rank - 2
        if r < 1 or w.rank != r + 2:
            raise ShapeError(f"conv_transpose expects an input (N, C, *spatial) and a kernel (C, out/groups, "
                             f"*kernel) of the same rank, got {g.shape} and {w.shape}")
        kernel = tuple(w.shape[2:])
        if attrs.get("out_spatial"):
            out_spatial = tuple(attrs["out_spatial"])
        else:
            spatial = static_spatial(g, "conv_transpose")
            strides = _per_dim(attrs.get("strides", (1,)), r, "strides", "conv_transpose")
            dilations = _per_dim(attrs.get("dilations", (1,)), r, "dilations", "conv_transpose")
            pads = resolve_pads("explicit", attrs.get("pads", (0,)), spatial, kernel, strides, dilations,
                                "conv_transpose")
            extra = _per_dim(attrs.get("output_padding", (0,)), r, "output_padding", "conv_transpose")
            if any(not 0 <= e < max(s, d) for e, s, d in zip(extra, strides, dilations)):
                raise ShapeError(f"conv_transpose: output_padding {extra} must be non-negative and smaller than "
                                 f"the stride {strides} or the dilation {dilations}")
            out_spatial = transpose_out_spatial(spatial, kernel, strides, pads, dilations, extra)
            if any(o < 1 for o in out_spatial):
                raise ShapeError(f"conv_transpose: pads {pads} leave no output for input {g.shape}")
            attrs.update(strides=strides, dilations=dilations, pads=pads)
        attrs.pop("output_padding", None)
        geo = geometry(attrs, out_spatial, kernel, "conv_transpose")
        _check_channels("conv_transpose", None, w, 1)
        if g.shape[1] != w.shape[0]:
            raise ShapeError(f"conv_transpose: the input has {g.shape[1]} channels but the kernel {w.shape} takes "
                             f"{w.shape[0]}")
        if w.shape[0] % geo["group"]:
            raise ShapeError(f"conv_transpose: {w.shape[0]} input channels are not divisible by groups={geo['group']}")
        if tuple(g.shape[2:]) != conv_out_spatial(out_spatial, kernel, geo, "conv_transpose"):
            raise ShapeError(f"conv_transpose: {g.shape} is not the conv output of spatial size {out_spatial}")
        c_out = w.shape[1] * geo["group"]
        if len(inputs) == 3 and tuple(inputs[2].shape) != (c_out,):
            raise ShapeError(f"conv_transpose: the bias must have shape ({c_out},), got {inputs[2].shape}")
        attrs.update(geo)
        attrs["out_spatial"] = out_spatial
        return (g.shape[0], c_out) + out_spatial

    def vjp(self, node, v, ad):
        g, w = node.inputs[0], node.inputs[1]
        vv = ad.materialize(v, node)
        geo = _geom_kwargs(node)
        dg = ad.apply("conv", [vv, w], **geo)
        dw = ad.apply("conv_grad_weight", [vv, g], kernel=tuple(w.shape[2:]), **geo)
        return [dg.sym, dw.sym] + _bias_grad(node, vv, ad)

    def emit(self, b, node, ins):
        g, w = node.inputs[0], node.inputs[1]
        a, r = node.attrs, len(node.attrs["out_spatial"])
        # the rows of the input that no output window reached come back as output_padding
        extra = [a["out_spatial"][i] - ((g.shape[2 + i] - 1) * a["strides"][i] + (w.shape[2 + i] - 1)
                                        * a["dilations"][i] + 1 - a["pads"][i] - a["pads"][r + i])
                 for i in range(r)]
        return b.node("ConvTranspose", ins, hint=node.name, kernel_shape=list(w.shape[2:]),
                      output_padding=extra, **_onnx_geom(node))

    def to_sympy(self, node, args):
        return ops.ConvTranspose.make(args, strides=node.attrs["strides"], pads=node.attrs["pads"],
                                      dilations=node.attrs["dilations"], group=node.attrs["group"],
                                      output_padding=(0,), out_spatial=node.attrs["out_spatial"])


@primitive
class ConvGradWeight(Primitive):
    """d conv / d w contracted with g: conv_grad_weight(x, g) has the kernel's shape."""

    name = "conv_grad_weight"

    def shape(self, inputs, attrs):
        x, g = inputs
        kernel = tuple(attrs["kernel"])
        spatial = static_spatial(x, "conv_grad_weight")
        geo = geometry(attrs, spatial, kernel, "conv_grad_weight")
        group, c = geo["group"], x.shape[1]
        if not isinstance(c, int) or c % group:
            raise ShapeError(f"conv_grad_weight: {c} input channels are not divisible by groups={group}")
        attrs.update(geo)
        return (g.shape[1], c // group) + kernel

    def vjp(self, node, v, ad):
        x, g = node.inputs
        vv = ad.materialize(v, node)
        geo = _geom_kwargs(node)
        dx = ad.apply("conv_transpose", [g, vv], out_spatial=tuple(x.shape[2:]), **geo)
        dg = ad.apply("conv", [x, vv], **geo)
        return [dx.sym, dg.sym]

    def emit(self, b, node, ins):
        x, g = node.inputs
        lowering = weight_grad_lowering(x, g, node.attrs)
        if lowering == "per_tap":
            return _emit_weight_grad_per_tap(b, node, ins)
        if lowering == "im2col":
            return _emit_weight_grad_im2col(b, node, ins)
        return _emit_weight_grad_correlation(b, node, ins)

    def to_sympy(self, node, args):
        return sympy.Function("conv_grad_weight")(*args)


def _emit_weight_grad_correlation(b, node, ins):
    """dW as one Conv over swapped axes: the batch becomes the channel axis and g the kernel."""
    x, g = node.inputs
    a, h = node.attrs, node.name
    r = x.rank - 2
    kernel = a["kernel"]
    swap = [1, 0] + list(range(2, r + 2))
    xt = b.node("Transpose", [ins[0]], hint=h + "/x_t", perm=swap)      # (C, N, *S)
    gt = b.node("Transpose", [ins[1]], hint=h + "/g_t", perm=swap)      # (M, N, *O) as the kernel
    out = b.node("Conv", [xt, gt], hint=h + "/corr", kernel_shape=list(g.shape[2:]),
                 strides=list(a["dilations"]), dilations=list(a["strides"]), pads=list(a["pads"]))
    full = [out_size(x.shape[2 + i], g.shape[2 + i], a["dilations"][i], a["strides"][i], a["pads"][i],
                     a["pads"][r + i]) for i in range(r)]
    if tuple(full) != tuple(kernel):  # rows past the last window: cut to the kernel size
        out = b.node("Slice", [out, b.const_i64([0] * r), b.const_i64(list(kernel)),
                               b.const_i64(list(range(2, r + 2)))], hint=h + "/crop")
    group, c, m = a["group"], x.shape[1], g.shape[1]
    if group > 1:  # keep the block diagonal: input channel block k pairs with output block k
        cg = c // group
        out = b.node("Reshape", [out, b.const_i64([group, cg, m] + list(kernel))], hint=h + "/blocks")
        mask = np.zeros((group, 1, m) + (1,) * r)
        for k in range(group):
            mask[k, 0, k * (m // group):(k + 1) * (m // group)] = 1.0
        out = b.node("Mul", [out, b.const(mask, hint=h + "/block_mask")], hint=h + "/masked")
        out = b.reduce("ReduceSum", out, (0,), False, h + "/diag")
    return b.node("Transpose", [out], hint=h, perm=swap)


# Which weight-gradient lowering to emit. Without groups, one MatMul per kernel tap
# (per_tap): no patch matrix is built at all. Measured with onnxruntime 1.32 on one thread
# (medians of interleaved runs of the dW subgraph alone, batch 64, 3x3 kernels):
#     x (64,16,13,13), M=32: im2col 1536 us, per_tap  998 us (1.54x), correlation 2661 us
#     x (64,1,28,28),  M=16: im2col  681 us, per_tap  584 us (1.17x), correlation  789 us
# With groups, im2col or the correlation Conv. The correlation Conv hands onnxruntime a "kernel"
# as large as the whole feature map; im2col turns dW into one well-shaped MatMul
# (K = N * output pixels). Measured with onnxruntime 1.32 on one thread (process CPU time,
# medians of interleaved runs of the dW subgraph alone, batch 64, 3x3 kernels):
#     x (64,1,28,28),  M=8:  correlation  783 us, im2col  636 us (1.23x)
#     x (64,1,28,28),  M=16: correlation  977 us, im2col  885 us (1.10x)
#     x (64,16,13,13), M=32: correlation 2944 us, im2col 2688 us (1.10x)
#     x (64,32,14,14), M=64: correlation 11366 us, im2col 10704 us (1.06x)
# im2col materialises the patches (prod(kernel) copies of the input), so past
# IM2COL_MAX_PATCH_ELEMENTS per sample it falls back to the correlation Conv.
IM2COL_MAX_PATCH_ELEMENTS = 1 << 20
USE_PER_TAP_WEIGHT_GRAD = True


def weight_grad_lowering(x, g, attrs):
    """'per_tap', 'im2col' or 'correlation' for conv_grad_weight(x, g) (see the measurements
    above)."""
    if attrs["group"] == 1 and USE_PER_TAP_WEIGHT_GRAD:
        return "per_tap"
    kernel = tuple(attrs["kernel"])
    patch = int(np.prod(g.shape[2:])) * int(x.shape[1]) * int(np.prod(kernel))
    return "im2col" if patch <= IM2COL_MAX_PATCH_ELEMENTS else "correlation"


def _nhwc_windows(b, node, xin, h):
    """x (N, C, *S) padded and moved channels-last, and for each kernel tap the window of
    input cells it meets at every output position: a list of (N, *O, C) Slices."""
    x, g = node.inputs
    a, r = node.attrs, x.rank - 2
    kernel, strides, dilations, pads = a["kernel"], a["strides"], a["dilations"], a["pads"]
    out = tuple(g.shape[2:])
    if any(pads):
        xin = b.node("Pad", [xin, b.const_i64([0, 0] + list(pads[:r]) + [0, 0] + list(pads[r:]), hint=h + "/pads")],
                     hint=h + "/padded")
    xt = b.node("Transpose", [xin], hint=h + "/x_nhwc", perm=[0] + list(range(2, r + 2)) + [1])   # (N, *S, C)
    axes = b.const_i64(list(range(1, r + 1)), hint=h + "/spatial_axes")
    steps = b.const_i64(list(strides), hint=h + "/strides")
    windows = []
    for tap in np.ndindex(*kernel):
        begin = [t * d for t, d in zip(tap, dilations)]
        end = [s0 + (o - 1) * s + 1 for s0, o, s in zip(begin, out, strides)]
        windows.append(b.node("Slice", [xt, b.const_i64(begin, hint=h + "/begin"), b.const_i64(end, hint=h + "/end"),
                                        axes, steps], hint=h + "/tap"))                     # (N, *O, C)
    return windows


def _emit_weight_grad_per_tap(b, node, ins):
    """dW[:, :, tap] = g as (M, N*P) @ that tap's window as (N*P, C): one MatMul per tap,
    stacked on a last axis (group 1 only)."""
    x, g = node.inputs
    a, h, r = node.attrs, node.name, x.rank - 2
    c, m = x.shape[1], g.shape[1]
    rows = b.node("Reshape", [b.node("Transpose", [ins[1]], hint=h + "/g_t", perm=[1, 0] + list(range(2, r + 2))),
                              b.const_i64([m, -1])], hint=h + "/rows")                       # (M, N*P)
    flat, last = b.const_i64([-1, c], hint=h + "/cols_shape"), b.const_i64([2], hint=h + "/tap_axis")
    per_tap = []
    for window in _nhwc_windows(b, node, ins[0], h):
        cols = b.node("Reshape", [window, flat], hint=h + "/cols")                          # (N*P, C)
        dw = b.node("MatMul", [rows, cols], hint=h + "/matmul")                               # (M, C)
        per_tap.append(b.node("Unsqueeze", [dw, last], hint=h + "/tap_dw"))
    stacked = per_tap[0] if len(per_tap) == 1 else b.node("Concat", per_tap, hint=h + "/taps", axis=2)
    return b.node("Reshape", [stacked, b.const_i64([m, c] + list(a["kernel"]))], hint=h)


def _emit_weight_grad_im2col(b, node, ins):
    """dW[m, c, k] = sum over batch and output pixels p of g[n, m, p] * x_padded[n, c, p*s + k*d].

    The patches are cut channels-last, (N, *O, C, taps), so that their flattening is already
    (N*P, C*taps) and only x and g (not the patches) are transposed; dW is then one MatMul
    per group: (M/G, N*P) @ (N*P, C/G*taps)."""
    x, g = node.inputs
    a, h = node.attrs, node.name
    r = x.rank - 2
    group, c, m = a["group"], x.shape[1], g.shape[1]
    out = tuple(g.shape[2:])
    taps = int(np.prod(a["kernel"]))
    tap_axis = b.const_i64([r + 2], hint=h + "/tap_axis")
    cut = [b.node("Unsqueeze", [window, tap_axis], hint=h + "/tap1") for window in _nhwc_windows(b, node, ins[0], h)]
    patches = cut[0] if taps == 1 else b.node("Concat", cut, hint=h + "/patches", axis=r + 2)  # (N, *O, C, taps)
    cg, mg = c // group, m // group
    gperm = [1, 0] + list(range(2, r + 2))
    if group == 1:
        cols = b.node("Reshape", [patches, b.const_i64([-1, c * taps])], hint=h + "/cols")       # (N*P, C*taps)
        rows = b.node("Reshape", [b.node("Transpose", [ins[1]], hint=h + "/g_t", perm=gperm),
                                  b.const_i64([m, -1])], hint=h + "/rows")                       # (M, N*P)
    else:
        cols = b.node("Reshape", [patches, b.const_i64([-1, group, cg * taps])], hint=h + "/cols_g")
        cols = b.node("Transpose", [cols], hint=h + "/cols", perm=[1, 0, 2])                    # (G, N*P, Cg*taps)
        gg = b.node("Reshape", [ins[1], b.const_i64([-1, group, mg, int(np.prod(out))])], hint=h + "/g_g")
        gg = b.node("Transpose", [gg], hint=h + "/g_t", perm=[1, 2, 0, 3])                      # (G, Mg, N, P)
        rows = b.node("Reshape", [gg, b.const_i64([group, mg, -1])], hint=h + "/rows")          # (G, Mg, N*P)
    dw = b.node("MatMul", [rows, cols], hint=h + "/matmul")
    return b.node("Reshape", [dw, b.const_i64([m, cg] + list(a["kernel"]))], hint=h)
