"""Tidy an emitted ONNX graph before it is saved.

The printer and the VJP rules emit locally sensible nodes; seen whole, a training graph
then holds shape arithmetic on tensors whose shapes are static, repeated nodes, and
transposes feeding matrix products. These passes rewrite the graph the way a person
writing it by hand would, and keep every graph input and output name:

- graph outputs take over the name of the node that computes them (no Identity);
- ``Shape`` of a statically shaped tensor becomes a constant, and a node whose inputs
  are all small constants is evaluated now (``onnx.reference``);
- the batch size ``N`` read off several tensors' shapes is read once, as one scalar;
- identical nodes (same op, inputs and attributes) are merged;
- labels cast to float only to be compared with integral class indices are compared
  as integers;
- ``MatMul`` of 2-D operands absorbs a ``Transpose`` (Gemm transA/transB) and a bias
  ``Add``;
- ``ReduceSum(keepdims=1)`` followed by the ``Reshape`` that drops the reduced axes
  becomes ``ReduceSum(keepdims=0)``;
- a sum of zero-padded pieces that tile one axis (slice adjoints) becomes one
  ``Concat`` (tidy_concat.py);
- nodes and initializers nothing uses are dropped.
"""
import numpy as np
from onnx import TensorProto, helper, numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from .onnx_graph import (attr as _attr, consumers as _consumers, infer as _infer, is_static as _is_static,
                         opset as _opset, rename_inputs as _rename_inputs, set_nodes as _set_nodes,
                         static_shapes as _static_shapes)
from .tidy_concat import fuse_pad_sums
from .tidy_gemm import fold_scaled_update, fuse_gemm

_FOLD_LIMIT = 4096          # elements: larger constants stay computed (no bloated files)
_NEVER_MERGE = {"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Multinomial",
                "Bernoulli", "Dropout"}


def name_outputs(b, pairs, graph_inputs):
    """Give each graph output (src, name) its exact name: rename the node that computes
    ``src`` when it can, else add an Identity (a graph input, a constant, a second name)."""
    produced = {o for n in b.nodes for o in n.output}
    rename, identities = {}, []
    for src, name in pairs:
        if src in produced and src not in rename and src not in graph_inputs:
            rename[src] = name
        else:
            identities.append((rename.get(src, src), name))
    for n in b.nodes:
        n.input[:] = [rename.get(i, i) for i in n.input]
        n.output[:] = [rename.get(o, o) for o in n.output]
    for src, name in identities:
        b.alias(src, name)


def tidy(model):
    """Run the passes until none changes the graph; returns the (same) model."""
    for _ in range(6):
        changed = _fold_constants(model)
        changed |= _merge_duplicates(model.graph)
        changed |= fuse_gemm(model)
        changed |= fold_scaled_update(model)
        changed |= fuse_pad_sums(model)
        changed |= _squeeze_reductions(model)
        changed |= _single_dim_products(model)
        changed |= _integer_compare(model)
        changed |= _remove_dead(model.graph)
        if not changed:
            break
    return model


# ---------------------------------------------------------------- helpers

# ---------------------------------------------------------------- passes

