"""Elementwise ONNX ops as sympy expressions over the inputs' symbols: their derivatives
come from sympy.diff, and chains of them fuse into one IR node."""
import numpy as np
import sympy
from sympy import exp, sqrt

from .. import ir
from ..functions import sigmoid, softplus
from ..ir import broadcast_shapes
from .context import Lazy, number
from .registry import PASS_THROUGH, Sample, translates

X = (3, 4)


# unevaluated: sympy's Max/Min/Piecewise simplification is slow on the long fused
# expressions of a real network (a BN+Relu of resnet50 took 70 ms), and buys nothing here
def Max(*args):  # noqa: N802 - sympy's names
    return sympy.Max(*args, evaluate=False)


def Min(*args):  # noqa: N802
    return sympy.Min(*args, evaluate=False)


def Piecewise(*pairs):  # noqa: N802
    return sympy.Piecewise(*pairs, evaluate=False)
POS = dict(low=0.3, high=2.0)


# ops with a kink or a branch (Max, Min, Piecewise, Abs): their argument is made an IR
# value first. sympy re-evaluates Max(u, 0) and Heaviside(u) whenever an expression is
# rebuilt (xreplace in autodiff, cse), and on a long fused u (a batch norm) that took
# 13 of resnet18's 17 s of compile time; the emitted graph is the same either way.
KINKED = {"Abs", "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Clip",
          "ThresholdedRelu", "Shrink", "Max", "Min", "Sign", "Floor", "Ceil", "Round"}


def _operand(ctx, node, name):
    e = ctx.expr(name)
    if node.op_type in KINKED and not e.is_Atom:
        return ctx.value(name).sym
    return e


def _operands(ctx, node):
    names = [n for n in node.input if n]
    return [_operand(ctx, node, n) for n in names], broadcast_shapes(*[ctx.shape(n) for n in names])


def _unary(fn):
    def translate(ctx, node):
        (x,), shape = _operands(ctx, node)
        return Lazy(fn(x, ctx.attrs(node)), shape)
    return translate


def _nary(fn):
    def translate(ctx, node):
        args, shape = _operands(ctx, node)
        return Lazy(fn(args), shape)
    return translate


_BINARY = {
    "Add": lambda a: a[0] + a[1],
    "Sub": lambda a: a[0] - a[1],
    "Mul": lambda a: a[0] * a[1],
    "Div": lambda a: a[0] / a[1],
    "Pow": lambda a: a[0] ** a[1],
}
for _op, _fn in _BINARY.items():
    translates(_op, note="sympy: " + {"Add": "a + b", "Sub": "a - b", "Mul": "a * b", "Div": "a / b",
                                      "Pow": "a ** b"}[_op],
               sample=Sample(X, (4,), **(POS if _op in ("Div", "Pow") else {})))(_nary(_fn))

_VARIADIC = {
    "Sum": lambda a: sympy.Add(*a),
    "Mean": lambda a: sympy.Add(*a) / len(a),
    "Max": lambda a: Max(*a),
    "Min": lambda a: Min(*a),
}
for _op, _fn in _VARIADIC.items():
    translates(_op, note=f"sympy {'Add' if _op in ('Sum', 'Mean') else _op}; ties split the gradient evenly"
               if _op in ("Max", "Min") else "sympy Add of the inputs", sample=Sample(X, (4,), (1, 4)))(_nary(_fn))


def _gelu(x, a):
    if a.get("approximate", "none") == "tanh":
        return x / 2 * (1 + sympy.tanh(sqrt(2 / sympy.pi) * (x + sympy.Float("0.044715") * x ** 3)))
    return x / 2 * (1 + sympy.erf(x / sqrt(2)))


def _alpha(a, default):
    return number(a.get("alpha", default))


