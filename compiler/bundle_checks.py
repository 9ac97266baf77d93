"""What a bundle read from disk must satisfy before the runtime touches it.

A bundle is untrusted input: anyone can edit ``manifest.json`` and recompute the
checksums (they are plain sha256, so they catch damage, not tampering). Every value the
runtime later indexes, allocates from or hands to onnxruntime is checked here, and every
problem is a BundleError naming the bundle and the bad part:

- ``check_manifest``: the manifest's structure and values (names, dtypes from a fixed
  list, shapes, sizes, learning rate and step, graph kinds);
- ``check_state_layout``: the tensors lie inside the state file and do not overlap;
- ``check_graph``: each graph is ONNX of the standard domain without external data, its
  inputs and outputs are those the manifest lists, with the manifest's dtypes and shapes,
  and they are what a graph of its kind must have (a train_step updates every trainable
  parameter, an eval graph updates nothing, ...).

Sympy-free: ``symgrad.runtime`` imports it through bundle.py.
"""
import math
import numbers
import os

from .errors import BundleError
from .untrusted import check_model, parse

GRAPH_KINDS = ("train_step", "gradients", "update", "eval", "inference", "train_loop",  # train_loop: optional
               "train_step_weighted", "eval_weighted")   # the last two: weighted batches of an unweighted program
MAX_STEPS_PER_EXECUTION = 1 << 16
STATE_KINDS = ("precision", "recall", "f1_score", "mean_iou", "auc")   # compiler/metrics_stateful.py
TENSOR_SECTIONS = ("params", "state", "slots")
# dtypes a bundle may declare (what the runtime can feed onnxruntime), with their ONNX codes
DTYPES = {"float32": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7, "bool": 9, "float16": 10, "float64": 11}
FLOAT_DTYPES = ("float16", "float32", "float64")
ITEMSIZE = {"float32": 4, "uint8": 1, "int8": 1, "int32": 4, "int64": 8, "bool": 1, "float16": 2, "float64": 8}
MAX_RANK = 8
MAX_DIM = 1 << 31
BATCH = "N"


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def plain_file_name(name):
    return isinstance(name, str) and name not in ("", ".", "..") and os.path.basename(name) == name \
        and "\\" not in name and "\x00" not in name


class _Check:
    def __init__(self, where):
        self.where = where

    def fail(self, what, accepted):
        raise BundleError(f"{self.where}: {what}; expected {accepted} (re-create the bundle)")

    def require(self, ok, what, accepted):
        if not ok:
            self.fail(what, accepted)

    def dtype(self, entry, name, allowed=tuple(DTYPES)):
        d = entry.get("dtype")
        self.require(isinstance(d, str) and d in allowed, f"{name} has dtype {d!r}", f"one of {', '.join(allowed)}")
        return d

    def shape(self, entry, name, batch=False):
        shape = entry.get("shape")
        ok = isinstance(shape, list) and len(shape) <= MAX_RANK and all(
            (_is_int(d) and 0 <= d < MAX_DIM) or (batch and i == 0 and d == BATCH) for i, d in enumerate(shape))
        accepted = f"a list of at most {MAX_RANK} integers in [0, 2**31)" + (
            f", the first of which may be {BATCH!r}" if batch else "")
        self.require(ok, f"{name} has shape {shape!r}", accepted)
        return shape

    def name(self, value, what):
        self.require(isinstance(value, str) and 0 < len(value) <= 512 and "\x00" not in value,
                     f"{what} is {value!r}", "a non-empty name")
        return value

    def rate(self, value, what):
        self.require(_is_number(value) and math.isfinite(value) and value >= 0, f"{what} is {value!r}",
                     "a finite number >= 0")


def tensor_entries(manifest):
    return [e for s in TENSOR_SECTIONS for e in manifest.get(s, [])]


