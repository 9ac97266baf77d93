"""Three tensor functions the catalogue needs beyond the core vocabulary (compiler/ops.py):

- ``class_vector(name, values)``: a constant vector over the class axis (class weights,
  per-class pos_weight). It becomes a graph initializer and carries no gradient.
- ``expand_dims(x, axis)``: a unit axis, so that a per-sample label of shape (N,) meets
  a per-sample value of shape (N, 1) (reductions keep their axes) without broadcasting
  to (N, N).
- ``count(x, axis)``: the number of elements over ``axis``, for means over pairs.

Both are ordinary ``TensorFunction`` subclasses, so a declaration stays one sympy
expression and ``build_ir`` turns them into IR nodes like any other.
"""
import numpy as np
import sympy
from sympy.core.symbol import Str

from .. import ir
from ..ops import TensorFunction, _axes
from ..primitives import register_more


class ClassVector(TensorFunction):
    """class_vector(name, (v0, v1, ...)): shown by its name, emitted as an initializer."""

    ir_op = "class_vector"
    n_tensor_args = 0

    @property
    def user_name(self):
        return str(self.args[0])

    @property
    def values(self):
        return tuple(float(v) for v in self.args[1])

    def ir_attrs(self):
        return {"label": str(self.args[0]), "values": self.values}

    def _sympystr(self, printer):
        return str(self.args[0])

    def _latex(self, printer, exp=None):
        tex = r"\mathbf{%s}" % str(self.args[0]).replace("_", r"\_")
        return tex if exp is None else r"%s^{%s}" % (tex, exp)


class ExpandDims(TensorFunction):
    """expand_dims(x, axis): insert a unit axis at ``axis`` of the result."""

    ir_op, user_name, latex_name = "unsqueeze", "expand_dims", "expand"

    def _static_kwargs(self):
        return {"axis": int(self.args[1][0])}

    def ir_attrs(self):
        return {"axes": tuple(int(a) for a in self.args[1])}

    def _latex(self, printer, exp=None):  # a unit axis changes nothing a reader needs to see
        tex = printer._print(self.args[0])
        return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)


class Count(TensorFunction):
    """count(x, axis): the number of elements of x over ``axis`` (a run-time scalar, no gradient)."""

    ir_op, user_name, latex_name = "axis_size", "count", "n"

    def ir_attrs(self):
        return {"axes": tuple(int(a) for a in self.args[1])}

    def _static_kwargs(self):
        return {"axis": int(self.args[1][0])}

    def _latex(self, printer, exp=None):
        return "n" if exp is None else r"n^{%s}" % exp


class Transpose(TensorFunction):
    """transpose(x, perm): axes permuted (default: a matrix's transpose)."""

    ir_op, user_name, latex_name = "transpose", "transpose", "T"

    def ir_attrs(self):
        return {"perm": tuple(int(a) for a in self.args[1])}

    def _static_kwargs(self):
        return {"perm": tuple(int(a) for a in self.args[1])}

    def _latex(self, printer, exp=None):
        tex = r"\left(%s\right)^{T}" % printer._print(self.args[0])
        return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)


class EyeLike(TensorFunction):
    """eye_like(x): the (N, N) identity for the batch size N of x (no gradient)."""

    ir_op, user_name, latex_name = "eye_like", "eye_like", "I"

    def _latex(self, printer, exp=None):
        return "I" if exp is None else r"I^{%s}" % exp


class CumSum(TensorFunction):
    """cumsum(x): the running sum over the last axis (for masks of labels: no gradient)."""

    ir_op, user_name, latex_name = "cumsum_last", "cumsum", "cumsum"


@ir.primitive
class CumSumPrimitive(ir.Primitive):
    name = "cumsum_last"
    differentiable = False

    def shape(self, inputs, attrs):
        return tuple(inputs[0].shape)

    def vjp(self, node, g, ad):
        return [None]

    def emit(self, b, node, ins):
        return b.node("CumSum", [ins[0], b.const_i64(node.inputs[0].rank - 1)], hint=node.name)

    def to_sympy(self, node, args):
        return CumSum(args[0])


@ir.primitive
class EyeLikePrimitive(ir.Primitive):
    name = "eye_like"
    differentiable = False

    def shape(self, inputs, attrs):
        n = inputs[0].shape[0]
        return (n, n)

    def vjp(self, node, g, ad):
        return [None]

    def emit(self, b, node, ins):
        shape = b.node("Shape", [ins[0]], hint=node.name + "/shape")
        n = b.node("Gather", [shape, b.const_i64(0)], hint=node.name + "/n", axis=0)
        idx = b.node("Range", [b.const_i64(0), n, b.const_i64(1)], hint=node.name + "/range")
        rows = b.node("Unsqueeze", [idx, b.const_i64([1])], hint=node.name + "/rows")
        cols = b.node("Unsqueeze", [idx, b.const_i64([0])], hint=node.name + "/cols")
        same = b.node("Equal", [rows, cols], hint=node.name + "/equal")
        return b.node("Cast", [same], hint=node.name, to=b.float_type)

    def to_sympy(self, node, args):
        return EyeLike(args[0])


@ir.primitive
class ClassVectorPrimitive(ir.Primitive):
    name = "class_vector"
    differentiable = False

    def shape(self, inputs, attrs):
        return (len(attrs["values"]),)

    def vjp(self, node, g, ad):
        return []

    def emit(self, b, node, ins):
        return b.const(np.asarray(node.attrs["values"]), hint=node.name)

    def to_sympy(self, node, args):
        return class_vector(node.attrs["label"], node.attrs["values"])


register_more()


def class_vector(name, values):
    return ClassVector(Str(name), sympy.Tuple(*[sympy.Float(float(v)) for v in values]))


def transpose(x, perm=(1, 0)):
    return Transpose(sympy.sympify(x), sympy.Tuple(*[sympy.Integer(a) for a in perm]))


def cumsum(x):
    return CumSum(sympy.sympify(x))


def eye_like(x):
    return EyeLike(sympy.sympify(x))


def count(x, axis=-1):
    return Count(sympy.sympify(x), _axes(axis))


def expand_dims(x, axis=-1):
    return ExpandDims(sympy.sympify(x), _axes(axis))
