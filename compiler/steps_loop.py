"""steps_per_execution: K training steps in one onnxruntime run.

``train_loop(train_step, steps, feeds)`` turns a compiled ``train_step`` graph into K steps
over K stacked batches: written out one after another (``steps_unrolled``) while the graph
stays small, else wrapped in an ONNX ``Loop`` (``steps_loop``). It is a graph-to-graph pass:
each step is the train_step's own nodes, so one execution computes exactly what K separate
steps compute, and the
per-step costs that live outside the graph (binding the batch, launching the run, reading
the scalars back) are paid once per K steps (Keras's ``steps_per_execution``).

The outer graph's signature is the train_step's, except that

- every input with a batch dimension (x, y, sample_weight, dropout noise) is stacked:
  shape (K, N, ...), step k of the execution reads slice k;
- ``step`` is the number of the first update made; the body counts it up;
- the scalar outputs (loss, metrics) become (K,) vectors, one value per step;
- ``next/<name>`` is the state after the K-th step.

Everything else a step reads (the learning rate, frozen weights, the train_step's
constants) it reads from the outer graph.
"""
import onnx
from onnx import TensorProto, helper

from .errors import ParameterError

_BODY = "loop/"


def _is_batched(value_info):
    dims = value_info.type.tensor_type.shape.dim
    return len(dims) > 0 and not dims[0].HasField("dim_value")


def _rank(value_info):
    return len(value_info.type.tensor_type.shape.dim)


def _with_shape(value_info, name, shape):
    elem = value_info.type.tensor_type.elem_type
    return helper.make_tensor_value_info(name, elem, shape)


def _dims(value_info):
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


def check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ParameterError(f"steps_per_execution must be an integer >= 1, got {steps!r}")
    return steps


# Up to this many nodes (K x the train_step's), the K steps are written out one after
# another (steps_unrolled); past it, an ONNX Loop keeps the graph small. onnxruntime copies
# a Loop's carried state every iteration, so the unrolled form is faster where both fit:
# MLP 784-256-10, SGD, K = 8, 2 threads, interleaved workers, medians of 11 rounds:
# batch 32 3760 against 3511 steps/s (1.07x), batch 64 2293 against 2133 (1.08x).
UNROLL_MAX_NODES = 4096


def train_loop(train_step, steps, feeds, step_input="step"):
    """The train_loop graph: K train steps per run, unrolled when small enough, else a Loop.
    Both have the same signature and compute exactly what K train_step runs compute."""
    if steps * len(train_step.graph.node) <= UNROLL_MAX_NODES:
        return steps_unrolled(train_step, steps, feeds, step_input)
    return steps_loop(train_step, steps, feeds, step_input)


def steps_loop(train_step, steps, feeds, step_input="step"):
    """The train_loop graph: ``train_step`` (a ModelProto) run ``steps`` times in a Loop.
    ``feeds``: {output name: input name} of the state handed from one step to the next."""
    g = train_step.graph
    inputs = {v.name: v for v in g.input}
    outputs = {v.name: v for v in g.output}
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        raise ParameterError("steps_per_execution: the train_step graph already holds a subgraph; "
                             "accepted: steps_per_execution=1 for this program")
    carried = [(out, feeds[out]) for out in outputs if out in feeds]
    carried_in = {inp for _, inp in carried}
    batched = [name for name, v in inputs.items() if _is_batched(v)]
    scalars = [name for name, v in outputs.items() if name not in feeds and _rank(v) == 0]
    # names the body defines; every other name it reads comes from the outer scope
    local = set(batched) | carried_in | {step_input}
    local |= {o for n in g.node for o in n.output if o}

    def inner(name):
        return _BODY + name if name in local else name

    body_nodes = [helper.make_node("Gather", [name, _BODY + "i"], [_BODY + name], name=_BODY + "slice/" + name, axis=0)
                  for name in batched]
    for n in g.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        copy.name = _BODY + n.name if n.name else ""
        del copy.input[:]
        copy.input.extend(inner(i) if i else "" for i in n.input)
        del copy.output[:]
        copy.output.extend(inner(o) if o else "" for o in n.output)
        body_nodes.append(copy)
    elem = inputs[step_input].type.tensor_type.elem_type
    one = helper.make_tensor(_BODY + "one", elem, [], [1.0])
    body_nodes.append(helper.make_node("Constant", [], [_BODY + "one_c"], name=_BODY + "one", value=one))
    body_nodes.append(helper.make_node("Add", [_BODY + step_input, _BODY + "one_c"], [_BODY + "next_step"],
                                       name=_BODY + "count"))
    body_nodes.append(helper.make_node("Identity", [_BODY + "cond"], [_BODY + "cond_out"], name=_BODY + "go_on"))

    body_in = [helper.make_tensor_value_info(_BODY + "i", TensorProto.INT64, []),
               helper.make_tensor_value_info(_BODY + "cond", TensorProto.BOOL, []),
               _with_shape(inputs[step_input], _BODY + step_input, [])]
    body_in += [_with_shape(inputs[inp], _BODY + inp, _dims(inputs[inp])) for _, inp in carried]
    body_out = [helper.make_tensor_value_info(_BODY + "cond_out", TensorProto.BOOL, []),
                _with_shape(inputs[step_input], _BODY + "next_step", [])]
    body_out += [_with_shape(outputs[out], _BODY + out, _dims(outputs[out])) for out, _ in carried]
    body_out += [_with_shape(outputs[s], _BODY + s, []) for s in scalars]
    body = helper.make_graph(body_nodes, "train_step_body", body_in, body_out)

    trip = helper.make_tensor("steps_per_execution", TensorProto.INT64, [], [steps])
    loop = helper.make_node(
        "Loop", ["steps_per_execution", "", step_input] + [inp for _, inp in carried],
        ["loop/final_step"] + [out for out, _ in carried] + scalars, name="steps_loop", body=body)
    outer_in = [_with_shape(v, name, [steps] + _dims(v)) if name in batched else v for name, v in inputs.items()]
    outer_out = [outputs[out] for out, _ in carried] + [_with_shape(outputs[s], s, [steps]) for s in scalars]
    graph = helper.make_graph([loop], "train_loop", outer_in, outer_out, initializer=list(g.initializer) + [trip])
    model = helper.make_model(graph, opset_imports=list(train_step.opset_import),
                              doc_string=f"symgrad train_loop: {steps} train_step runs per execution")
    model.ir_version = train_step.ir_version
    return model


