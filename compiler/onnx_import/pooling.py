"""MaxPool, AveragePool and the global pools onto the shared pooling functions of
compiler/ops_nn.py and compiler/ops_tensor.py (ceil_mode, dilations, count_include_pad)."""
from .. import ops_nn, ops_tensor
from ..errors import ShapeError, SymgradError
from .linalg import apply, auto_pads
from .registry import Sample, translates
from .structural import build


def _pool_args(ctx, node, x):
    a = ctx.attrs(node)
    kernel = tuple(a["kernel_shape"])
    r = len(kernel)
    strides = tuple(a.get("strides", (1,) * r))
    dilations = tuple(a.get("dilations", (1,) * r))
    spatial = tuple(x.shape[2:])
    if not all(isinstance(d, int) for d in spatial):
        raise ShapeError(f"the spatial dims of {x.shape} must be static")
    pads = auto_pads(a.get("auto_pad", "NOTSET"), spatial, kernel, strides, dilations, a.get("pads"))
    return dict(pool_size=kernel, strides=strides, padding=tuple(pads), dilations=dilations,
                ceil_mode=bool(a.get("ceil_mode", 0)))


@translates("MaxPool", note="ops_nn.max_pool (ceil_mode, dilations, pads); backward routes g to the window maxima",
            sample=Sample((2, 3, 6, 6), kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 0, 0), ceil_mode=1,
                          dilations=(1, 2)))
def max_pool(ctx, node):
    x = ctx.value(node.input[0])
    if len(node.output) > 1 and node.output[1]:
        raise SymgradError("MaxPool's Indices output is not supported; accepted: MaxPool with one output")
    return build(ctx, ops_nn.max_pool(x.sym, **_pool_args(ctx, node, x)))


@translates("AveragePool", note="ops_nn.avg_pool (count_include_pad, ceil_mode, pads)",
            sample=Sample((2, 3, 5, 5), kernel_shape=(2, 3), strides=(2, 1), pads=(1, 1, 0, 1), count_include_pad=1))
def average_pool(ctx, node):
    x = ctx.value(node.input[0])
    return build(ctx, ops_nn.avg_pool(x.sym, count_include_pad=bool(ctx.attrs(node).get("count_include_pad", 0)),
                                      **_pool_args(ctx, node, x)))


@translates("GlobalAveragePool", note="the global_avg_pool primitive", sample=Sample((2, 3, 4, 5)))
def global_average_pool(ctx, node):
    x = ctx.value(node.input[0])
    pooled = apply(ctx, "global_avg_pool", [x])
    return apply(ctx, "unsqueeze", [pooled], axes=tuple(range(2, x.rank)))


@translates("GlobalMaxPool", note="ops_tensor.global_max_pool (ties split evenly)", sample=Sample((2, 3, 4, 5)))
def global_max_pool(ctx, node):
    x = ctx.value(node.input[0])
    pooled = build(ctx, ops_tensor.global_max_pool(x.sym))
    return apply(ctx, "unsqueeze", [pooled], axes=tuple(range(2, x.rank)))
