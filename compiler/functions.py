"""Elementwise primitives that sympy lacks, each with its derivative (fdiff), as sympy's
own functions carry theirs. The stabiliser rewrites unsafe forms into these, and the
printer knows how to emit each one safely in float32.
"""
import sympy
from sympy import Function, exp, tanh, S


def _power(tex, exp):
    # sympy's LaTeX printer hands a Function's power to its _latex as ``exp``
    return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)


class sigmoid(Function):
    """1 / (1 + exp(-x)), emitted as the ONNX Sigmoid op."""

    is_real = True

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return 1 / (1 + exp(-x))

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sigmoid(x) * sigmoid(-x)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + exp(-x))

    def _eval_evalf(self, prec):  # constant folding of sigmoid(number expression)
        return self._eval_rewrite_as_exp(*self.args)._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        return _power(r"\sigma\left(%s\right)" % printer._print(self.args[0]), exp)


class softplus(Function):
    """log(1 + exp(x)), emitted as the ONNX Softplus op (finite at x = +-100)."""

    is_real = True

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sympy.log(1 + exp(x))

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sympy.log(1 + exp(x))

    def _eval_evalf(self, prec):
        return self._eval_rewrite_as_log(*self.args)._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        return _power(r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0]), exp)


class logcosh(Function):
    """log(cosh(x)), emitted as |x| + softplus(-2|x|) - log 2 so it stays finite."""

    is_real = True

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sympy.log(sympy.cosh(x))

    def fdiff(self, argindex=1):
        return tanh(self.args[0])

    def _eval_evalf(self, prec):
        return sympy.log(sympy.cosh(self.args[0]))._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        return _power(r"\log\cosh\left(%s\right)" % printer._print(self.args[0]), exp)


ELEMENTWISE_PRIMITIVES = {"sigmoid": sigmoid, "softplus": softplus, "logcosh": logcosh}
