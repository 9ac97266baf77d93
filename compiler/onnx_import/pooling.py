"""MaxPool, AveragePool and the global pools onto the pooling and reduction primitives."""
from .. import ir
from ..errors import ShapeError, SymgradError
from .linalg import apply, auto_pads
from .registry import Sample, translates


def _pool_geometry(ctx, node, x):
    a = ctx.attrs(node)
    kernel = tuple(a["kernel_shape"])
    r = len(kernel)
    strides = tuple(a.get("strides", (1,) * r))
    if any(d != 1 for d in a.get("dilations", (1,) * r)):
        raise SymgradError("pooling with dilations is not supported yet; accepted: dilations of 1")
    spatial = tuple(x.shape[2:])
    if not all(isinstance(d, int) for d in spatial):
        raise ShapeError(f"the spatial dims of {x.shape} must be static")
    pads = list(auto_pads(a.get("auto_pad", "NOTSET"), spatial, kernel, strides, (1,) * r, a.get("pads")))
    if a.get("ceil_mode", 0):
        # ceil mode = more padding at the end (never counted, never the max), except that a
        # window starting in the end padding is dropped (the ONNX and PyTorch rule)
        for i, (n, k, s) in enumerate(zip(spatial, kernel, strides)):
            total = n + pads[i] + pads[r + i]
            out = -(-(total - k) // s) + 1
            if (out - 1) * s >= n + pads[i]:
                out -= 1
            pads[r + i] += max((out - 1) * s + k - total, 0)
    return kernel, strides, tuple(pads)


@translates("MaxPool", note="the max_pool primitive (ceil_mode as extra end padding); backward routes g to the "
                            "window maxima with Conv/ConvTranspose",
            sample=Sample((2, 3, 5, 5), kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 0, 0), ceil_mode=1))
def max_pool(ctx, node):
    x = ctx.value(node.input[0])
    if len(node.output) > 1 and node.output[1]:
        raise SymgradError("MaxPool's Indices output is not supported; accepted: MaxPool with one output")
    kernel, strides, pads = _pool_geometry(ctx, node, x)
    return apply(ctx, "max_pool", [x], kernel=kernel, strides=strides, padding="explicit", pads=pads)


@translates("AveragePool", note="the avg_pool primitive; count_include_pad=1 pads the input with zeros first",
            sample=Sample((2, 3, 5, 5), kernel_shape=(2, 3), strides=(2, 1), pads=(1, 1, 0, 1)))
def average_pool(ctx, node):
    x = ctx.value(node.input[0])
    kernel, strides, pads = _pool_geometry(ctx, node, x)
    r = len(kernel)
    if ctx.attrs(node).get("count_include_pad", 0) and any(pads):
        if ctx.attrs(node).get("ceil_mode", 0):
            raise SymgradError("AveragePool with both ceil_mode and count_include_pad is not supported")
        for i in range(r):
            if pads[i] or pads[r + i]:
                x = apply(ctx, "pad_axis", [x], axis=2 + i, before=pads[i], after=pads[r + i])
        pads = (0,) * (2 * r)
    return apply(ctx, "avg_pool", [x], kernel=kernel, strides=strides, padding="explicit", pads=pads)


@translates("GlobalAveragePool", note="the global_avg_pool primitive", sample=Sample((2, 3, 4, 5)))
def global_average_pool(ctx, node):
    x = ctx.value(node.input[0])
    pooled = apply(ctx, "global_avg_pool", [x])
    return apply(ctx, "unsqueeze", [pooled], axes=tuple(range(2, x.rank)))


@translates("GlobalMaxPool", note="reduce_max over the spatial axes (ties split evenly)",
            sample=Sample((2, 3, 4, 5)))
def global_max_pool(ctx, node):
    x = ctx.value(node.input[0])
    return apply(ctx, "reduce_max", [x], axes=tuple(range(2, x.rank)), keepdims=True)


__all__ = ["ir"]