def check_manifest(manifest, where):
    """Raise a BundleError naming the first malformed part of ``manifest``."""
    c = _Check(where)
    c.require(isinstance(manifest, dict), "the manifest is not a JSON object", "a JSON object")
    c.require(_is_int(manifest.get("opset")) and 7 <= manifest["opset"] <= 30,
              f"opset is {manifest.get('opset')!r}", "an integer opset")
    c.dtype(manifest, "the bundle", FLOAT_DTYPES)

    names = {}

    def claim(name, role):
        c.require(name not in names, f"name {name!r} is both {names.get(name)} and {role}", "unique names")
        names[name] = role

    # tensors: params, state, slots
    for section in TENSOR_SECTIONS:
        entries = manifest.get(section, [])
        c.require(isinstance(entries, list), f"section {section!r} is {type(entries).__name__}",
                  "a list of tensor entries")
        for e in entries:
            c.require(isinstance(e, dict), f"section {section!r} holds {e!r}",
                      "entries with name, shape, dtype, offset and nbytes")
            name = c.name(e.get("name"), f"a name in {section!r}")
            claim(name, f"a tensor in {section!r}")
            c.require(not name.startswith(("next/", "grad/")), f"tensor name {name!r}",
                      "a name not starting with next/ or grad/")
            shape = c.shape(e, f"tensor {name!r}")
            dtype = c.dtype(e, f"tensor {name!r}")
            if "trainable" in e:
                c.require(isinstance(e["trainable"], bool), f"tensor {name!r} has trainable {e['trainable']!r}",
                          "true or false")
            for key in ("layer", "param", "slot"):
                if key in e:
                    c.require(isinstance(e[key], str), f"tensor {name!r} has {key} {e[key]!r}", "a name")
            for key in ("offset", "nbytes"):
                v = e.get(key)
                c.require(_is_int(v) and v >= 0, f"tensor {name!r} has {key} {v!r}", "an integer >= 0")
            want = math.prod(shape) * ITEMSIZE[dtype]
            c.require(e["nbytes"] == want, f"tensor {name!r} has nbytes {e['nbytes']} for shape {shape} of {dtype}",
                      f"{want}")

    # data, hyper-parameters, random inputs, prediction
    data = manifest.get("data")
    several = _check_io_lists(c, manifest)
    c.require(isinstance(data, dict) and (isinstance(data.get("x"), dict) or several), f"'data' is {data!r}",
              "a map with at least an 'x' entry (or, for several inputs and outputs, one per input and label)")
    roles = {"x", "y", "sample_weight"} | (several or set())
    for role, spec in data.items():
        c.require(role in roles and isinstance(spec, dict), f"data entry {role!r}: {spec!r}",
                  "x, y and sample_weight entries (or the inputs' and labels' names) with name, shape and dtype")
        claim(c.name(spec.get("name"), f"the name of data {role!r}"), f"data {role!r}")
        shape = c.shape(spec, f"data {role!r}", batch=True)
        c.require(len(shape) >= 1 and shape[0] == BATCH, f"data {role!r} has shape {shape!r}",
                  f"a shape whose first dimension is {BATCH!r}")
        c.dtype(spec, f"data {role!r}")
    hyper = manifest.get("hyper", {})
    c.require(isinstance(hyper, dict) and set(hyper) <= {"learning_rate", "step"}, f"'hyper' is {hyper!r}",
              "a map of learning_rate and step to input names")
    for role in ("learning_rate", "step"):
        claim(c.name(hyper.get(role, role), f"hyper-parameter {role!r}"), f"hyper-parameter {role!r}")
    randoms = manifest.get("random_inputs", [])
    c.require(isinstance(randoms, list), f"'random_inputs' is {randoms!r}", "a list")
    for r in randoms:
        c.require(isinstance(r, dict), f"random input {r!r}", "entries with name, shape and dtype")
        claim(c.name(r.get("name"), "a random input's name"), "a random input")
        c.shape(r, f"random input {r['name']!r}", batch=True)
        c.dtype(r, f"random input {r['name']!r}", FLOAT_DTYPES)
    prediction = manifest.get("prediction")
    if prediction is not None:
        c.require(isinstance(prediction, dict), f"'prediction' is {prediction!r}", "an entry with name, shape, dtype")
        c.name(prediction.get("name"), "the prediction's name")
        c.shape(prediction, "the prediction", batch=True)
        c.dtype(prediction, "the prediction")

    # optimizer, saved trainer state, metrics
    opt = manifest.get("optimizer", {})
    c.require(isinstance(opt, dict) and isinstance(opt.get("config", {}), dict)
              and isinstance(opt.get("name", ""), (str, type(None))), f"'optimizer' is {opt!r}",
              "a map with name and config")
    if "learning_rate" in opt.get("config", {}):
        c.rate(opt["config"]["learning_rate"], "the optimizer's learning_rate")
    saved = manifest.get("trainer")
    if saved is not None:
        c.require(isinstance(saved, dict), f"'trainer' is {saved!r}", "a map with step and learning_rate")
        step = saved.get("step", 0)
        c.require(_is_int(step) and step >= 0, f"the saved step is {step!r}", "an integer >= 0")
        if "learning_rate" in saved:
            c.rate(saved["learning_rate"], "the saved learning_rate")
    metrics = manifest.get("metrics", [])
    c.require(isinstance(metrics, list) and all(isinstance(m, str) or (isinstance(m, dict) and isinstance(
        m.get("name"), str)) for m in metrics), f"'metrics' is {metrics!r}", "a list of metric names")
    states = manifest.get("metric_states", {})
    c.require(isinstance(states, dict), f"'metric_states' is {states!r}", "a map from metric name to its parts")
    for mname, entry in states.items():
        ok = (isinstance(entry, dict) and entry.get("kind") in STATE_KINDS and isinstance(entry.get("config", {}), dict)
              and isinstance(entry.get("parts"), dict) and entry["parts"])
        c.require(ok, f"metric_states entry {mname!r}: {entry!r}",
                  f"{{'kind': one of {', '.join(STATE_KINDS)}, 'config': {{...}}, 'parts': {{...}}}}")
        for part, spec in entry["parts"].items():
            c.require(isinstance(spec, dict) and isinstance(spec.get("output"), str)
                      and spec["output"].startswith("state/") and spec.get("accumulate") in ("sum", "concat"),
                      f"metric_states {mname!r} part {part!r}: {spec!r}",
                      "{'output': 'state/<metric>/<part>', 'accumulate': 'sum' or 'concat'}")

    # graphs and files
    graphs = manifest.get("graphs")
    c.require(isinstance(graphs, dict) and "train_step" in graphs, f"'graphs' is {graphs!r}",
              "a map from graph kind (at least train_step) to {'file': ..., 'inputs': [...], 'outputs': [...]}")
    state_file = manifest.get("state_file", "state.bin")
    c.require(plain_file_name(state_file) and state_file != "manifest.json", f"state_file is {state_file!r}",
              "a file name inside the bundle folder")
    files = {state_file}
    for kind, g in graphs.items():
        c.require(kind in GRAPH_KINDS, f"graph kind {kind!r}", f"one of {', '.join(GRAPH_KINDS)}")
        c.require(isinstance(g, dict) and plain_file_name(g.get("file")) and g["file"] != "manifest.json",
                  f"graph {kind!r} has entry {g!r}", "a dict whose 'file' is a file name inside the bundle folder")
        c.require(g["file"] not in files, f"graph {kind!r} uses file {g['file']!r} twice",
                  "one file per graph and for the state")
        files.add(g["file"])
        for key in ("inputs", "outputs"):
            v = g.get(key)
            c.require(isinstance(v, list) and all(isinstance(n, str) for n in v) and len(set(v)) == len(v),
                      f"graph {kind!r} lists {key} {v!r}", "a list of distinct names")
        feeds = g.get("feeds") or {}
        c.require(isinstance(feeds, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in feeds.items()),
                  f"graph {kind!r} has feeds {feeds!r}", "a map from output names to tensor names")
        if kind == "train_loop":
            steps = g.get("steps")
            c.require(_is_int(steps) and 2 <= steps <= MAX_STEPS_PER_EXECUTION, f"graph 'train_loop' has steps {steps!r}",
                      f"an integer from 2 to {MAX_STEPS_PER_EXECUTION} (steps_per_execution)")
    checksums = manifest.get("checksums")
    c.require(isinstance(checksums, dict) and all(isinstance(v, str) for v in checksums.values()),
              "the manifest carries no checksums of its files", "a map from file name to 'sha256:...'")