def _fold_constants(model):
    g = model.graph
    outputs = {o.name for o in g.output}
    graph_inputs = {i.name for i in g.input}
    consts = {i.name: i for i in g.initializer if i.name not in graph_inputs}
    shapes = None
    opset = {"": _opset(model)}
    partial = {}            # Shape output -> dims, some symbolic (the batch 'N')
    same_dims = {}          # picked symbolic dims -> the first Gather that computed them
    rename = {}
    keep, changed = [], False
    for n in g.node:
        n.input[:] = [rename.get(i, i) for i in n.input]
        value = None
        if n.op_type == "Shape" and not any(o in outputs for o in n.output):
            shapes = shapes if shapes is not None else _static_shapes(model)
            dims = shapes.get(n.input[0])
            if dims is not None and not n.attribute:
                if _is_static(dims):
                    value = np.asarray(dims, dtype=np.int64)
                else:
                    partial[n.output[0]] = dims
        elif (n.op_type == "Gather" and n.input[0] in partial and n.input[1] in consts
              and _attr(n, "axis", 0) == 0 and n.output[0] not in outputs):
            index = numpy_helper.to_array(consts[n.input[1]])
            picked = np.asarray(partial[n.input[0]], dtype=object)[index]
            flat = list(np.ravel(picked))
            if all(isinstance(d, int) for d in flat):     # the static dims of a partly known shape
                value = np.asarray(picked, dtype=np.int64)
            elif all(d is not None for d in flat):        # 'N' of two tensors is one number
                key = (tuple(flat), index.shape)
                if key in same_dims:
                    rename[n.output[0]] = same_dims[key]
                    changed = True
                    continue
                same_dims[key] = n.output[0]
        elif (n.input and all(i in consts for i in n.input if i) and n.domain in ("", "ai.onnx")
              and len(n.output) == 1 and n.output[0] not in outputs and n.op_type not in _NEVER_MERGE):
            feeds = {i: numpy_helper.to_array(consts[i]) for i in n.input if i}
            if sum(a.size for a in feeds.values()) <= _FOLD_LIMIT:
                (value,) = ReferenceEvaluator(n, opsets=opset).run(None, feeds)
                value = np.asarray(value) if value.size <= _FOLD_LIMIT else None
        if value is None:
            keep.append(n)
            continue
        init = numpy_helper.from_array(value, n.output[0])
        g.initializer.append(init)
        consts[init.name] = init
        changed = True
    if changed:
        _set_nodes(g, keep)
    return changed


def _node_key(n):
    attrs = tuple(sorted((a.name, a.SerializeToString()) for a in n.attribute))
    return (n.domain, n.op_type, tuple(n.input), attrs)


def _merge_duplicates(graph):
    outputs = {o.name for o in graph.output}
    seen, rename, keep, changed = {}, {}, [], False
    for n in graph.node:
        n.input[:] = [rename.get(i, i) for i in n.input]
        key = _node_key(n)
        first = seen.get(key)
        if first is not None and n.op_type not in _NEVER_MERGE and not any(o in outputs for o in n.output):
            rename.update(zip(n.output, first.output))
            changed = True
            continue
        seen.setdefault(key, n)
        keep.append(n)
    if changed:
        _set_nodes(graph, keep)
    return changed


def _squeeze_reductions(model):
    g = model.graph
    outputs = {o.name for o in g.output}
    users = _consumers(g)
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes = None
    removed, changed = set(), False
    for n in g.node:
        if n.op_type != "ReduceSum" or _attr(n, "keepdims", 1) != 1 or n.output[0] in outputs:
            continue
        after = users.get(n.output[0], [])
        if len(after) != 1 or after[0].op_type != "Reshape" or after[0].input[1] not in consts:
            continue
        shapes = shapes if shapes is not None else _static_shapes(model)
        in_shape = shapes.get(n.input[0])
        if in_shape is None:
            continue
        axes = _attr(n, "axes")
        if axes is None:
            if len(n.input) < 2 or n.input[1] not in consts:
                continue
            axes = consts[n.input[1]].tolist()
        axes = {a % len(in_shape) for a in axes}
        kept = [d for i, d in enumerate(in_shape) if i not in axes]
        if not _is_static(kept) or list(consts[after[0].input[1]].tolist()) != kept:
            continue
        reshape = after[0]
        n.output[:] = [reshape.output[0]]
        for a in n.attribute:
            if a.name == "keepdims":
                a.i = 0
                break
        else:
            n.attribute.append(helper.make_attribute("keepdims", 0))
        removed.add(id(reshape))
        changed = True
    if removed:
        _set_nodes(g, [n for n in g.node if id(n) not in removed])
    return changed


