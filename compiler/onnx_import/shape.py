"""Shape and indexing ops. On computed tensors they map onto the layout primitives;
on constants (shape arithmetic) the importer folds them before they get here."""
import numpy as np
import sympy

from .. import ir
from ..errors import ShapeError, SymgradError
from .context import BATCH, Initializer, folded_dim, ir_dim
from .linalg import apply
from .registry import FOLDED, Sample, translates, unsupported


def _axes_input(ctx, node, index=1):
    a = ctx.attrs(node)
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if len(node.input) > index and node.input[index]:
        return [int(v) for v in np.asarray(ctx.const(node.input[index], "axes")).reshape(-1)]
    return None


@translates("Constant", status=FOLDED, note="a constant; float tensors of rank >= 1 become weights when named in "
                                            "trainable=/frozen= or with constants_as_weights=True")
def constant(ctx, node):
    from onnx import numpy_helper
    a = ctx.attrs(node)
    if "value" in a:
        arr = numpy_helper.to_array(a["value"])
    elif "value_float" in a or "value_int" in a:
        arr = np.array(a.get("value_float", a.get("value_int")))
    elif "value_floats" in a or "value_ints" in a:
        arr = np.array(a.get("value_floats", a.get("value_ints")))
    else:
        raise SymgradError("Constant with a sparse or string value is not supported")
    if arr.dtype.kind == "f" and arr.ndim >= 1 and node.output[0] in ctx.model.constant_weights:
        return Initializer(node.output[0], arr)
    return arr


@translates("Shape", status=FOLDED, note="folded: the batch dim stays a symbol, the others are fixed")
def shape(ctx, node):
    a = ctx.attrs(node)
    dims = [folded_dim(d) for d in ctx.shape(node.input[0])]
    dims = dims[a.get("start", 0):a["end"]] if "end" in a else dims[a.get("start", 0):]
    return _fold(dims)


def _fold(dims):
    if all(isinstance(d, int) for d in dims):
        return np.array(dims, dtype=np.int64)
    return np.array(dims, dtype=object)


@translates("Size", status=FOLDED, note="folded (a function of the batch size)")
def size(ctx, node):
    total = sympy.Mul(*[folded_dim(d) for d in ctx.shape(node.input[0])])
    return np.array(int(total), dtype=np.int64) if total.is_Integer else np.array(total, dtype=object)


def _target_shape(ctx, node, x_shape):
    target = np.asarray(ctx.const(node.input[1], "the target shape")).reshape(-1)
    allowzero = ctx.attrs(node).get("allowzero", 0)
    out = []
    for i, d in enumerate(target):
        d = sympy.sympify(d)
        if d == 0 and not allowzero:
            out.append(x_shape[i])
        elif d.is_Integer:
            out.append(int(d))
        else:
            out.append(ir_dim(d))   # "N", or a multiple of it such as "2*N"
    symbolic = [i for i, d in enumerate(out) if isinstance(d, str)]
    if -1 in out and symbolic:
        # (N, -1): the -1 is static; work it out so that the reshape infers one dim only
        x_sym = [sympy.sympify(d, locals={"N": BATCH}) if isinstance(d, str) else d for d in x_shape]
        t_sym = [sympy.sympify(d, locals={"N": BATCH}) for d in out if isinstance(d, str)]
        static_known = ir.static_size([d for d in out if isinstance(d, int) and d != -1])
        rest = sympy.simplify(sympy.Mul(*x_sym) / (sympy.Mul(*t_sym) * static_known))
        if not rest.is_Integer:
            raise ShapeError(f"cannot reshape {x_shape} into {tuple(out)}")
        out = [int(rest) if d == -1 else d for d in out]
    return _fix_file_batch(ctx, tuple(out), x_shape)


def _fix_file_batch(ctx, target, x_shape):
    """Files exported with a fixed batch (often 1) reshape to (1, ...): keep the batch dynamic."""
    b = ctx.model._file_batch
    if b and target and target[0] == b and x_shape and x_shape[0] == "N" and "N" not in target and -1 not in target:
        return ("N",) + tuple(target[1:])
    return target


@translates("Reshape", note="the reshape primitive; targets from shape arithmetic fold first",
            sample=Sample((2, 3, 4), np.array([0, 4, 3])))
def reshape(ctx, node):
    x = ctx.value(node.input[0])
    return apply(ctx, "reshape", [x], shape=_target_shape(ctx, node, x.shape))


