"""Matrix products."""
from .. import ops
from ..errors import ShapeError
from ..ir import Primitive, primitive


@primitive
class MatMul(Primitive):
    """a @ b with NumPy matmul semantics for a of rank >= 2 and b of rank 2."""

    name = "matmul"

    def shape(self, inputs, attrs):
        a, b = inputs
        if a.rank < 1 or b.rank != 2:
            raise ShapeError(f"matmul takes a of rank >= 1 and b of rank 2, got {a.shape} and {b.shape}")
        if isinstance(a.shape[-1], int) and isinstance(b.shape[0], int) and a.shape[-1] != b.shape[0]:
            raise ShapeError(f"matmul: inner dimensions differ, {a.shape} @ {b.shape}")
        return tuple(a.shape[:-1]) + (b.shape[1],)

    def vjp(self, node, g, ad):
        a, b = node.inputs
        gv = ad.materialize(g, node)
        bt = ad.apply("transpose", [b], perm=(1, 0))
        da = ad.apply("matmul", [gv, bt])
        if a.rank == 2:
            at = ad.apply("transpose", [a], perm=(1, 0))
            db = ad.apply("matmul", [at, gv])
        else:  # fold the leading dims of a and g into one
            a2 = ad.apply("flatten_to_2d", [a])
            g2 = ad.apply("flatten_to_2d", [gv])
            db = ad.apply("matmul", [ad.apply("transpose", [a2], perm=(1, 0)), g2])
        return [da.sym, db.sym]

    def emit(self, b, node, ins):
        return b.node("MatMul", ins, hint=node.name)

    def to_sympy(self, node, args):
        return ops.MatMul(*args)


@primitive
class Transpose(Primitive):
    name = "transpose"

    def shape(self, inputs, attrs):
        perm = tuple(int(p) for p in attrs["perm"])
        if sorted(perm) != list(range(inputs[0].rank)):
            raise ShapeError(f"transpose: perm {perm} is not a permutation of the {inputs[0].rank} axes of "
                             f"{inputs[0].shape}")
        attrs["perm"] = perm
        return tuple(inputs[0].shape[p] for p in perm)

    def vjp(self, node, g, ad):
        perm = node.attrs["perm"]
        inv = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))
        return [ad.apply("transpose", [ad.materialize(g, node)], perm=inv).sym]

    def emit(self, b, node, ins):
        return b.node("Transpose", ins, hint=node.name, perm=list(node.attrs["perm"]))

    def to_sympy(self, node, args):
        if hasattr(args[0], "T"):
            return args[0].T
        return ops.Transpose.make(args, perm=node.attrs["perm"])


@primitive
class FlattenTo2D(Primitive):
    """Fold every leading dim into one: (..., k) -> (prod, k)."""

    name = "flatten_to_2d"

    def shape(self, inputs, attrs):
        s = inputs[0].shape
        lead = 1
        for d in s[:-1]:
            lead = lead * d if isinstance(d, int) and isinstance(lead, int) else "M"
        return (lead, s[-1])

    def vjp(self, node, g, ad):
        return [ad.apply("reshape_like", [ad.materialize(g, node), node.inputs[0]]).sym]

    def emit(self, b, node, ins):
        return b.node("Flatten", ins, hint=node.name, axis=node.inputs[0].rank - 1)

    def to_sympy(self, node, args):
        return args[0]