def check_state_layout(manifest, size, where):
    """Every tensor lies inside the state file of ``size`` bytes, and no two overlap."""
    check_layout(tensor_entries(manifest), size, where, "state file")


def check_layout(entries, size, where, container):
    """Entries (offset, nbytes) lie inside ``size`` bytes and do not overlap."""
    spans = sorted((e["offset"], e["offset"] + e["nbytes"], e["name"]) for e in entries)
    end_before, name_before = 0, None
    for start, end, name in spans:
        if end > size:
            raise BundleError(f"{where}: tensor {name!r} needs bytes {start}..{end} of the {container}, which has "
                              f"{size} (truncated, or a tampered offset)")
        if start < end_before and end > start:
            raise BundleError(f"{where}: tensors {name_before!r} and {name!r} overlap in the {container} "
                              f"(bytes {start}..{end_before}); re-create the bundle")
        if end > end_before:
            end_before, name_before = end, name


# ------------------------------------------------------------------ graphs


def _check_io_lists(c, manifest):
    """The ``inputs`` / ``outputs`` lists of a program with several inputs or outputs
    (compiler/program_io.py): the set of data names they declare, or None when the
    bundle has one input and one output (its data is keyed x / y)."""
    ins, outs = manifest.get("inputs"), manifest.get("outputs")
    if ins is None and outs is None:
        return None
    c.require(isinstance(ins, list) and isinstance(outs, list) and ins and outs, f"'inputs' is {ins!r} and "
              f"'outputs' is {outs!r}", "two non-empty lists of entries")
    for e in ins + outs:
        c.require(isinstance(e, dict), f"an input or output entry is {e!r}", "entries with name, shape and dtype")
        c.name(e.get("name"), "an input's or output's name")
        c.shape(e, f"input or output {e['name']!r}", batch=True)
        c.dtype(e, f"input or output {e['name']!r}")
    for e in outs:
        labels = e.get("labels")
        c.require(isinstance(labels, dict), f"output {e['name']!r} has labels {labels!r}", "a name, shape and dtype")
        c.name(labels.get("name"), f"the labels of output {e['name']!r}")
        c.shape(labels, f"the labels of output {e['name']!r}", batch=True)
        c.dtype(labels, f"the labels of output {e['name']!r}")
        c.require(e.get("key") is None or isinstance(e["key"], str), f"output {e['name']!r} has key {e['key']!r}",
                  "a name")
    if len(ins) == 1 and len(outs) == 1:
        return None
    return {e["name"] for e in ins} | {e["labels"]["name"] for e in outs}


