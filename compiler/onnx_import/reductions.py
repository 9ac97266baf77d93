"""Reductions onto the reduce_* primitives (kept dims, squeezed when keepdims=0)."""
import numpy as np
import sympy

from .. import ir
from ..errors import SymgradError
from .context import Lazy
from .linalg import apply
from .registry import Sample, translates
from .shape import _axes_input

_OPS = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max",
        "ReduceMin": "reduce_min", "ReduceLogSumExp": "logsumexp"}
_SQUARED = {"ReduceL2": lambda s: sympy.sqrt(s), "ReduceSumSquare": lambda s: s}


def _reduce(ctx, node):
    a = ctx.attrs(node)
    x = ctx.value(node.input[0])
    axes = _axes_input(ctx, node)
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.rank))
    axes = tuple(sorted(ax % x.rank for ax in axes))
    op = node.op_type
    if op in _OPS:
        out = apply(ctx, _OPS[op], [x], axes=axes)
    elif op == "ReduceL1":
        out = apply(ctx, "reduce_sum", [ir.elementwise(sympy.Abs(x.sym))], axes=axes)
    elif op == "ReduceLogSum":
        out = ir.elementwise(sympy.log(apply(ctx, "reduce_sum", [x], axes=axes).sym))
    else:
        s = apply(ctx, "reduce_sum", [ir.elementwise(x.sym ** 2)], axes=axes)
        out = ir.elementwise(_SQUARED[op](s.sym))
    if not a.get("keepdims", 1):
        out = apply(ctx, "squeeze", [out], axes=axes)
    return out


for _op in list(_OPS) + ["ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum"]:
    translates(_op, note=f"the {_OPS.get(_op, 'reduce_sum')} primitive" + ("" if _op in _OPS else " over sympy"),
               sample=Sample((2, 3, 4), np.array([1]), keepdims=0,
                             **({"low": 0.2, "high": 1.5} if _op == "ReduceLogSum" else {}))
               if _op == "ReduceSum" else
               Sample((2, 3, 4), axes=(1,), keepdims=0,
                      **({"low": 0.2, "high": 1.5} if _op == "ReduceLogSum" else {})))(_reduce)


@translates("CumSum", note="a MatMul with a constant triangular matrix along the axis (exclusive, reverse); its "
                           "adjoint is the transposed matrix",
            sample=[Sample((2, 4, 3), np.array(1)), Sample((2, 4, 3), np.array(-1), exclusive=1, reverse=1)])
def cumsum(ctx, node):
    a = ctx.attrs(node)
    x = ctx.value(node.input[0])
    axis = int(np.asarray(ctx.const(node.input[1], "axis")).reshape(())) % x.rank
    n = x.shape[axis]
    if not isinstance(n, int):
        raise SymgradError("CumSum along the batch axis is not supported")
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")      # out[j] = sum_i x[i] * m[i, j]
    keep = (i >= j) if a.get("reverse", 0) else (i <= j)
    if a.get("exclusive", 0):
        keep &= i != j
    r = x.rank
    last = apply(ctx, "transpose", [x], perm=tuple(k for k in range(r) if k != axis) + (axis,)) \
        if axis != r - 1 else x
    out = apply(ctx, "matmul", [last, ir.const_value(keep.astype(np.float64), name=(node.name or "cumsum") + "/tri")])
    if axis != r - 1:
        out = apply(ctx, "transpose", [out], perm=tuple(range(axis)) + (r - 1,) + tuple(range(axis, r - 1)))
    return out


@translates("LpNormalization", note="x / (sum |x|^p)^(1/p) over the axis, p 1 or 2: sympy over reduce_sum",
            sample=[Sample((2, 3, 4), axis=1, p=2), Sample((2, 3, 4), axis=-1, p=1, low=0.2, high=1.5)])
def lp_normalization(ctx, node):
    a = ctx.attrs(node)
    x = ctx.value(node.input[0])
    axis, p = a.get("axis", -1) % x.rank, a.get("p", 2)
    if p not in (1, 2):
        raise SymgradError(f"LpNormalization with p={p}; accepted: 1 or 2")
    inner = sympy.Abs(x.sym) if p == 1 else x.sym ** 2
    s = apply(ctx, "reduce_sum", [ir.elementwise(inner)], axes=(axis,))
    return Lazy(x.sym / (s.sym if p == 1 else sympy.sqrt(s.sym)), x.shape)
