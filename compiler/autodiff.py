"""Reverse mode over the IR, in the spirit of micrograd.

Gradients travel as *lazy* sympy expressions over value symbols: the gradient of a
value is an expression whose logical shape is that value's shape (smaller natural
shapes broadcast). The VJP of an elementwise node is ``sympy.diff`` of its expression
times the upstream gradient, so chains of elementwise work fuse by themselves; a
gradient becomes a graph node only where a structural rule or an unbroadcast needs one.
"""
import sympy
from sympy import DiracDelta

from . import ir
from .errors import NonDifferentiableError, SymgradError
from .primitives import VJP_RULES
from .stabilize import stabilize


def _kinks_against_constants(expr):
    """True when every Max/Min in ``expr`` compares with a number (relu, clip, hinge)."""
    return all(any(a.is_number for a in m.args) for m in expr.atoms(sympy.Max, sympy.Min))


def _clean_derivative(d, zero_at_kink):
    # d/dx of Abs, sign, Heaviside, Max... yields DiracDelta terms: zero almost everywhere
    if d.has(DiracDelta):
        d = d.replace(DiracDelta, lambda *args: sympy.S.Zero)
    # A kink against a constant takes the subgradient 0 there, as PyTorch and TensorFlow
    # do for relu; a tie between two tensors keeps sympy's 1/2 for each side.
    if zero_at_kink and d.has(sympy.Heaviside):
        d = d.replace(sympy.Heaviside, lambda u, *h0: sympy.Heaviside(u, 0))
    return d


def _no_derivative(v, inp):
    """sympy leaves d/dx unevaluated where none exists (a comparison used as a number, a
    function without a derivative); say so in the graph's own names."""
    names = {i.sym: sympy.Symbol(i.name, real=True) for i in v.inputs}
    return NonDifferentiableError(
        f"{v.expr.xreplace(names)} (in {v.name!r}) has no derivative with respect to {inp.name!r}; accepted: "
        "expressions built from differentiable functions, with comparisons only as where()/Piecewise conditions")


_CANON = []                 # placeholder symbols standing for a node's inputs, in input order
_DERIVATIVES = {}           # (canonical expr, input index) -> stabilised derivative


def _derivative(v, k, zero_at_kink):
    """d v.expr / d v.inputs[k], cached over the expression with its inputs renamed: an
    unrolled recurrence repeats one cell's expression T times over fresh symbols, and
    sympy.diff is the costly part of the backward pass."""
    while len(_CANON) < len(v.inputs):
        _CANON.append(sympy.Symbol(f"_ad_in{len(_CANON)}", real=True))
    canon = v.expr.xreplace({i.sym: _CANON[j] for j, i in enumerate(v.inputs)})
    key = (canon, k, zero_at_kink)
    d = _DERIVATIVES.get(key)
    if d is None:
        d = _clean_derivative(sympy.diff(canon, _CANON[k]), zero_at_kink)
        if not d.has(sympy.Derivative, sympy.Subs) and d != 0:
            d = stabilize(d)
        if len(_DERIVATIVES) > 20000:
            _DERIVATIVES.clear()
        _DERIVATIVES[key] = d
    return d.xreplace({_CANON[j]: i.sym for j, i in enumerate(v.inputs)})


class Autodiff:
    """Helper handed to VJP rules; names the nodes it makes under ``scope``."""

    def __init__(self, scope="grad"):
        self.scope = scope

    def ew(self, expr, like=None):
        return ir.elementwise(expr, name=f"{self.scope}/ew")

    def apply(self, op, inputs, **attrs):
        return ir.apply(op, inputs, name=f"{self.scope}/{op}", **attrs)

    def materialize(self, expr, like):
        """A Value computing ``expr`` with exactly ``like``'s shape."""
        v = self.ew(expr)
        if tuple(v.shape) != tuple(like.shape):
            v = self.apply("expand_like", [v, like])
        return v

    def sum_to(self, expr, out, target):
        """Undo broadcasting: reduce ``expr`` (logical shape out.shape) to target's shape."""
        rank, trank = out.rank, target.rank
        axes = list(range(rank - trank))
        for i in range(trank):
            if target.shape[i] == 1 and out.shape[rank - trank + i] != 1:
                axes.append(rank - trank + i)
        if not axes:
            return expr
        v = self.apply("reduce_sum", [self.materialize(expr, out)], axes=tuple(axes))
        if rank != trank:
            v = self.apply("reshape_like", [v, target])
        return v.sym


def gradients(output, wrt, seed=None, scope="grad"):
    """Gradient Values of the scalar (or seeded) ``output`` with respect to each of ``wrt``.

    A value that ``output`` does not depend on gets a zero gradient of its shape."""
    ad = Autodiff(scope)
    grads = _backward(output, wrt, seed, ad)
    out = []
    for w in wrt:
        g = grads.get(w.id, sympy.S.Zero)
        out.append(ad.materialize(g if g != 0 else sympy.S.Zero * w.sym, w))
    return out


def has_gradient(output, wrt, scope="grad/check"):
    """Whether some path from ``wrt`` to ``output`` carries a derivative that is not zero
    everywhere (False when ``wrt`` enters only through sign, Heaviside, argmax...)."""
    return wrt.id in _backward(output, [wrt], None, Autodiff(scope))


def _backward(output, wrt, seed, ad):
    """{value id: lazy gradient} for the values of ``wrt`` that receive one."""
    order = ir.topological_order([output])
    # only walk into values that lead to something we differentiate with respect to
    wanted = {w.id for w in wrt}
    needed = set(wanted)
    for v in order:
        if any(i.id in needed for i in v.inputs):
            needed.add(v.id)
    grads = {output.id: sympy.sympify(1 if seed is None else seed)}

    def accumulate(v, contrib):
        if contrib is None or v.id not in needed:
            return
        if isinstance(contrib, ir.Value):
            contrib = contrib.sym
        if contrib == 0:
            return
        grads[v.id] = grads[v.id] + contrib if v.id in grads else contrib

    for v in reversed(order):
        if v.id in wanted or v.id not in grads:
            continue
        g = grads.pop(v.id)
        if v.op in ("input", "param", "const"):
            continue
        if v.op == "elementwise":
            zero_at_kink = _kinks_against_constants(v.expr)
            for k, inp in enumerate(v.inputs):
                if inp.id not in needed:
                    continue
                d = _derivative(v, k, zero_at_kink)
                if d.has(sympy.Derivative, sympy.Subs):
                    raise _no_derivative(v, inp)
                if d == 0:
                    continue
                accumulate(inp, ad.sum_to(d * g, v, inp))
            continue
        rule = VJP_RULES.get(v.op)
        if rule is None:
            raise SymgradError(f"no VJP rule for op {v.op!r}")
        if not ir.PRIMITIVES[v.op].differentiable:
            continue
        for inp, contrib in zip(v.inputs, rule(v, g, ad)):
            accumulate(inp, contrib)
    return grads
