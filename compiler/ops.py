"""The tensor vocabulary: functions that keep per-sample and per-class structure.

Each is an unevaluated sympy ``Function`` so that a loss or a layer stays one sympy
expression (printable, LaTeX-able); the graph builder turns every application into a
structural IR node and everything between them into fused elementwise nodes.
Reductions keep the reduced axes (size 1) so results broadcast back against their input.

Users call the lowercase helpers: ``sum(x, axis=-1)``, ``softmax(x)``, ``matmul(x, w)``...
"""
import builtins

import sympy
from sympy import Function, Integer, Tuple

from .errors import ExpressionError
from .functions import sigmoid, softplus, logcosh  # noqa: F401  (part of the vocabulary)


class TensorFunction(Function):
    """Base of every structural function. ``ir_op`` names its IR op and VJP rule."""

    is_real = True
    ir_op = None
    n_tensor_args = 1  # leading args that are tensors; the rest are static attributes

    @classmethod
    def eval(cls, *args):
        return None  # never evaluate: the structure is what the compiler needs

    def tensor_args(self):
        return self.args[: self.n_tensor_args]

    def ir_attrs(self):
        """Static attributes of the IR node this application becomes."""
        return {}

    def static_args(self):
        return self.args[self.n_tensor_args:]

    def _latex(self, printer, exp=None):
        name = type(self).latex_name if hasattr(type(self), "latex_name") else type(self).__name__
        parts = [printer._print(a) for a in self.tensor_args()]
        sub = ",".join(str(a) for a in self.static_args())
        sub = "_{%s}" % sub if sub else ""
        return _latex_power(r"\operatorname{%s}%s\left(%s\right)" % (name, sub, ", ".join(parts)), exp)

    def _sympystr(self, printer):
        parts = [printer._print(a) for a in self.tensor_args()]
        kw = self._static_kwargs()
        parts += [f"{k}={v}" for k, v in kw.items()]
        return f"{self.user_name}({', '.join(parts)})"

    def _static_kwargs(self):
        return {f"arg{i}": a for i, a in enumerate(self.static_args())}

    def fdiff(self, argindex=1):  # sympy.diff must never silently treat us as scalar
        raise ExpressionError(
            f"{self.user_name}() is a tensor function; differentiate through the compiler "
            "(Loss.gradient_expression) rather than sympy.diff"
        )


def _latex_power(tex, exp):
    # sympy's LaTeX printer hands a Function's power to its _latex as ``exp``
    return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)


class _AxisFunction(TensorFunction):
    """f(x, axes): axes is a sympy Tuple of ints (empty = every axis)."""

    def _static_kwargs(self):
        axes = tuple(int(a) for a in self.args[1])
        return {"axis": axes[0] if len(axes) == 1 else (axes if axes else None)}

    @property
    def axes(self):
        return tuple(int(a) for a in self.args[1])

    def ir_attrs(self):
        return {"axes": self.axes}

    def _latex(self, printer, exp=None):
        ax = ",".join(str(a) for a in self.axes) or "*"
        return _latex_power(r"\operatorname{%s}_{%s}\left(%s\right)" % (self.latex_name, ax, printer._print(self.args[0])),
                            exp)


class ReduceSum(_AxisFunction):
    ir_op, user_name, latex_name = "reduce_sum", "sum", "sum"


class ReduceMean(_AxisFunction):
    ir_op, user_name, latex_name = "reduce_mean", "mean", "mean"


class ReduceMax(_AxisFunction):
    ir_op, user_name, latex_name = "reduce_max", "max", "max"


class ReduceMin(_AxisFunction):
    ir_op, user_name, latex_name = "reduce_min", "min", "min"


class LogSumExp(_AxisFunction):
    ir_op, user_name, latex_name = "logsumexp", "logsumexp", "logsumexp"


class Softmax(_AxisFunction):
    ir_op, user_name, latex_name = "softmax", "softmax", "softmax"


class LogSoftmax(_AxisFunction):
    ir_op, user_name, latex_name = "log_softmax", "log_softmax", "log\\,softmax"


class OneHot(TensorFunction):
    """one_hot(labels, like): labels (integer-valued) against the last axis of ``like``."""

    ir_op, user_name, latex_name = "one_hot", "one_hot", "onehot"
    n_tensor_args = 2

    def _latex(self, printer, exp=None):
        return _latex_power(r"\operatorname{onehot}\left(%s\right)" % printer._print(self.args[0]), exp)


