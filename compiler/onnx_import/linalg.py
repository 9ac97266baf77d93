"""MatMul, Gemm and Conv onto the matmul / transpose / conv primitives."""
from .. import ir
from ..errors import ShapeError, SymgradError
from .context import Lazy, number
from .registry import Sample, translates


def apply(ctx, op, inputs, **attrs):
    return ir.apply(op, inputs, name=ctx.node.name or ctx.node.op_type, **attrs)


def batched_matmul(ctx, a, b):
    """a (..., m, k) @ b (..., k, n) for two computed tensors: sum over k of
    a[..., m, k, 1] * b[..., 1, k, n] (reduce_sum and sympy: their rules differentiate it)."""
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"MatMul of {a.shape} and {b.shape}: batched products need rank >= 2 on both sides")
    au = apply(ctx, "unsqueeze", [a], axes=(a.rank,))
    bu = apply(ctx, "unsqueeze", [b], axes=(b.rank - 2,))
    prod = ir.elementwise(au.sym * bu.sym, name=(ctx.node.name or "matmul") + "/products")
    s = apply(ctx, "reduce_sum", [prod], axes=(prod.rank - 2,))
    return apply(ctx, "squeeze", [s], axes=(prod.rank - 2,))


def matmul(ctx, a, b):
    if b.rank == 2 and a.rank >= 1:
        return apply(ctx, "matmul", [a, b])
    if a.rank == b.rank >= 3 and tuple(a.shape[:-2]) == tuple(b.shape[:-2]):
        return apply(ctx, "batch_matmul", [a, b])         # attention's products
    if a.rank == 2 and b.rank > 2 and isinstance(a.shape[0], int):
        # (m, k) @ (..., k, n) = ((..., k, n)^T @ (k, m)... computed as the transpose of b^T a^T
        perm = tuple(range(b.rank - 2)) + (b.rank - 1, b.rank - 2)
        bt = apply(ctx, "transpose", [b], perm=perm)
        at = apply(ctx, "transpose", [a], perm=(1, 0))
        return apply(ctx, "transpose", [apply(ctx, "matmul", [bt, at])], perm=perm)
    return batched_matmul(ctx, a, b)


@translates("MatMul", note="the matmul primitive (rank-2 right side), batch_matmul for equal leading dims, "
                           "else broadcast products summed by reduce_sum",
            sample=Sample((3, 2, 4), (4, 5)))
def matmul_op(ctx, node):
    return matmul(ctx, ctx.value(node.input[0]), ctx.value(node.input[1]))


@translates("Gemm", note="transpose + matmul + alpha/beta in sympy; every transA/transB/alpha/beta",
            sample=Sample((3, 4), (5, 4), (5,), transB=1, alpha=0.7, beta=1.3))
def gemm(ctx, node):
    a = ctx.attrs(node)
    A, B = ctx.value(node.input[0]), ctx.value(node.input[1])
    if a.get("transA", 0):
        A = apply(ctx, "transpose", [A], perm=(1, 0))
    if a.get("transB", 0):
        B = apply(ctx, "transpose", [B], perm=(1, 0))
    y = apply(ctx, "matmul", [A, B])
    expr = number(a.get("alpha", 1.0)) * y.sym
    if len(node.input) > 2 and node.input[2]:
        expr = expr + number(a.get("beta", 1.0)) * ctx.expr(node.input[2])
    return Lazy(expr, y.shape)


def auto_pads(auto_pad, spatial, kernel, strides, dilations, pads):
    """ONNX auto_pad as explicit begins-then-ends pads."""
    r = len(spatial)
    if auto_pad in ("", "NOTSET"):
        return tuple(pads) if pads else (0,) * (2 * r)
    if auto_pad == "VALID":
        return (0,) * (2 * r)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise SymgradError(f"auto_pad {auto_pad!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    begins, ends = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return tuple(begins + ends)


def conv_geometry(ctx, node, x_shape, kernel):
    a = ctx.attrs(node)
    r = len(kernel)
    strides = tuple(a.get("strides", (1,) * r))
    dilations = tuple(a.get("dilations", (1,) * r))
    spatial = tuple(x_shape[2:])
    if not all(isinstance(d, int) for d in spatial):
        raise ShapeError(f"the spatial dims of {x_shape} must be static")
    pads = auto_pads(a.get("auto_pad", "NOTSET"), spatial, kernel, strides, dilations, a.get("pads"))
    return strides, dilations, pads


@translates("Conv", note="the conv primitive (groups, dilations, strides, pads, auto_pad); "
                         "backward: ConvTranspose and a Conv for the kernel",
            sample=Sample((2, 4, 5, 5), (6, 2, 3, 3), (6,), group=2, strides=(2, 1), pads=(1, 0, 1, 1),
                          dilations=(1, 2)))
def conv(ctx, node):
    x, w = ctx.value(node.input[0]), ctx.value(node.input[1])
    kernel = tuple(w.shape[2:])
    strides, dilations, pads = conv_geometry(ctx, node, x.shape, kernel)
    ins = [x, w] + ([ctx.value(node.input[2])] if len(node.input) > 2 and node.input[2] else [])
    return apply(ctx, "conv", ins, strides=strides, padding="explicit", pads=pads, dilations=dilations,
                 group=int(ctx.attrs(node).get("group", 1)))

