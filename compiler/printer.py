"""The ONNX printer: sympy's Printer pattern, one ``_print_<Node>`` method per sympy
node, except that each method appends ONNX nodes to a builder and returns the name of
the value it computed. Identical subtrees are printed once (memoised), and ``sympy.cse``
definitions are printed lazily the first time they are used.
"""
import math

import numpy as np
import sympy
from sympy.printing.printer import Printer

from .errors import ExpressionError, UnsupportedFunctionError
from .functions import softplus
from .lowering import DOUBLE_LOWERINGS

_UNARY = {
    "exp": "Exp", "log": "Log", "Abs": "Abs", "sign": "Sign", "erf": "Erf",
    "sin": "Sin", "cos": "Cos", "tan": "Tan", "asin": "Asin", "acos": "Acos", "atan": "Atan",
    "sinh": "Sinh", "cosh": "Cosh", "tanh": "Tanh", "asinh": "Asinh", "acosh": "Acosh", "atanh": "Atanh",
    "sigmoid": "Sigmoid", "softplus": "Softplus",
}
# f(x) = 1 / g(x) and f^-1(x) = g^-1(1/x), printed through g so float64 lowerings apply
_RECIPROCAL = {"cot": sympy.tan, "sec": sympy.cos, "csc": sympy.sin,
               "coth": sympy.tanh, "sech": sympy.cosh, "csch": sympy.sinh}
_INVERSE_OF_RECIPROCAL = {"acot": sympy.atan, "asec": sympy.acos, "acsc": sympy.asin,
                          "acoth": sympy.atanh, "asech": sympy.acosh, "acsch": sympy.asinh}
_COMPARE = {"StrictGreaterThan": "Greater", "StrictLessThan": "Less",
            "GreaterThan": "GreaterOrEqual", "LessThan": "LessOrEqual", "Equality": "Equal"}


def _finite_wherever_forward_is(expr, cse_defs, depth=8):
    """True when ``expr`` is finite wherever the forward pass is: structural ops' outputs
    (matmul, conv, ...) and finite numbers combined by +, * , positive integer powers and
    Heaviside steps (0 or 1), looking through CSE symbols and elementwise values up to
    ``depth`` levels. No division, log or negative power: those can be infinite where a
    Heaviside factor is 0 (the derivative of sqrt(relu(x)) at x < 0)."""
    from .ir import value_of
    if depth < 0:
        return False
    if expr.is_number:
        return bool(expr.is_finite)
    if isinstance(expr, sympy.Symbol):
        if expr in cse_defs:
            return _finite_wherever_forward_is(cse_defs[expr], cse_defs, depth - 1)
        value = value_of(expr)
        if value is None or value.op in ("input", "param", "const"):
            return False
        if value.op != "elementwise":
            return True
        return _finite_wherever_forward_is(value.expr, cse_defs, depth - 1)
    if isinstance(expr, sympy.Heaviside):
        return True
    if isinstance(expr, sympy.Pow):
        return expr.exp.is_Integer and expr.exp > 0 and _finite_wherever_forward_is(expr.base, cse_defs, depth)
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        return all(_finite_wherever_forward_is(a, cse_defs, depth) for a in expr.args)
    return False