@translates("Flatten", note="the reshape primitive", sample=Sample((2, 3, 2, 2), axis=1))
def flatten(ctx, node):
    x = ctx.value(node.input[0])
    axis = ctx.attrs(node).get("axis", 1) % (x.rank + 1) if x.rank else 0
    lead, rest = x.shape[:axis], x.shape[axis:]
    if axis == 1 and lead[0] == "N":
        return apply(ctx, "reshape", [x], shape="flatten")
    lead_n, rest_n = ir.static_size(lead), ir.static_size(rest)
    if rest_n is not None:
        return apply(ctx, "reshape", [x], shape=(-1, rest_n))
    if lead_n is not None:
        return apply(ctx, "reshape", [x], shape=(lead_n, -1))
    raise ShapeError(f"Flatten at axis {axis} of {x.shape} mixes the batch into both sides")


@translates("Transpose", note="the transpose primitive", sample=Sample((2, 3, 4), perm=(0, 2, 1)))
def transpose(ctx, node):
    x = ctx.value(node.input[0])
    perm = tuple(ctx.attrs(node).get("perm", tuple(reversed(range(x.rank)))))
    return apply(ctx, "transpose", [x], perm=perm)


@translates("Squeeze", note="the squeeze primitive", sample=Sample((2, 1, 4), np.array([1])))
def squeeze(ctx, node):
    x = ctx.value(node.input[0])
    axes = _axes_input(ctx, node)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    return apply(ctx, "squeeze", [x], axes=tuple(a % x.rank for a in axes))


@translates("Unsqueeze", note="the unsqueeze primitive", sample=Sample((2, 4), np.array([1, 3])))
def unsqueeze(ctx, node):
    x = ctx.value(node.input[0])
    return apply(ctx, "unsqueeze", [x], axes=tuple(_axes_input(ctx, node)))


@translates("Concat", note="the concat primitive; its adjoint slices", sample=Sample((2, 3), "x", axis=1))
def concat(ctx, node):
    vals = [ctx.value(n) for n in node.input if n and 0 not in ctx.shape(n)]
    return apply(ctx, "concat", vals, axis=ctx.attrs(node)["axis"])


@translates("Gather", note="constant scalar index: slice + squeeze; constant indices elsewhere: a one-hot MatMul "
                           "(adjoint: its transpose); data-dependent ids on axis 0: the gather primitive (adjoint: "
                           "scatter-add)",
            sample=Sample((2, 5, 3), np.array([[0, 4], [2, 2]]), axis=1))
def gather(ctx, node):
    data = ctx.value(node.input[0])
    axis = ctx.attrs(node).get("axis", 0) % data.rank
    n = data.shape[axis]
    if not ctx.is_const(node.input[1]):
        if axis != 0 or not all(isinstance(d, int) for d in data.shape):
            raise SymgradError("Gather with computed indices is supported on axis 0 of a fixed-size table "
                               "(an embedding); accepted otherwise: constant indices")
        return apply(ctx, "gather", [data, ctx.value(node.input[1])])
    if not isinstance(n, int):
        raise ShapeError(f"Gather along the batch axis of {data.shape} is not supported")
    idx = np.asarray(ctx.const(node.input[1])).astype(np.int64) % n
    if idx.ndim == 0:
        i = int(idx)
        s = apply(ctx, "slice", [data], axis=axis, start=i, end=i + 1) if n > 1 else data
        return apply(ctx, "squeeze", [s], axes=(axis,))
    r = data.rank
    onehot = np.zeros((n, idx.size))
    onehot[idx.reshape(-1), np.arange(idx.size)] = 1.0
    last = apply(ctx, "transpose", [data], perm=tuple(i for i in range(r) if i != axis) + (axis,)) \
        if axis != r - 1 else data
    picked = apply(ctx, "matmul", [last, ir.const_value(onehot, name=node.input[1] + "/one_hot")])
    if axis != r - 1:
        picked = apply(ctx, "transpose", [picked], perm=tuple(range(axis)) + (r - 1,) + tuple(range(axis, r - 1)))
    target = tuple(data.shape[:axis]) + tuple(idx.shape) + tuple(data.shape[axis + 1:])
    return picked if idx.ndim == 1 else apply(ctx, "reshape", [picked], shape=target)


def _folded_only(ctx, node):
    raise SymgradError(f"{node.op_type} is imported only as shape arithmetic (all inputs known at import); here "
                       "an input is computed from the data")


translates("ConstantOfShape", "Range", "Mod", "EyeLike", "ReduceProd", "NonZero", "Trilu", "OneHot", status=FOLDED,
           note="shape arithmetic: evaluated at import when every input is known (the batch size as a symbol)")(
    _folded_only)

unsupported("int outputs have no gradient and no IR form yet", "ArgMax", "ArgMin", "TopK", "Unique")
unsupported("control flow is not imported", "If", "Loop", "Scan")
