"""batch_matmul: a @ b over the last two axes, with equal leading (batch, head) axes;
the product attention takes between queries, keys and values."""
import sympy

from ..errors import ShapeError
from ..ir import Primitive, primitive


def _swap_last(ad, v):
    perm = tuple(range(v.rank - 2)) + (v.rank - 1, v.rank - 2)
    return ad.apply("transpose", [v], perm=perm)


@primitive
class BatchMatMul(Primitive):
    name = "batch_matmul"

    def shape(self, inputs, attrs):
        a, b = inputs
        if a.rank < 3 or a.rank != b.rank or tuple(a.shape[:-2]) != tuple(b.shape[:-2]):
            raise ShapeError(f"batch_matmul takes two tensors of the same rank >= 3 and leading dims, got "
                             f"{a.shape} and {b.shape}")
        if isinstance(a.shape[-1], int) and isinstance(b.shape[-2], int) and a.shape[-1] != b.shape[-2]:
            raise ShapeError(f"batch_matmul: inner dimensions differ, {a.shape} @ {b.shape}")
        return tuple(a.shape[:-1]) + (b.shape[-1],)

    def vjp(self, node, g, ad):
        a, b = node.inputs
        gv = ad.materialize(g, node)
        da = ad.apply("batch_matmul", [gv, _swap_last(ad, b)])
        db = ad.apply("batch_matmul", [_swap_last(ad, a), gv])
        return [da.sym, db.sym]

    def emit(self, b, node, ins):
        return b.node("MatMul", ins, hint=node.name)

    def to_sympy(self, node, args):
        return sympy.Function("batch_matmul")(*args)
