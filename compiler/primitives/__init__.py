"""Structural primitives, one family per module. Importing this package registers
each primitive (shape rule, VJP rule, ONNX emitter, sympy display) in ``ir.PRIMITIVES``;
``VJP_RULES`` is the one table autodiff consults."""
from ..ir import PRIMITIVES
from . import reductions, softmax, shape_ops, linalg  # noqa: F401  (registration)

VJP_RULES = {name: prim.vjp for name, prim in PRIMITIVES.items()}


def register_more():
    """Refresh VJP_RULES after a later module registered more primitives."""
    VJP_RULES.update({name: prim.vjp for name, prim in PRIMITIVES.items()})