def _single_dim_products(model):
    """ReduceProd over Gather(Shape(t), idx) where one picked dim is symbolic and the others
    multiply to 1 (a loss's element count over (N, 1)): Gather that dim as a scalar instead."""
    g = model.graph
    outputs = {o.name for o in g.output}
    users = _consumers(g)
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    shapes, removed = None, set()
    for n in g.node:
        if n.op_type != "ReduceProd" or _attr(n, "keepdims", 1) != 0 or n.output[0] in outputs:
            continue
        gather = producers.get(n.input[0])
        if (gather is None or gather.op_type != "Gather" or gather.input[1] not in consts
                or len(users.get(gather.output[0], [])) != 1 or _attr(gather, "axis", 0) != 0):
            continue
        shape_node = producers.get(gather.input[0])
        index = consts[gather.input[1]]
        if shape_node is None or shape_node.op_type != "Shape" or shape_node.attribute or index.ndim != 1:
            continue
        shapes = shapes if shapes is not None else _static_shapes(model)
        dims = shapes.get(shape_node.input[0])
        if dims is None:
            continue
        picked = [dims[i] for i in index.tolist()]
        symbolic = [i for i, d in zip(index.tolist(), picked) if not isinstance(d, int)]
        if len(symbolic) != 1 or np.prod([d for d in picked if isinstance(d, int)]) != 1:
            continue
        scalar = numpy_helper.from_array(np.asarray(symbolic[0], dtype=np.int64), gather.output[0] + "/index")
        g.initializer.append(scalar)
        gather.input[1] = scalar.name
        gather.output[0] = n.output[0]
        removed.add(id(n))
    if removed:
        _set_nodes(g, [n for n in g.node if id(n) not in removed])
    return bool(removed)


def _integer_compare(model):
    """Equal(Unsqueeze(Cast(labels to float)), classes) with int64 labels and integral
    constant classes: compare the integers, without the Cast (exact past 2**24 too)."""
    g = model.graph
    users = _consumers(g)
    inits = {i.name: i for i in g.initializer}
    outputs = {o.name for o in g.output}
    types = None
    changed = False
    for cast in list(g.node):
        if (cast.op_type != "Cast" or cast.output[0] in outputs
                or _attr(cast, "to") not in (TensorProto.FLOAT, TensorProto.DOUBLE)):
            continue
        after = users.get(cast.output[0], [])
        if not after or any(u.op_type != "Unsqueeze" or u.output[0] in outputs for u in after):
            continue
        equals = [e for u in after for e in users.get(u.output[0], [])]
        if not equals or any(e.op_type != "Equal" for e in equals):
            continue
        consts = []
        for e, u in ((e, u) for u in after for e in users.get(u.output[0], [])):
            other = e.input[1] if e.input[0] == u.output[0] else e.input[0]
            arr = numpy_helper.to_array(inits[other]) if other in inits else None
            if arr is None or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                break
            consts.append((e, other, arr))
        else:
            types = types if types is not None else _infer(model)[1]
            if types.get(cast.input[0]) != TensorProto.INT64:
                continue
            for u in after:
                u.input[0] = cast.input[0]
            for e, other, arr in consts:
                new = numpy_helper.from_array(arr.astype(np.int64), other + "/int64")
                if new.name not in inits:
                    g.initializer.append(new)
                    inits[new.name] = new
                e.input[:] = [new.name if i == other else i for i in e.input]
            changed = True
    return changed


def _remove_dead(graph):
    needed = {o.name for o in graph.output}
    keep = []
    for n in reversed(list(graph.node)):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    changed = len(keep) != len(graph.node)
    if changed:
        _set_nodes(graph, list(reversed(keep)))
    unused = [i for i in graph.initializer if i.name not in needed]
    if unused:
        inputs = {i.name for i in graph.input}
        kept = [i for i in graph.initializer if i.name in needed or i.name in inputs]
        if len(kept) != len(graph.initializer):
            del graph.initializer[:]
            graph.initializer.extend(kept)
            changed = True
    return changed

