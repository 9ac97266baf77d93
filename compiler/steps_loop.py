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
    Both have the same signature and compute exactly what K train_step runs compute.
    ``feeds``: {output name: input name} of the state handed from one step to the next."""
    g = train_step.graph
    # a subgraph reads outer names that renaming the step's nodes would not follow
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        raise ParameterError("steps_per_execution: the train_step graph already holds a subgraph; "
                             "accepted: steps_per_execution=1 for this program")
    sig = _Signature(train_step, feeds)
    form = steps_unrolled if steps * len(g.node) <= UNROLL_MAX_NODES else steps_loop
    graph = form(train_step, steps, sig, step_input)
    model = helper.make_model(graph, opset_imports=list(train_step.opset_import),
                              doc_string=f"symgrad train_loop: {steps} train_step runs per execution")
    model.ir_version = train_step.ir_version
    return model


class _Signature:
    """What both forms read off the train_step: its inputs and outputs by name, the state
    carried from step to step, the batched inputs and the scalar outputs; and the outer
    graph's inputs (batched ones stacked to (K, N, ...)) and outputs (scalars as (K,))."""

    def __init__(self, train_step, feeds):
        g = train_step.graph
        self.inputs = {v.name: v for v in g.input}
        self.outputs = {v.name: v for v in g.output}
        self.carried = [(out, feeds[out]) for out in self.outputs if out in feeds]     # (output, input)
        self.batched = [name for name, v in self.inputs.items() if _is_batched(v)]
        self.scalars = [name for name, v in self.outputs.items() if name not in feeds and _rank(v) == 0]
        self.produced = {o for n in g.node for o in n.output if o}

    def outer_inputs(self, steps):
        return [_with_shape(v, name, [steps] + _dims(v)) if name in self.batched else v
                for name, v in self.inputs.items()]

    def outer_outputs(self, steps):
        return [self.outputs[out] for out, _ in self.carried] + [_with_shape(self.outputs[s], s, [steps])
                                                                 for s in self.scalars]


def _renamed(node, prefix, rename):
    """A copy of ``node`` named with ``prefix``, every input and output passed through ``rename``."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.name = prefix + node.name if node.name else ""
    del copy.input[:]
    copy.input.extend(rename(i) if i else "" for i in node.input)
    del copy.output[:]
    copy.output.extend(rename(o) if o else "" for o in node.output)
    return copy


def steps_loop(train_step, steps, sig, step_input="step"):
    """``train_step`` (a ModelProto) run ``steps`` times in an ONNX Loop: the train_loop graph."""
    g, inputs, outputs = train_step.graph, sig.inputs, sig.outputs
    # names the body defines; every other name it reads comes from the outer scope
    local = set(sig.batched) | {inp for _, inp in sig.carried} | {step_input} | sig.produced

    def inner(name):
        return _BODY + name if name in local else name

    body_nodes = [helper.make_node("Gather", [name, _BODY + "i"], [_BODY + name], name=_BODY + "slice/" + name, axis=0)
                  for name in sig.batched]
    body_nodes += [_renamed(n, _BODY, inner) for n in g.node]
    elem = inputs[step_input].type.tensor_type.elem_type
    one = helper.make_tensor(_BODY + "one", elem, [], [1.0])
    body_nodes.append(helper.make_node("Constant", [], [_BODY + "one_c"], name=_BODY + "one", value=one))
    body_nodes.append(helper.make_node("Add", [_BODY + step_input, _BODY + "one_c"], [_BODY + "next_step"],
                                       name=_BODY + "count"))
    body_nodes.append(helper.make_node("Identity", [_BODY + "cond"], [_BODY + "cond_out"], name=_BODY + "go_on"))

    body_in = [helper.make_tensor_value_info(_BODY + "i", TensorProto.INT64, []),
               helper.make_tensor_value_info(_BODY + "cond", TensorProto.BOOL, []),
               _with_shape(inputs[step_input], _BODY + step_input, [])]
    body_in += [_with_shape(inputs[inp], _BODY + inp, _dims(inputs[inp])) for _, inp in sig.carried]
    body_out = [helper.make_tensor_value_info(_BODY + "cond_out", TensorProto.BOOL, []),
                _with_shape(inputs[step_input], _BODY + "next_step", [])]
    body_out += [_with_shape(outputs[out], _BODY + out, _dims(outputs[out])) for out, _ in sig.carried]
    body_out += [_with_shape(outputs[s], _BODY + s, []) for s in sig.scalars]
    body = helper.make_graph(body_nodes, "train_step_body", body_in, body_out)

    trip = helper.make_tensor("steps_per_execution", TensorProto.INT64, [], [steps])
    loop = helper.make_node(
        "Loop", ["steps_per_execution", "", step_input] + [inp for _, inp in sig.carried],
        ["loop/final_step"] + [out for out, _ in sig.carried] + sig.scalars, name="steps_loop", body=body)
    return helper.make_graph([loop], "train_loop", sig.outer_inputs(steps), sig.outer_outputs(steps),
                             initializer=list(g.initializer) + [trip])


def steps_unrolled(train_step, steps, sig, step_input="step"):
    """The same graph with the K steps written out one after another instead of a Loop: step
    k's nodes are prefixed ``step<k>/`` and read the state step k - 1 wrote, so there are no
    loop-carried copies, and onnxruntime plans every buffer of the K steps at once."""
    g = train_step.graph
    elem = sig.inputs[step_input].type.tensor_type.elem_type
    nodes, inits = [], list(g.initializer)
    state = {inp: inp for _, inp in sig.carried}       # the name each carried input has in this step
    state_outputs = {out for out, _ in sig.carried}
    for k in range(steps):
        p, last = f"step{k}/", k == steps - 1
        names = dict(state)
        inits.append(helper.make_tensor(p + "index", TensorProto.INT64, [], [k]))
        for name in sig.batched:
            names[name] = p + name
            nodes.append(helper.make_node("Gather", [name, p + "index"], [p + name], name=p + "slice/" + name, axis=0))
        if k:
            inits.append(helper.make_tensor(p + "offset", elem, [], [float(k)]))
            names[step_input] = p + step_input
            nodes.append(helper.make_node("Add", [step_input, p + "offset"], [p + step_input], name=p + "count"))
        # the last step writes the graph's state outputs under their own names
        names.update({o: (o if last and o in state_outputs else p + o) for o in sig.produced})
        nodes += [_renamed(n, p, lambda name: names.get(name, name)) for n in g.node]
        state = {inp: names[out] for out, inp in sig.carried}
    inits.append(helper.make_tensor("unrolled/axis0", TensorProto.INT64, [1], [0]))
    for s in sig.scalars:
        per_step = [f"step{k}/{s}/as_vector" for k in range(steps)]
        nodes += [helper.make_node("Unsqueeze", [f"step{k}/{s}", "unrolled/axis0"], [u], name=u)
                  for k, u in enumerate(per_step)]
        nodes.append(helper.make_node("Concat", per_step, [s], name=s + "/per_step", axis=0))
    return helper.make_graph(nodes, "train_loop", sig.outer_inputs(steps), sig.outer_outputs(steps),
                             initializer=inits)