_UNARY = {
    "Neg": (lambda x, a: -x, "-x", {}),
    "Abs": (lambda x, a: sympy.Abs(x), "Abs(x)", {}),
    "Exp": (lambda x, a: exp(x), "exp(x)", {}),
    "Log": (lambda x, a: sympy.log(x), "log(x)", POS),
    "Sqrt": (lambda x, a: sqrt(x), "sqrt(x)", POS),
    "Reciprocal": (lambda x, a: 1 / x, "1/x", POS),
    "Relu": (lambda x, a: Max(x, 0), "Max(x, 0); subgradient 0 at 0", {}),
    "LeakyRelu": (lambda x, a: Piecewise((x, x > 0), (_alpha(a, 0.01) * x, True)), "Piecewise", {"alpha": 0.1}),
    "Elu": (lambda x, a: Piecewise((x, x > 0), (_alpha(a, 1.0) * (exp(x) - 1), True)), "Piecewise", {}),
    "Selu": (lambda x, a: number(a.get("gamma", 1.0507009873554805)) *
             Piecewise((x, x > 0), (_alpha(a, 1.6732632423543772) * (exp(x) - 1), True)), "Piecewise", {}),
    "Celu": (lambda x, a: Max(0, x) + Min(0, _alpha(a, 1.0) * (exp(x / _alpha(a, 1.0)) - 1)), "Max + Min",
             {"alpha": 0.7}),
    "Gelu": (_gelu, "x/2 (1 + erf(x/sqrt 2)), or the tanh form", {"opset": 20}),
    "Sigmoid": (lambda x, a: sigmoid(x), "sigmoid", {}),
    "HardSigmoid": (lambda x, a: Max(0, Min(1, _alpha(a, 0.2) * x + number(a.get("beta", 0.5)))), "Max/Min",
                    {}),
    "HardSwish": (lambda x, a: x * Max(0, Min(1, x / 6 + sympy.Rational(1, 2))), "x * hard_sigmoid(x)", {}),
    "Softplus": (lambda x, a: softplus(x), "softplus (stable)", {}),
    "Softsign": (lambda x, a: x / (1 + sympy.Abs(x)), "x / (1 + |x|)", {}),
    "Mish": (lambda x, a: x * sympy.tanh(softplus(x)), "x tanh(softplus(x))", {"opset": 18}),
    "Tanh": (lambda x, a: sympy.tanh(x), "tanh", {}),
    "Erf": (lambda x, a: sympy.erf(x), "erf", {}),
    "Sin": (lambda x, a: sympy.sin(x), "sin", {}),
    "Cos": (lambda x, a: sympy.cos(x), "cos", {}),
    "Tan": (lambda x, a: sympy.tan(x), "tan", {"low": -1.0, "high": 1.0}),
    "Asin": (lambda x, a: sympy.asin(x), "asin", {"low": -0.8, "high": 0.8}),
    "Acos": (lambda x, a: sympy.acos(x), "acos", {"low": -0.8, "high": 0.8}),
    "Atan": (lambda x, a: sympy.atan(x), "atan", {}),
    "Sinh": (lambda x, a: sympy.sinh(x), "sinh", {}),
    "Cosh": (lambda x, a: sympy.cosh(x), "cosh", {}),
    "Asinh": (lambda x, a: sympy.asinh(x), "asinh", {}),
    "Acosh": (lambda x, a: sympy.acosh(x), "acosh", {"low": 1.2, "high": 3.0}),
    "Atanh": (lambda x, a: sympy.atanh(x), "atanh", {"low": -0.8, "high": 0.8}),
    "ThresholdedRelu": (lambda x, a: Piecewise((x, x > _alpha(a, 1.0)), (0, True)), "Piecewise", {}),
    "Shrink": (lambda x, a: Piecewise((x - number(a.get("bias", 0.0)), x > number(a.get("lambd", 0.5))),
                                      (x + number(a.get("bias", 0.0)), x < -number(a.get("lambd", 0.5))), (0, True)),
               "Piecewise", {}),
}


def _sample_for(extra):
    extra = dict(extra)
    bounds = {k: extra.pop(k) for k in ("low", "high") if k in extra}
    return Sample(X, **bounds, **extra)


for _op, (_fn, _note, _extra) in _UNARY.items():
    translates(_op, note="sympy: " + _note, sample=_sample_for(_extra))(_unary(_fn))


@translates("PRelu", note="sympy Piecewise; the slope broadcasts (a weight)", sample=Sample(X, (4,)))
def prelu(ctx, node):
    (x, slope), shape = _operands(ctx, node)
    return Lazy(Piecewise((x, x > 0), (slope * x, True)), shape)


@translates("Clip", note="sympy Min(Max(x, lo), hi); bounds are constants",
            sample=Sample(X, np.array(-0.5), np.array(0.7)))
def clip(ctx, node):
    a = ctx.attrs(node)
    x = _operand(ctx, node, node.input[0])
    lo = ctx.const_or(node.input[1] if len(node.input) > 1 else "", a.get("min"))
    hi = ctx.const_or(node.input[2] if len(node.input) > 2 else "", a.get("max"))
    if lo is not None:
        x = Max(x, number(np.asarray(lo).reshape(())))
    if hi is not None:
        x = Min(x, number(np.asarray(hi).reshape(())))
    return Lazy(x, ctx.shape(node.input[0]))


