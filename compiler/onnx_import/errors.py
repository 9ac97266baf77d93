"""The message of an op outside docs/ops.md."""
from ..errors import UnsupportedOpError


def unsupported_op(node, position, reason=None):
    why = f" ({reason})" if reason else ""
    label = repr(node.name) if node.name else "(unnamed)"
    err = UnsupportedOpError(
        f"ONNX op {node.op_type!r} (node {label}, #{position} in graph order) is not supported by the importer{why}; "
        "nothing was written. The ops symgrad imports are listed in docs/ops.md and by `symgrad ops`.")
    err.op_type, err.node_name, err.position = node.op_type, node.name, position
    return err
