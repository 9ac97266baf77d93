"""Reductions onto the reduce_* primitives (kept dims, squeezed when keepdims=0)."""
import numpy as np
import sympy

from .. import ir
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