class MatMul(TensorFunction):
    ir_op, user_name, latex_name = "matmul", "matmul", "matmul"
    n_tensor_args = 2

    def _latex(self, printer, exp=None):
        return _latex_power(r"\left(%s\right) \cdot \left(%s\right)" % (printer._print(self.args[0]),
                                                                         printer._print(self.args[1])), exp)


def _axes(axis):
    if axis is None:
        return Tuple()
    if isinstance(axis, (builtins.list, builtins.tuple, Tuple)):
        return Tuple(*[Integer(int(a)) for a in axis])
    try:
        return Tuple(Integer(int(axis)))
    except (TypeError, ValueError):
        raise ExpressionError(f"axis must be an integer, a tuple of integers or None, not {axis!r}") from None


def sum(x, axis=-1):  # noqa: A001 - the vocabulary uses the user's word
    """Sum over ``axis`` (keeping it, size 1). ``axis=None`` sums every axis."""
    return ReduceSum(sympy.sympify(x), _axes(axis))


def mean(x, axis=-1):
    return ReduceMean(sympy.sympify(x), _axes(axis))


def max(x, axis=-1):  # noqa: A001
    return ReduceMax(sympy.sympify(x), _axes(axis))


def min(x, axis=-1):  # noqa: A001
    return ReduceMin(sympy.sympify(x), _axes(axis))


def logsumexp(x, axis=-1):
    return LogSumExp(sympy.sympify(x), _axes(axis))


def softmax(x, axis=-1):
    return Softmax(sympy.sympify(x), _axes(axis))


def log_softmax(x, axis=-1):
    return LogSoftmax(sympy.sympify(x), _axes(axis))


def dot(a, b, axis=-1):
    """Inner product over ``axis`` (kept): sum(a * b, axis)."""
    return ReduceSum(sympy.sympify(a) * sympy.sympify(b), _axes(axis))


def norm(x, axis=-1, ord=2):
    """The p-norm over ``axis`` (kept): sum(|x|^p)^(1/p); p = 2 uses x**2."""
    x = sympy.sympify(x)
    p = sympy.sympify(ord)
    if p == 2:
        return sympy.sqrt(ReduceSum(x ** 2, _axes(axis)))
    if p == 1:
        return ReduceSum(sympy.Abs(x), _axes(axis))
    return ReduceSum(sympy.Abs(x) ** p, _axes(axis)) ** (1 / p)


def one_hot(labels, like):
    """Dense one-hot of integer ``labels`` with as many classes as the last axis of ``like``."""
    return OneHot(sympy.sympify(labels), sympy.sympify(like))


def matmul(a, b):
    return MatMul(sympy.sympify(a), sympy.sympify(b))


def relu(x):
    return sympy.Max(x, 0)


def clip(x, lo, hi):
    return sympy.Min(sympy.Max(x, lo), hi)


def where(cond, a, b):
    return sympy.Piecewise((a, cond), (b, True))


# name -> constructor, for the expression parser
TENSOR_FUNCTIONS = {
    "sum": sum, "mean": mean, "max": max, "min": min, "logsumexp": logsumexp,
    "softmax": softmax, "log_softmax": log_softmax, "dot": dot, "norm": norm,
    "one_hot": one_hot, "matmul": matmul,
}


# the layers' vocabulary (conv, pooling, gather, concat, reshape: ops_nn.py), re-exported here
from .ops_nn import (  # noqa: E402,F401
    Conv, MaxPool, AvgPool, GlobalAvgPool, Gather, Concat, Reshape, PADDINGS, conv, conv1d, conv2d, max_pool,
    max_pool1d, max_pool2d, avg_pool, avg_pool1d, avg_pool2d, global_avg_pool, gather, embedding_lookup, concat,
    reshape, flatten, ConvTranspose, conv_transpose)
from .ops_tensor import (  # noqa: E402,F401
    Transpose, StridedSlice, Pad, Tile, BroadcastTo, Resize, DepthToSpace, SpaceToDepth, GatherElements,
    WindowSum, GlobalMaxPool,
    transpose, slice, split, pad, tile, broadcast_to, expand, resize, depth_to_space, space_to_depth,
    gather_elements, window_sum, global_max_pool, lrn, instance_norm, group_norm)


class SparseSoftmaxCrossEntropy(TensorFunction):
    """-log_softmax(logits)[label] over the last axis, kept as a size-1 axis. The
    simplifier fuses -sum(one_hot(y, z) * log_softmax(z), -1) into this one kernel."""

    ir_op, user_name, latex_name = "sparse_softmax_cross_entropy", "sparse_softmax_cross_entropy", "CE"
    n_tensor_args = 2