def steps_unrolled(train_step, steps, feeds, step_input="step"):
    """The train_loop graph with the same signature as ``steps_loop``'s, but the K steps
    written out one after another instead of a Loop: no loop-carried copies of the state
    between steps, and onnxruntime plans every buffer of the K steps at once."""
    g = train_step.graph
    inputs = {v.name: v for v in g.input}
    outputs = {v.name: v for v in g.output}
    carried = {inp: out for out, inp in feeds.items() if out in outputs}
    batched = [name for name, v in inputs.items() if _is_batched(v)]
    scalars = [name for name, v in outputs.items() if name not in feeds and _rank(v) == 0]
    produced = {o for n in g.node for o in n.output if o}
    elem = inputs[step_input].type.tensor_type.elem_type
    nodes = []
    inits = list(g.initializer)
    current = {inp: inp for inp in carried}          # the state each step reads
    for k in range(steps):
        p = f"step{k}/"
        names = {}
        idx = p + "index"
        inits.append(helper.make_tensor(idx, TensorProto.INT64, [], [k]))
        for name in batched:
            names[name] = p + name
            nodes.append(helper.make_node("Gather", [name, idx], [p + name], name=p + "slice/" + name, axis=0))
        if k:
            inc = p + "offset"
            inits.append(helper.make_tensor(inc, elem, [], [float(k)]))
            names[step_input] = p + step_input
            nodes.append(helper.make_node("Add", [step_input, inc], [p + step_input], name=p + "count"))
        names.update(current)
        last = k == steps - 1

        def local(name):  # the last step writes the graph's state outputs under their own names
            return name if (last and name in feeds) else p + name

        for n in g.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(n)
            copy.name = p + n.name if n.name else ""
            del copy.input[:]
            copy.input.extend(names.get(i, local(i) if i in produced else i) if i else "" for i in n.input)
            del copy.output[:]
            copy.output.extend(local(o) if o else "" for o in n.output)
            nodes.append(copy)
        current = {inp: (out if last else p + out) for inp, out in carried.items()}
    for s in scalars:
        per_step = []
        for k in range(steps):
            u = f"step{k}/{s}/as_vector"
            nodes.append(helper.make_node("Unsqueeze", [f"step{k}/{s}", "unrolled/axis0"], [u], name=u))
            per_step.append(u)
        nodes.append(helper.make_node("Concat", per_step, [s], name=s + "/per_step", axis=0))
    inits.append(helper.make_tensor("unrolled/axis0", TensorProto.INT64, [1], [0]))
    outer_in = [_with_shape(v, name, [steps] + _dims(v)) if name in batched else v for name, v in inputs.items()]
    outer_out = [outputs[out] for out in outputs if out in feeds] + [_with_shape(outputs[s], s, [steps])
                                                                     for s in scalars]
    graph = helper.make_graph(nodes, "train_loop", outer_in, outer_out, initializer=inits)
    model = helper.make_model(graph, opset_imports=list(train_step.opset_import),
                              doc_string=f"symgrad train_loop: {steps} train_step runs per execution, unrolled")
    model.ir_version = train_step.ir_version
    return model