def _several_outputs(manifest):
    outs = manifest.get("outputs")
    return outs if isinstance(outs, list) and len(outs) > 1 else []


def _value_type(vi):
    """(ONNX element type, [dims: int or None for symbolic]) of a graph input or output."""
    t = vi.type
    if not t.HasField("tensor_type"):
        return None, None
    tt = t.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim] if tt.HasField("shape") else None
    return tt.elem_type, dims


def _graph_roles(manifest):
    """{name: (role, expected dtype or 'float', expected shape or None)} of every name a
    graph may use as an input, and the same for outputs."""
    data = manifest["data"]
    dtype = manifest["dtype"]
    inputs, outputs = {}, {}
    for spec in data.values():
        inputs[spec["name"]] = ("data", spec["dtype"], spec["shape"])
    hyper = manifest.get("hyper", {})
    for role in ("learning_rate", "step"):
        inputs[hyper.get(role, role)] = ("hyper", "float", [])
    for r in manifest.get("random_inputs", []):
        inputs[r["name"]] = ("random", r["dtype"], r["shape"])
    for e in tensor_entries(manifest):
        inputs[e["name"]] = ("tensor", e["dtype"], e["shape"])
        outputs["next/" + e["name"]] = ("next", e["dtype"], e["shape"])
    for e in manifest.get("params", []):
        if e.get("trainable", True):
            inputs["grad/" + e["name"]] = outputs["grad/" + e["name"]] = ("grad", e["dtype"], e["shape"])
    outputs["loss"] = ("loss", "float", [])
    for m in manifest.get("metrics", []):
        name = m if isinstance(m, str) else m["name"]
        outputs["metric/" + name] = ("metric", "float", [])
    for entry in (manifest.get("metric_states") or {}).values():
        for spec in entry["parts"].values():
            outputs[spec["output"]] = ("state", "float", None)
    pred = manifest.get("prediction") or {"name": "y_pred", "dtype": dtype, "shape": None}
    outputs[pred["name"]] = ("prediction", pred["dtype"], pred["shape"])
    for o in _several_outputs(manifest):    # each output's prediction and unweighted loss
        outputs[o["name"]] = ("prediction", o["dtype"], o["shape"])
        outputs[f"metric/{o.get('key', o['name'])}_loss"] = ("metric", "float", [])
    return inputs, outputs


