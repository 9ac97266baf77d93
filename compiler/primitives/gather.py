"""Row lookup (Embedding) and its adjoint, the scatter-add of gradient rows."""
import numpy as np
import sympy
from onnx import TensorProto, helper

from .. import ops
from ..errors import ShapeError
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
