"""Export: the bundle's inference graph with the trained weights baked in as initializers.

At the bundle's opset the graph is taken as is and its weight inputs become
initializers. For another opset, a compiler Program (when the trainer holds one)
re-emits the graph natively; otherwise onnx.version_converter converts it. Either way
the model must pass the full checker before it is written, atomically.
"""
import onnx
from onnx import helper, numpy_helper, version_converter

from symgrad.compiler.atomic import write_bytes
from symgrad.compiler.errors import OpsetError, ParameterError

SUPPORTED_OPSETS = range(13, 22)
# name -> (ONNX op, attributes): appended to y_pred so that a deployed classifier returns
# probabilities rather than the logits its loss was trained on
OUTPUT_ACTIVATIONS = {"softmax": ("Softmax", {"axis": -1}), "sigmoid": ("Sigmoid", {})}


def _check_opset(opset):
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in SUPPORTED_OPSETS:
        raise OpsetError(f"opset {opset!r} is not supported for export; accepted: integers "
                         f"{SUPPORTED_OPSETS.start} to {SUPPORTED_OPSETS.stop - 1}, or None for the bundle's opset")
    return opset


def _model_opset(model):
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def bake(model, weights):
    """Turn the graph inputs named in ``weights`` into initializers holding those values."""
    graph = model.graph
    keep = [i for i in graph.input if i.name not in weights]
    baked = [i.name for i in graph.input if i.name in weights]
    del graph.input[:]
    graph.input.extend(keep)
    for name in baked:
        graph.initializer.append(numpy_helper.from_array(weights[name], name))
    return model


def _relabel(model, target):
    """The same nodes under another opset label: valid when every node passes the target
    opset's schema (the full checker decides) and computes the same numbers (checked by
    running both models on random inputs)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for o in out.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = target
    onnx.checker.check_model(out, full_check=True)
    import numpy as np
    import onnxruntime as ort
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in out.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else 3 for d in inp.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
        feeds[inp.name] = (rng.random(dims) if dtype.kind == "f" else rng.integers(0, 2, dims)).astype(dtype)
    a = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    b = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    if not all(np.array_equal(u, v) for u, v in zip(a, b)):
        raise ValueError("the relabelled model computes different values")
    return out


def convert(model, current, target):
    """onnx.version_converter, or (where it has no adapter: its down-conversions are
    patchy) the same nodes relabelled, when that is provably equivalent."""
    try:
        out = version_converter.convert_version(model, target)
    except Exception as exc:  # the converter raises plain RuntimeErrors
        try:
            out = _relabel(model, target)
        except Exception as exc2:
            raise OpsetError(f"cannot convert the inference graph from opset {current} to {target}: {exc}; "
                             f"the nodes are not valid at opset {target} either ({exc2})") from None
    out.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", target)], ignore_unknown=True)
    return out


def _check_activation(name):
    if name is not None and (not isinstance(name, str) or name not in OUTPUT_ACTIVATIONS):
        raise ParameterError(f"output_activation {name!r} is not supported; accepted: None, "
                             + ", ".join(repr(k) for k in OUTPUT_ACTIVATIONS))
    return name


def append_activation(model, name):
    """y_pred becomes activation(y_pred); the graph's output keeps its name and shape."""
    op, attrs = OUTPUT_ACTIVATIONS[name]
    graph = model.graph
    out = graph.output[0].name
    raw = f"{out}/before_{name}"
    for node in graph.node:
        node.output[:] = [raw if o == out else o for o in node.output]
        node.input[:] = [raw if i == out else i for i in node.input]
    graph.node.append(helper.make_node(op, [raw], [out], name=f"{out}/{name}", **attrs))
    return model


def inference_model(trainer, opset=None, output_activation=None):
    """An onnx.ModelProto: x -> y_pred with the trainer's current weights, optionally
    followed by ``output_activation`` ("softmax" or "sigmoid")."""
    _check_activation(output_activation)
    raw = trainer.bundle.graphs.get("inference")
    if raw is None:
        from symgrad.compiler.errors import BundleError
        raise BundleError("the bundle has no 'inference' graph; it cannot be exported")
    model = onnx.load_from_string(raw)
    current = _model_opset(model)
    target = current if opset is None else _check_opset(opset)
    names = {i.name for i in model.graph.input} & set(trainer._store.entries)
    weights = {name: trainer._store.get(name) for name in names}
    program = trainer.program
    if target != current and program is not None and hasattr(program, "inference_model"):
        all_weights = {name: trainer._store.get(name) for name in trainer._store.entries}
        model = program.inference_model(weights=all_weights, opset=target)
    else:
        model = bake(model, weights)
        if target != current:
            model = convert(model, current, target)
    props = {"symgrad.kind": "inference", "symgrad.step": str(trainer._step)}
    if output_activation is not None:
        model = append_activation(model, output_activation)
        props["symgrad.output_activation"] = output_activation
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **props})
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise OpsetError(f"the exported inference model at opset {target} fails the ONNX checker: {exc}") from None
    return model


def export(trainer, path, opset=None, output_activation=None):
    model = inference_model(trainer, opset, output_activation)
    return write_bytes(path, model.SerializeToString())