def _condition(ctx, name):
    e = ctx.entry(name)
    if isinstance(e, Lazy) and isinstance(e.expr, sympy.logic.boolalg.Boolean):
        return e.expr, e.shape
    if isinstance(e, np.ndarray) and e.dtype == bool:
        if e.size == 1:
            return (sympy.true if bool(e.reshape(-1)[0]) else sympy.false), e.shape
        return ir.const_value(e.astype(np.float64), name=name).sym > sympy.Rational(1, 2), e.shape
    return ctx.expr(name) > sympy.Rational(1, 2), ctx.shape(name)


@translates("Where", note="sympy Piecewise((a, cond), (b, True)); no gradient to the condition",
            sample=Sample(np.array([True, False, True, True]), X, (4,)))
def where(ctx, node):
    cond, cshape = _condition(ctx, node.input[0])
    a, b = ctx.expr(node.input[1]), ctx.expr(node.input[2])
    shape = broadcast_shapes(cshape, ctx.shape(node.input[1]), ctx.shape(node.input[2]))
    return Lazy(Piecewise((a, cond), (b, True)), shape)


_COMPARE = {"Greater": sympy.StrictGreaterThan, "Less": sympy.StrictLessThan, "GreaterOrEqual": sympy.GreaterThan,
            "LessOrEqual": sympy.LessThan, "Equal": sympy.Eq}


def _compare(rel):
    def translate(ctx, node):
        (a, b), shape = _operands(ctx, node)
        return Lazy(rel(a, b, evaluate=False) if rel is not sympy.Eq else sympy.Eq(a, b, evaluate=False), shape)
    return translate


for _op, _rel in _COMPARE.items():
    translates(_op, status=PASS_THROUGH, note="a boolean for Where conditions; no gradient")(_compare(_rel))


@translates("Not", "And", "Or", "Xor", status=PASS_THROUGH, note="logic on Where conditions; no gradient")
def logic(ctx, node):
    conds = [_condition(ctx, n) for n in node.input]
    shape = broadcast_shapes(*[s for _, s in conds])
    c = [e for e, _ in conds]
    fn = {"Not": lambda: sympy.Not(c[0]), "And": lambda: sympy.And(*c), "Or": lambda: sympy.Or(*c),
          "Xor": lambda: sympy.Xor(*c)}[node.op_type]
    return Lazy(fn(), shape)


@translates("Sign", "Floor", "Ceil", "Round", status=PASS_THROUGH,
            note="piecewise constant: the gradient is zero almost everywhere")
def step_functions(ctx, node):
    x = _operand(ctx, node, node.input[0])
    fn = {"Sign": sympy.sign, "Floor": sympy.floor, "Ceil": sympy.ceiling,
          "Round": lambda u: sympy.floor(u + sympy.Rational(1, 2))}[node.op_type]
    return Lazy(fn(x), ctx.shape(node.input[0]))


@translates("Identity", status=PASS_THROUGH, note="the input itself")
def identity(ctx, node):
    return ctx.entry(node.input[0])


@translates("Cast", "CastLike", status=PASS_THROUGH,
            note="float to float is the identity (gradient passes); a boolean becomes 1/0; float to int has none")
def cast(ctx, node):
    e = ctx.entry(node.input[0])
    if node.op_type == "CastLike":
        to_float = _is_float_like(ctx, node.input[1])
    else:
        from onnx import helper
        to_float = np.dtype(helper.tensor_dtype_to_np_dtype(ctx.attrs(node)["to"])).kind == "f"
    if isinstance(e, Lazy) and isinstance(e.expr, sympy.logic.boolalg.Boolean):
        return Lazy(Piecewise((1, e.expr), (0, True)), e.shape) if to_float else e
    if to_float:
        return e
    from ..errors import SymgradError
    raise SymgradError("Cast of a computed float tensor to an integer type has no gradient and no IR form; "
                       "accepted: Cast between float types, of booleans, and of shape arithmetic")


def _is_float_like(ctx, name):
    e = ctx.entry(name)
    return not (isinstance(e, np.ndarray) and e.dtype.kind in "iub")


@translates("Dropout", status=PASS_THROUGH,
            note="off in eval; in training a seeded uniform noise input keeps each unit with 1 - ratio")
def dropout(ctx, node):
    from ..layers.base import RandomInput
    x_name = node.input[0]
    ratio = float(ctx.const(node.input[1]).reshape(())) if len(node.input) > 1 and node.input[1] else \
        float(ctx.attrs(node).get("ratio", 0.5))
    shape = ctx.shape(x_name)
    if not ctx.training or ratio == 0:
        return [ctx.entry(x_name)]
    name = f"{node.output[0]}/noise"
    noise = ir.input_value(name, shape)
    ctx.trace.random_inputs.append(RandomInput(name, noise, shape))
    x = ctx.expr(x_name)
    return [Lazy(Piecewise((x / (1 - number(ratio)), noise.sym >= number(ratio)), (0, True)), shape)]
