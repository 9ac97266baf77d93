"""Row lookup (Embedding) and its adjoint, the scatter-add of gradient rows."""
import numpy as np
import sympy
from onnx import TensorProto, helper

from .. import ops
from ..errors import OpsetError, ShapeError
from ..ir import Primitive, primitive

# ScatterND learnt reduction='add' at opset 16; before that, one_hot(ids)^T @ g
_SCATTER_ADD_SINCE = 16


def _int_ids(b, node, ids_value, name):
    """Indices as int64, whatever dtype the graph input carries."""
    if ids_value.dtype == "int64":
        return name
    return b.node("Cast", [name], hint=node.name + "/ids", to=TensorProto.INT64)


@primitive
class Gather(Primitive):
    """gather(table, ids): table (V, *row) at integer ids -> ids.shape + row."""

    name = "gather"

    def shape(self, inputs, attrs):
        table, ids = inputs
        if table.rank < 1:
            raise ShapeError(f"gather: the table must have rank >= 1, got {table.shape}")
        return tuple(ids.shape) + tuple(table.shape[1:])

    def vjp(self, node, g, ad):
        table, ids = node.inputs
        return [ad.apply("scatter_add", [ids, ad.materialize(g, node)], rows=table.shape[0]).sym, None]

    def emit(self, b, node, ins):
        return b.node("Gather", [ins[0], _int_ids(b, node, node.inputs[1], ins[1])], hint=node.name, axis=0)

    def to_sympy(self, node, args):
        return ops.Gather.make(args)


@primitive
class ScatterAdd(Primitive):
    """scatter_add(ids, updates): zeros (rows, *row) with updates[i] added at row ids[i]."""

    name = "scatter_add"

    def shape(self, inputs, attrs):
        ids, upd = inputs
        if tuple(upd.shape[:ids.rank]) != tuple(ids.shape):
            raise ShapeError(f"scatter_add: updates {upd.shape} must start with the ids shape {ids.shape}")
        return (int(attrs["rows"]),) + tuple(upd.shape[ids.rank:])

    def vjp(self, node, v, ad):
        return [None, ad.apply("gather", [ad.materialize(v, node), node.inputs[0]]).sym]

    def emit(self, b, node, ins):
        ids_v, upd_v = node.inputs
        h = node.name
        ids = _int_ids(b, node, ids_v, ins[0])
        out_shape = list(node.shape)
        if b.opset >= _SCATTER_ADD_SINCE:
            zero = b.node("ConstantOfShape", [b.const_i64(out_shape)], hint=h + "/zeros",
                          value=_zero_tensor(b))
            idx = b.node("Unsqueeze", [ids, b.const_i64([-1])], hint=h + "/index")
            return b.node("ScatterND", [zero, idx, ins[1]], hint=h, reduction="add")
        row = int(np.prod(out_shape[1:]))
        flat_ids = b.node("Reshape", [ids, b.const_i64([-1, 1])], hint=h + "/flat_ids")
        classes = b.const_i64(list(range(out_shape[0])), hint=h + "/rows")
        onehot = b.node("Cast", [b.node("Equal", [flat_ids, classes], hint=h + "/eq")], hint=h + "/onehot",
                        to=b.float_type)                                          # (M, rows)
        upd = b.node("Reshape", [ins[1], b.const_i64([-1, row])], hint=h + "/flat_updates")   # (M, row)
        summed = b.node("MatMul", [b.node("Transpose", [onehot], hint=h + "/onehot_t", perm=[1, 0]), upd],
                        hint=h + "/sum")
        return b.node("Reshape", [summed, b.const_i64(out_shape)], hint=h)

    def to_sympy(self, node, args):
        return sympy.Function("scatter_add")(*args)


def _zero_tensor(b):
    return helper.make_tensor("zero", b.float_type, [1], [0.0])


# ScatterElements learnt reduction='add' at opset 16; before that, a one-hot contraction
def _axis_of(x, attrs, op):
    axis = int(attrs.get("axis", 0))
    if not -x.rank <= axis < x.rank:
        raise ShapeError(f"{op}: axis {axis} is out of range for {x.shape}")
    return axis % x.rank