def _contract(kind, manifest):
    """(inputs it must have, outputs it must have, output roles it must not have)."""
    kind = kind[:-len("_weighted")] if kind.endswith("_weighted") else kind
    trainable = [e["name"] for e in manifest.get("params", []) if e.get("trainable", True)]
    several = manifest.get("inputs") if len(manifest.get("inputs") or []) > 1 or _several_outputs(manifest) else None
    if several:
        xs = {e["name"] for e in manifest["inputs"]}
        data_in = xs | {o["labels"]["name"] for o in manifest["outputs"]}
        preds = {o["name"] for o in manifest["outputs"]}
    else:
        x, y = manifest["data"]["x"]["name"], (manifest["data"].get("y") or {}).get("name")
        xs, data_in = {x}, {x} | ({y} if y else set())
        preds = {(manifest.get("prediction") or {}).get("name", "y_pred")}
    if kind in ("train_step", "train_loop"):
        return data_in, {"loss"} | {"next/" + p for p in trainable}, {"grad", "prediction"}
    if kind == "gradients":
        return data_in, {"loss"} | {"grad/" + p for p in trainable}, {"prediction"}
    if kind == "update":
        return {"grad/" + p for p in trainable}, {"next/" + p for p in trainable}, {"loss", "metric", "prediction"}
    if kind == "eval":
        return data_in, {"loss"}, {"next", "grad", "prediction"}
    return xs, preds, {"next", "grad", "loss"}


def check_graph(kind, data, manifest, where):
    """Parse graph ``kind`` (serialized ``data``) and hold it to the manifest; returns the ModelProto."""
    gwhere = f"{where}: graph {kind!r}"
    model = parse(data, gwhere, BundleError)
    check_model(model, gwhere, BundleError, external_data_folder=None)
    spec = manifest["graphs"][kind]
    g = model.graph
    inits = {t.name for t in g.initializer}
    ins = [vi for vi in g.input if vi.name not in inits]
    outs = list(g.output)
    c = _Check(gwhere)
    for what, values, listed in (("inputs", ins, spec["inputs"]), ("outputs", outs, spec["outputs"])):
        names = [v.name for v in values]
        c.require(len(set(names)) == len(names), f"has repeated {what} {names}", f"distinct {what}")
        c.require(set(names) == set(listed), f"has {what} {sorted(names)}, the manifest lists {sorted(listed)}",
                  "the graph the manifest describes")
    in_roles, out_roles = _graph_roles(manifest)
    if kind == "train_loop":    # K stacked batches in, one loss (and metric) per step out
        k = spec["steps"]
        in_roles = {n: (r, d, [k] + s if r in ("data", "random") and s is not None else s)
                    for n, (r, d, s) in in_roles.items()}
        out_roles = {n: (r, d, [k] if r in ("loss", "metric") else s) for n, (r, d, s) in out_roles.items()}
    for what, values, roles in (("input", ins, in_roles), ("output", outs, out_roles)):
        for vi in values:
            role = roles.get(vi.name)
            if role is None and not (what == "output" and kind == "inference"):
                c.fail(f"has {what} {vi.name!r}, which the manifest does not declare",
                       "data, hyper-parameters, tensors, next/<tensor>, grad/<parameter>, loss and metric/<name>")
            elem, dims = _value_type(vi)
            c.require(elem is not None, f"{what} {vi.name!r} is not a tensor", "tensor inputs and outputs")
            if role is None:
                continue
            _, dtype, shape = role
            ok_type = elem in (DTYPES[d] for d in FLOAT_DTYPES) if dtype == "float" else elem == DTYPES[dtype]
            c.require(ok_type, f"{what} {vi.name!r} has ONNX element type {elem}", f"the manifest's {dtype}")
            if shape is not None and dims is not None:
                same = len(dims) == len(shape) and all(
                    d == s or (s == BATCH and (d is None or d > 0)) for d, s in zip(dims, shape))
                c.require(same, f"{what} {vi.name!r} has shape {dims}", f"the manifest's {shape}")
    need_in, need_out, banned = _contract(kind, manifest)
    in_names, out_names = {v.name for v in ins}, {v.name for v in outs}
    missing = sorted(need_in - in_names) + sorted(need_out - out_names)
    c.require(not missing, f"lacks {missing}", f"what a {kind} graph has (is it another kind's graph?)")
    wrong = sorted(n for n in out_names if out_roles.get(n, ("other",))[0] in banned)
    c.require(not wrong, f"has outputs {wrong}", f"none of those in a {kind} graph (is it another kind's graph?)")
    feeds = spec.get("feeds") or {}
    for out, target in feeds.items():
        c.require(out in out_names and target in in_roles and in_roles[target][0] == "tensor"
                  and out_roles.get(out, (None, None, None))[1:] == in_roles[target][1:],
                  f"feeds output {out!r} into {target!r}", "next/<tensor> outputs feeding tensors of the same type")
    return model
