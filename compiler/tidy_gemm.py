"""Tidy passes around matrix products (see tidy.py for the driver).

- ``MatMul`` of 2-D operands absorbs a ``Transpose`` (Gemm transA/transB) and a bias Add;
- ``W - s * Gemm(A, B)`` with a scalar ``s`` (the plain SGD update) becomes
  ``Gemm(A, B * (-s)) + W`` (or ``Gemm(A, B * (-s), C=W)``, see ACCUMULATE_IN_GEMM): the
  scalar multiplies the smaller operand instead of the whole weight-sized product.
"""
from onnx import helper

from .onnx_graph import attr as _attr, consumers as _consumers, set_nodes as _set_nodes, static_shapes as infer_shapes


def _transposed_2d(producers, name):
    t = producers.get(name)
    if t is not None and t.op_type == "Transpose" and list(_attr(t, "perm", [])) == [1, 0]:
        return t.input[0]
    return None


def fuse_gemm(model):
    """MatMul absorbs a Transpose of either 2-D operand (transA/transB) and a bias Add."""
    g = model.graph
    outputs = {o.name for o in g.output}
    producers = {o: n for n in g.node for o in n.output}
    users = _consumers(g)
    shapes = infer_shapes(model)
    removed, changed = set(), False
    for n in list(g.node):
        if n.op_type != "MatMul" or id(n) in removed:
            continue
        a, b = n.input
        ta, tb = _transposed_2d(producers, a), _transposed_2d(producers, b)
        if len(shapes.get(a, ())) != 2 or len(shapes.get(b, ())) != 2:
            continue
        out = n.output[0]
        bias, add = None, None
        after = users.get(out, [])
        if len(after) == 1 and after[0].op_type == "Add" and out not in outputs:
            add = after[0]
            other = add.input[1] if add.input[0] == out else add.input[0]
            n_dim = shapes[b][0] if tb else shapes[b][1]
            if other != out and isinstance(n_dim, int) and shapes.get(other) in ((n_dim,), (1, n_dim)):
                bias = other
            else:
                add = None
        if ta is None and tb is None and bias is None:
            continue
        inputs = [ta or a, tb or b] + ([bias] if bias else [])
        target = add.output[0] if add is not None else out
        gemm = helper.make_node("Gemm", inputs, [target], name=n.name, transA=int(ta is not None),
                                transB=int(tb is not None))
        n.CopyFrom(gemm)
        if add is not None:
            removed.add(id(add))
        changed = True
    if removed:
        _set_nodes(g, [n for n in g.node if id(n) not in removed])
    return changed


def _scalar(shapes, name):
    dims = shapes.get(name)
    return dims is not None and all(d == 1 for d in dims)


# Whether W - s * Gemm(A, B) becomes Gemm(A, -s * B, C=W) (the accumulator does the
# subtraction) or Gemm(A, -s * B) + W. Measured on the MLP 784-256-10 SGD train step
# (onnxruntime 1.32, interleaved worker processes, medians of 11 rounds), Add form against
# C form: batch 64 1.12x and batch 32 1.18x on two threads (onnxruntime's Gemm copies C into
# its output before the parallel product), 0.98x and 0.94x on one. Trainers use every core
# by default, so the Add form is the default.
ACCUMULATE_IN_GEMM = False


def fold_scaled_update(model):
    g = model.graph
    outputs = {o.name for o in g.output}
    users = _consumers(g)
    shapes = infer_shapes(model)
    removed, added, changed = set(), {}, False
    for gemm in list(g.node):
        if (gemm.op_type != "Gemm" or len(gemm.input) != 2 or _attr(gemm, "alpha", 1.0) != 1.0
                or gemm.output[0] in outputs or len(users.get(gemm.output[0], [])) != 1):
            continue
        mul = users[gemm.output[0]][0]
        if mul.op_type != "Mul" or mul.output[0] in outputs or len(users.get(mul.output[0], [])) != 1:
            continue
        scale = mul.input[1] if mul.input[0] == gemm.output[0] else mul.input[0]
        sub = users[mul.output[0]][0]
        out_shape = shapes.get(gemm.output[0])
        if (not _scalar(shapes, scale) or sub.op_type != "Sub" or sub.input[1] != mul.output[0]
                or out_shape is None or shapes.get(sub.input[0]) != out_shape):
            continue
        a, b = gemm.input
        ta, tb = _attr(gemm, "transA", 0), _attr(gemm, "transB", 0)
        rows, cols = out_shape  # scaling A costs rows*K, scaling B costs K*cols
        scale_b = not (isinstance(rows, int) and isinstance(cols, int) and rows < cols)
        neg = helper.make_node("Neg", [scale], [gemm.output[0] + "/neg_scale"], name=gemm.name + "/neg_scale")
        target = b if scale_b else a
        scaled = helper.make_node("Mul", [target, neg.output[0]], [gemm.output[0] + "/scaled"],
                                  name=gemm.name + "/scaled")
        inputs = [a, scaled.output[0]] if scale_b else [scaled.output[0], b]
        if ACCUMULATE_IN_GEMM:
            fused = [helper.make_node("Gemm", inputs + [sub.input[0]], [sub.output[0]], name=gemm.name,
                                      transA=ta, transB=tb)]
        else:
            step = gemm.output[0] + "/step"
            fused = [helper.make_node("Gemm", inputs, [step], name=gemm.name, transA=ta, transB=tb),
                     helper.make_node("Add", [sub.input[0], step], [sub.output[0]], name=gemm.name + "/apply")]
        added[id(sub)] = [neg, scaled] + fused  # where the Sub was: after every input, C included
        removed |= {id(gemm), id(mul)}
        changed = True
    if changed:
        nodes = []
        for n in g.node:
            if id(n) in added:
                nodes.extend(added[id(n)])
            elif id(n) not in removed:
                nodes.append(n)
        _set_nodes(g, nodes)
    return changed