@primitive
class GatherElements(Primitive):
    """gather_elements(x, idx): y[..i..] = x[..idx[..i..]..] along ``axis`` (ONNX
    GatherElements; negative indices count from the end). y has idx's shape."""

    name = "gather_elements"

    def shape(self, inputs, attrs):
        x, idx = inputs
        if idx.rank != x.rank:
            raise ShapeError(f"gather_elements: indices {idx.shape} must have the rank of the data {x.shape}")
        attrs["axis"] = axis = _axis_of(x, attrs, "gather_elements")
        if not isinstance(x.shape[axis], int):
            raise ShapeError(f"gather_elements: the gathered axis {axis} of {x.shape} must be static")
        return tuple(idx.shape)

    def vjp(self, node, g, ad):
        x, idx = node.inputs
        return [ad.apply("scatter_elements_add", [idx, ad.materialize(g, node), x], axis=node.attrs["axis"]).sym,
                None]

    def emit(self, b, node, ins):
        return b.node("GatherElements", [ins[0], _int_ids(b, node, node.inputs[1], ins[1])], hint=node.name,
                      axis=node.attrs["axis"])

    def to_sympy(self, node, args):
        return sympy.Function("gather_elements")(*args)


@primitive
class ScatterElementsAdd(Primitive):
    """scatter_elements_add(idx, updates, like): zeros shaped like ``like`` with each update
    added at its index along ``axis`` (repeated indices accumulate)."""

    name = "scatter_elements_add"

    def shape(self, inputs, attrs):
        idx, upd, like = inputs
        if tuple(idx.shape) != tuple(upd.shape):
            raise ShapeError(f"scatter_elements_add: updates {upd.shape} must have the indices' shape {idx.shape}")
        attrs["axis"] = _axis_of(like, attrs, "scatter_elements_add")
        return tuple(like.shape)

    def vjp(self, node, v, ad):
        idx = node.inputs[0]
        return [None, ad.apply("gather_elements", [ad.materialize(v, node), idx], axis=node.attrs["axis"]).sym, None]

    def emit(self, b, node, ins):
        idx_v, upd_v, like = node.inputs
        h, axis = node.name, node.attrs["axis"]
        ids = _int_ids(b, node, idx_v, ins[0])
        if b.opset >= _SCATTER_ADD_SINCE:
            zero = b.node("ConstantOfShape", [b.node("Shape", [ins[2]], hint=h + "/shape")], hint=h + "/zeros",
                          value=_zero_tensor(b))
            return b.node("ScatterElements", [zero, ids, ins[1]], hint=h, axis=axis, reduction="add")
        if tuple(idx_v.shape[:axis] + idx_v.shape[axis + 1:]) != tuple(like.shape[:axis] + like.shape[axis + 1:]):
            raise OpsetError(f"the gradient of gather_elements with indices {idx_v.shape} smaller than the data "
                             f"{like.shape} off the gathered axis needs opset >= {_SCATTER_ADD_SINCE}; "
                             f"got opset {b.opset}")
        n = like.shape[axis]
        # dx[.., j, ..] = sum_i g[.., i, ..] * (idx[.., i, ..] mod n == j): contract a one-hot on a new last axis
        wrapped = b.node("Mod", [b.node("Add", [ids, b.const_i64([n])], hint=h + "/shift"), b.const_i64([n])],
                         hint=h + "/wrap")
        hot = b.node("Equal", [b.node("Unsqueeze", [wrapped, b.const_i64([-1])], hint=h + "/col"),
                               b.const_i64(list(range(n)), hint=h + "/positions")], hint=h + "/eq")
        hot = b.node("Cast", [hot], hint=h + "/onehot", to=b.float_type)
        spread = b.node("Mul", [hot, b.node("Unsqueeze", [ins[1], b.const_i64([-1])], hint=h + "/g")], hint=h + "/spread")
        summed = b.reduce("ReduceSum", spread, (axis,), False, h + "/sum")        # the new axis is now last
        r = like.rank
        perm = list(range(axis)) + [r - 1] + list(range(axis, r - 1))
        return b.node("Transpose", [summed], hint=h, perm=perm)

    def to_sympy(self, node, args):
        return sympy.Function("scatter_elements_add")(*args)
