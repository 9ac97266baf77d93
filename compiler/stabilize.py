"""Rewrites that keep float32 graphs finite and accurate wherever the mathematics is.

Each rule looks at one node (after its arguments were rewritten) and returns a
replacement or None. They run before differentiation, so derivatives are taken of the
stable forms (softplus' = sigmoid, logcosh' = tanh, logsumexp' = softmax), and again
on every derivative.
"""
import sympy
from sympy import Add, Mul, Pow, exp, log, cosh, sinh, tanh, S

from . import ops
from .functions import sigmoid, softplus, logcosh


def _one_plus_exp(e):
    """u when e == 1 + exp(u), else None."""
    if isinstance(e, Add) and len(e.args) == 2 and S.One in e.args:
        other = e.args[0] if e.args[1] == S.One else e.args[1]
        if isinstance(other, exp):
            return other.args[0]
    return None


def _rule_recip_one_plus_exp(e):
    # 1 / (1 + exp(u)) -> sigmoid(-u)
    if isinstance(e, Pow) and e.exp == -1:
        u = _one_plus_exp(e.base)
        if u is not None:
            return sigmoid(-u)


def _rule_log(e):
    if not isinstance(e, log):
        return None
    a = e.args[0]
    u = _one_plus_exp(a)
    if u is not None:                                   # log(1 + exp(u)) -> softplus(u)
        return softplus(u)
    if isinstance(a, sigmoid):                          # log(sigmoid(u)) -> -softplus(-u)
        return -softplus(-a.args[0])
    if isinstance(a, cosh):                             # log(cosh(u)) -> logcosh(u)
        return logcosh(a.args[0])
    if isinstance(a, ops.ReduceSum) and isinstance(a.args[0], exp):   # log(sum(exp)) -> logsumexp
        return ops.LogSumExp(a.args[0].args[0], a.args[1])
    if isinstance(a, ops.Softmax):                      # log(softmax) -> log_softmax
        return ops.LogSoftmax(*a.args)
    if isinstance(a, exp):
        return a.args[0]
    if isinstance(a, Mul) and all(_positive_factor(f) for f in a.args):
        return Add(*[log(f) for f in a.args])           # split so the rules above apply per factor
    if isinstance(a, Pow) and _positive_factor(a.base) and a.exp.is_number:
        return a.exp * log(a.base)
    return None


def _positive_factor(f):
    if f.is_number:
        return bool(f.is_positive)
    if isinstance(f, (exp, sigmoid, ops.Softmax)):
        return True
    if isinstance(f, ops.ReduceSum) and isinstance(f.args[0], exp):
        return True
    if isinstance(f, Pow) and f.exp.is_number:
        return _positive_factor(f.base)
    return False


def _rule_add(e):
    # 1 - sigmoid(u) -> sigmoid(-u)
    if not isinstance(e, Add) or S.One not in e.args:
        return None
    for t in e.args:
        if isinstance(t, Mul) and len(t.args) == 2 and t.args[0] == S.NegativeOne and isinstance(t.args[1], sigmoid):
            rest = [a for a in e.args if a is not t and a != S.One]
            return Add(sigmoid(-t.args[1].args[0]), *rest)
    return None


def _rule_mul(e):
    if not isinstance(e, Mul):
        return None
    args = list(e.args)
    # exp(u) * sigmoid(-u) -> sigmoid(u)     (exp(u)/(1+exp(u)) after the Pow rule)
    for i, a in enumerate(args):
        if isinstance(a, exp):
            for j, b in enumerate(args):
                if isinstance(b, sigmoid) and sympy.expand(b.args[0] + a.args[0]) == 0:
                    rest = [x for k, x in enumerate(args) if k not in (i, j)]
                    return Mul(sigmoid(a.args[0]), *rest)
    # sinh(u) / cosh(u) -> tanh(u)
    for i, a in enumerate(args):
        if isinstance(a, sinh):
            for j, b in enumerate(args):
                if isinstance(b, Pow) and b.exp == -1 and isinstance(b.base, cosh) and b.base.args[0] == a.args[0]:
                    rest = [x for k, x in enumerate(args) if k not in (i, j)]
                    return Mul(tanh(a.args[0]), *rest)
    # exp(u) / sum(exp(u)) -> softmax(u)
    for i, a in enumerate(args):
        if isinstance(a, exp):
            for j, b in enumerate(args):
                if (isinstance(b, Pow) and b.exp == -1 and isinstance(b.base, ops.ReduceSum)
                        and b.base.args[0] == a and len(b.base.args[1]) == 1):
                    rest = [x for k, x in enumerate(args) if k not in (i, j)]
                    return Mul(ops.Softmax(a.args[0], b.base.args[1]), *rest)
    return None


def _rule_exp(e):
    # exp(u - logsumexp(u)) -> softmax(u)
    if isinstance(e, exp) and isinstance(e.args[0], Add):
        terms = e.args[0].args
        for t in terms:
            if isinstance(t, Mul) and t.args[0] == S.NegativeOne and isinstance(t.args[1], ops.LogSumExp):
                lse = t.args[1]
                if Add(*[x for x in terms if x is not t]) == lse.args[0]:
                    return ops.Softmax(lse.args[0], lse.args[1])
    return None


def _rule_sparse_cross_entropy(e):
    # c * sum(one_hot(y, z) * log_softmax(z), -1) -> -c * sparse_softmax_cross_entropy(z, y):
    # one fused kernel instead of a dense one-hot product (labels must be the plain input)
    if not (isinstance(e, ops.ReduceSum) and e.axes == (-1,) and isinstance(e.args[0], Mul)):
        return None
    hot = [f for f in e.args[0].args if isinstance(f, ops.OneHot)]
    logp = [f for f in e.args[0].args if isinstance(f, ops.LogSoftmax)]
    rest = [f for f in e.args[0].args if f not in hot and f not in logp]
    if (len(hot) == 1 and len(logp) == 1 and all(r.is_number for r in rest) and logp[0].axes == (-1,)
            and hot[0].args[1] == logp[0].args[0] and isinstance(hot[0].args[0], sympy.Symbol)):
        return -Mul(*rest) * ops.SparseSoftmaxCrossEntropy(logp[0].args[0], hot[0].args[0])
    return None


RULES = (_rule_recip_one_plus_exp, _rule_log, _rule_add, _rule_mul, _rule_exp, _rule_sparse_cross_entropy)


def stabilize(expr):
    """Rewrite ``expr`` bottom-up with RULES until no rule applies."""
    memo = {}

    def walk(e):
        if e in memo:
            return memo[e]
        if e.is_Atom:
            return e
        new_args = tuple(walk(a) for a in e.args)
        out = e.func(*new_args) if new_args != e.args else e
        for _ in range(20):
            for rule in RULES:
                r = rule(out)
                if r is not None:
                    out = walk(r) if r != out else out
                    break
            else:
                break
        memo[e] = out
        return out

    return walk(sympy.sympify(expr))