class OnnxPrinter(Printer):
    printmethod = "_onnx"

    def __init__(self, builder, names, cse_defs=None):
        super().__init__()
        self.b = builder
        self.names = names          # sympy Symbol -> ONNX value name
        self.cse_defs = cse_defs or {}
        self.memo = {}
        self.hint = "ew"

    def emit(self, expr, hint):
        self.hint = hint
        return self._print(expr)

    # memoise every subtree: shared work between forward and backward is printed once
    def _print(self, expr, **kwargs):
        key = expr
        if key in self.memo:
            return self.memo[key]
        if isinstance(expr, sympy.Expr) and expr.is_number and not expr.is_Atom:
            try:
                value = float(expr)
            except TypeError:   # a complex constant such as log(-1) = I*pi
                raise UnsupportedFunctionError(f"the constant {expr} = {sympy.N(expr, 6)} is not a real number; "
                                               "accepted: expressions that are real for real inputs") from None
            except OverflowError:
                value = math.inf
            out = self.constant(value, expr)  # fold log(2), sqrt(pi)... at compile time
        else:
            out = super()._print(expr, **kwargs)
        self.memo[key] = out
        return out

    def node(self, op, inputs, **attrs):
        return self.b.node(op, inputs, hint=f"{self.hint}/{op}", **attrs)

    def emptyPrinter(self, expr):
        raise UnsupportedFunctionError(
            f"cannot emit {type(expr).__name__} ({expr}) as ONNX; "
            "use the functions listed by symgrad.compiler.parse.known_functions()"
        )

    # ---------------------------------------------------------------- atoms
    def _print_Symbol(self, expr):
        if expr in self.names:
            return self.names[expr]
        if expr in self.cse_defs:
            return self._print(self.cse_defs[expr])
        raise UnsupportedFunctionError(f"symbol {expr} has no value in this graph")

    def constant(self, value, expr):
        """A constant of the graph's dtype; one that overflows it (1e300 in float32, exp(1000),
        a parameter of 1e300) is refused here rather than computed as inf at run time."""
        dtype = np.dtype(self.b.np_dtype)
        if math.isfinite(value) and abs(value) <= float(np.finfo(dtype).max):
            return self.b.const(value)
        shown = f"{sympy.N(expr, 6)}" if isinstance(expr, sympy.Number) else f"{expr} = {sympy.N(expr, 6)}"
        raise ExpressionError(
            f"the constant {shown} does not fit in a {dtype.name} graph (largest finite "
            f"{dtype.name}: {np.finfo(dtype).max:.4g}); it comes from a number or a parameter value in the "
            "expression. Accepted: constants within that range"
            + (", or compile with dtype='float64'" if dtype != np.float64 else ""))

    def _print_Number(self, expr):
        try:
            value = float(expr)
        except OverflowError:   # an Integer beyond float's range
            value = math.inf
        return self.constant(value, expr)

    _print_Integer = _print_Rational = _print_Float = _print_Number
    _print_NumberSymbol = _print_Number
    _print_Pi = _print_Exp1 = _print_Number

    def _print_BooleanTrue(self, expr):
        return self.b.const_bool(True)

    def _print_BooleanFalse(self, expr):
        return self.b.const_bool(False)

    # ---------------------------------------------------------------- arithmetic
    def _print_Add(self, expr):
        pos, neg = [], []
        for term in expr.as_ordered_terms():
            c, rest = term.as_coeff_Mul()
            (neg if c < 0 else pos).append(-term if c < 0 else term)
        acc = None
        for t in pos:
            acc = self._print(t) if acc is None else self.node("Add", [acc, self._print(t)])
        for t in neg:
            acc = self.node("Neg", [self._print(t)]) if acc is None else self.node("Sub", [acc, self._print(t)])
        return acc

    def _print_Mul(self, expr):
        c, factors = expr.as_coeff_mul()
        for f in factors:  # g * H(u) with H(0) in {0, 1}: one comparison selects g
            if isinstance(f, sympy.Heaviside) and len(f.args) > 1 and f.args[1] in (0, 1):
                rest = expr / f
                op = "Greater" if f.args[1] == 0 else "GreaterOrEqual"
                cond = self.node(op, [self._print(f.args[0]), self.b.const(0.0)])
                if _finite_wherever_forward_is(rest, self.cse_defs):
                    # onnxruntime's CPU Where is about 10x slower than Cast + Mul (1.1 ms
                    # against 0.12 ms for 64x32x11x11 floats, one thread); g arriving from
                    # matmuls and convs (summed, as after a residual Add) is finite wherever
                    # the forward pass is, so the multiply cannot turn an unselected inf
                    # into NaN.
                    return self.node("Mul", [self._print(rest), self.node("Cast", [cond], to=self.b.float_type)])
                # elsewhere g may be infinite where H(u) = 0 (the derivative of sqrt(relu(x))
                # at x < 0): Where keeps the 0 that the mathematics gives
                return self.node("Where", [cond, self._print(rest), self.b.const(0.0)])
        num, den = [], []
        for f in factors:
            if isinstance(f, sympy.Pow) and f.exp.is_number and f.exp < 0:
                den.append(sympy.Pow(f.base, -f.exp))
            else:
                num.append(f)
        if c.is_Rational and c.q != 1 and not den:   # x/2 reads better than x*0.5
            den.append(sympy.Integer(c.q))
            c = sympy.Integer(c.p)
        acc = None
        for f in num:
            acc = self._print(f) if acc is None else self.node("Mul", [acc, self._print(f)])
        if den:
            d = None
            for f in den:
                d = self._print(f) if d is None else self.node("Mul", [d, self._print(f)])
            acc = self.node("Reciprocal", [d]) if acc is None else self.node("Div", [acc, d])
        if c == 1:
            return acc
        if c == -1:
            return self.node("Neg", [acc])
        return self.node("Mul", [self._print(c), acc]) if acc is not None else self._print(c)

    def _print_Pow(self, expr):
        base, e = expr.base, expr.exp
        if e == sympy.S.Half:
            return self.node("Sqrt", [self._print(base)])
        if e.is_number and e < 0:
            return self.node("Reciprocal", [self._print(sympy.Pow(base, -e))])
        if e == 2:
            x = self._print(base)
            return self.node("Mul", [x, x])
        if e == 3:
            x = self._print(base)
            return self.node("Mul", [self.node("Mul", [x, x]), x])
        if base == sympy.E:
            return self.node("Exp", [self._print(e)])
        return self.node("Pow", [self._print(base), self._print(e)])

    # ---------------------------------------------------------------- functions
    def _print_Function(self, expr):
        name = type(expr).__name__
        if self.b.is_double and name in DOUBLE_LOWERINGS:
            return self._print(DOUBLE_LOWERINGS[name](expr.args[0]))
        if name in _UNARY:
            return self.node(_UNARY[name], [self._print(expr.args[0])])
        if name in _RECIPROCAL:
            return self.node("Reciprocal", [self._print(_RECIPROCAL[name](expr.args[0]))])
        if name in _INVERSE_OF_RECIPROCAL:
            return self._print(_INVERSE_OF_RECIPROCAL[name](1 / expr.args[0]))
        return self.emptyPrinter(expr)

    def _print_exp(self, expr):
        return self.node("Exp", [self._print(expr.args[0])])

    def _print_erfc(self, expr):
        return self._print(1 - sympy.erf(expr.args[0]))

    def _print_logcosh(self, expr):
        # log cosh x = |x| + softplus(-2|x|) - log 2: no overflow at |x| = 100
        a = sympy.Abs(expr.args[0])
        return self._print(a + softplus(-2 * a) - sympy.log(2))

    def _print_Max(self, expr):
        rest = [a for a in expr.args if a != 0]
        if len(rest) == 1 and len(expr.args) == 2:  # Max(u, 0) is Relu: onnxruntime fuses Gemm+Relu
            return self.node("Relu", [self._print(rest[0])])
        return self.node("Max", [self._print(a) for a in expr.args])

    def _print_Min(self, expr):
        return self.node("Min", [self._print(a) for a in expr.args])

    def _print_Heaviside(self, expr):
        x = expr.args[0]
        h0 = expr.args[1] if len(expr.args) > 1 else sympy.S.Half
        if h0 in (0, 1):  # one comparison: x > 0 (H(0) = 0) or x >= 0 (H(0) = 1)
            step = self.node("Greater" if h0 == 0 else "GreaterOrEqual", [self._print(x), self.b.const(0.0)])
            return self.node("Cast", [step], to=self.b.float_type)
        return self._print(sympy.Piecewise((1, x > 0), (0, x < 0), (h0, True)))

    def _print_arg(self, expr):
        # sympy leaves arg(u) of a real u of unknown sign (from |u| and log|u| rewrites): 0 or pi
        return self._print(sympy.Piecewise((sympy.pi, expr.args[0] < 0), (0, True)))

    def _print_atan2(self, expr):
        # atan2(y, x) of reals, as sympy's derivatives of arg() produce it; ONNX has no Atan2
        y, x = expr.args
        base = sympy.atan(y / x)
        return self._print(sympy.Piecewise((base, x > 0), (base + sympy.pi, (x < 0) & (y >= 0)),
                                           (base - sympy.pi, x < 0), (sympy.pi / 2 * sympy.sign(y), True)))

    def _print_DiracDelta(self, expr):
        return self.b.const(0.0)

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        if pieces[-1].cond != sympy.true:
            pieces.append(sympy.functions.elementary.piecewise.ExprCondPair(sympy.nan, sympy.true))
        acc = self._print(pieces[-1].expr)
        for piece in reversed(pieces[:-1]):
            cond = self._print(piece.cond)
            acc = self.node("Where", [cond, self._print(piece.expr), acc])
        return acc

    _print_NaN = lambda self, expr: self.b.const(float("nan"))  # noqa: E731

    # ---------------------------------------------------------------- logic
    def _print_Relational(self, expr):
        op = type(expr).__name__
        lhs, rhs = self._print(expr.lhs), self._print(expr.rhs)
        if op == "Unequality":
            return self.node("Not", [self.node("Equal", [lhs, rhs])])
        return self.node(_COMPARE[op], [lhs, rhs])

    _print_StrictGreaterThan = _print_StrictLessThan = _print_Relational
    _print_GreaterThan = _print_LessThan = _print_Equality = _print_Unequality = _print_Relational

    def _print_And(self, expr):
        acc = self._print(expr.args[0])
        for a in expr.args[1:]:
            acc = self.node("And", [acc, self._print(a)])
        return acc

    def _print_Or(self, expr):
        acc = self._print(expr.args[0])
        for a in expr.args[1:]:
            acc = self.node("Or", [acc, self._print(a)])
        return acc

    def _print_Not(self, expr):
        return self.node("Not", [self._print(expr.args[0])])
