"""Tidy pass: a sum of zero-padded pieces that tile one axis is their Concat.

The adjoint of a Slice pads its gradient back to the input's size (pad_axis); when a
tensor is cut into pieces (an RNN's gates, its time steps), autodiff sums the padded
gradients: k full-size Pads and k - 1 Adds. When the pieces tile the axis exactly, that
sum is one Concat of the unpadded gradients: fewer nodes, and no full-size temporaries.
"""
from onnx import helper, numpy_helper

from .onnx_graph import consumers, set_nodes, static_shapes


def _pad_piece(node, consts, shapes):
    """(axis, begin, length, data) of a constant-zero Pad along one axis, or None."""
    if node.op_type != "Pad" or len(node.input) not in (2, 3) or node.input[1] not in consts:
        return None
    if any(a.name == "mode" and helper.get_attribute_value(a) not in (b"constant", "constant")
           for a in node.attribute):
        return None
    if len(node.input) == 3 and node.input[2]:
        value = consts.get(node.input[2])
        if value is None or value.size != 1 or float(value.reshape(-1)[0]) != 0.0:
            return None
    pads = [int(p) for p in consts[node.input[1]].reshape(-1)]
    r = len(pads) // 2
    axes = [i for i in range(r) if pads[i] or pads[r + i]]
    shape = shapes.get(node.input[0])
    if len(axes) != 1 or shape is None or len(shape) != r or not isinstance(shape[axes[0]], int):
        return None
    a = axes[0]
    return a, pads[a], shape[a], pads[a] + shape[a] + pads[r + a]


def fuse_pad_sums(model):
    g = model.graph
    outputs = {o.name for o in g.output}
    users = consumers(g)
    producer = {o: n for n in g.node for o in n.output}
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes = None
    removed, replaced = set(), {}

    def single_use(name):
        return name not in outputs and len(users.get(name, [])) == 1

    for root in g.node:
        if root.op_type != "Add" or id(root) in removed:
            continue
        out = root.output[0]
        if single_use(out) and users[out][0].op_type == "Add":
            continue                            # not the root of its Add tree
        adds, leaves, stack = [root], [], list(root.input)
        while stack:
            name = stack.pop()
            n = producer.get(name)
            if n is not None and n.op_type == "Add" and single_use(name):
                adds.append(n)
                stack.extend(n.input)
            else:
                leaves.append(name)
        pads = [producer.get(name) for name in leaves]
        if len(leaves) < 2 or any(p is None or p.op_type != "Pad" or not single_use(p.output[0]) for p in pads):
            continue
        if shapes is None:
            shapes = static_shapes(model)
        pieces = [_pad_piece(p, consts, shapes) for p in pads]
        if any(p is None for p in pieces) or len({(p[0], p[3]) for p in pieces}) != 1:
            continue
        axis = pieces[0][0]
        others = {tuple(d for i, d in enumerate(shapes[p.input[0]]) if i != axis) for p in pads}
        if len(others) != 1 or any(d is None for d in next(iter(others))):
            continue                            # pieces that broadcast against each other
        order = sorted(zip(pieces, pads), key=lambda t: t[0][1])
        at = 0
        for (axis, begin, length, total), _ in order:
            if begin != at:
                break
            at += length
        else:
            if at != order[0][0][3]:
                continue
            axis = order[0][0][0]
            concat = helper.make_node("Concat", [p.input[0] for _, p in order], [out], name=root.name + "/concat",
                                      axis=axis)
            removed |= {id(n) for n in adds} | {id(p) for p in pads}
            replaced[id(root)] = concat
    if not replaced:
        return False
    # each Concat goes where its root Add was: after every piece, before every user
    set_nodes(g, [replaced.get(id(n), n) for n in g.node if id(n) in replaced or id(n) not in removed])
    return True
