"""compile_model: a model, a loss and an optimizer become a training program.

A ``Program`` holds five standard-domain ONNX graphs and the bundle manifest that says
how to drive them (docs/internals.md §3):

- ``train_step``: forward (training mode), loss, backward, optimizer update;
- ``gradients`` + ``update``: the same work split in two, for gradient accumulation and
  data-parallel training (``grad/<param>`` connects them by name);
- ``eval``: loss and metrics (inference mode);
- ``inference``: ``y_pred`` from ``x`` and the weights as inputs (``inference_model``
  bakes them in as initializers, at any opset 13..21).

Every tensor that lives across steps (parameters, model state such as batch-norm
statistics, optimizer slots) is a graph input under its own name and an output under
``next/<name>``; ``feeds`` in the manifest pairs them.
"""
import numpy as np
from onnx import TensorProto

from . import ir, optimizers, program_io
from .autodiff import gradients
from .bundle import Bundle, FORMAT, FORMAT_VERSION
from .emit import DEFAULT_OPSET, OnnxBuilder, check, check_dtype, check_opset, emit_values, make_model
from .errors import ParameterError, ShapeError
from .loss import _weight_shape
from .loss_spec import resolve_loss
from .steps_loop import check_steps, train_loop
from .tidy import name_outputs, tidy

_ELEM = {"float": None, "int64": TensorProto.INT64}
_KINDS = ("train_step", "gradients", "update", "eval", "inference")


def compile_model(model, loss, optimizer, metrics=None, opset=DEFAULT_OPSET, dtype="float32", seed=None,
                  sample_weight=False, steps_per_execution=1, portable=False, loss_weights=None):
    """Compile ``model`` with ``loss`` and ``optimizer`` (an Optimizer or a name) into a
    Program. ``loss``: a Loss, a catalogue name, an expression string such as
    "(y_pred - y_true)**2", or a function f(y_true, y_pred) written with
    symgrad.compiler.ops (compiler/loss_spec.py). ``metrics``: metric names, Metric objects,
    or any loss of those four kinds (its batch value), logged under the given names.
    ``sample_weight=True`` adds a per-sample weight input (N,) to the train_step, gradients
    and eval graphs; a shape such as (None, T) declares it with that shape, to weigh each
    time step (broadcast against the per-sample loss). Without it, fit still takes (N,)
    sample weights and class weights through weighted graph variants (Program.bundle).
    ``seed`` redraws the model's initial weights (``model.initialize(seed)``) so that the
    bundle's initial state is reproducible.
    ``steps_per_execution=K`` (Keras's name) adds a ``train_loop`` graph that runs K
    training steps in one onnxruntime call (compiler/steps_loop.py); Trainer.fit uses it
    for every K full batches, and batch-level callbacks then run once per K steps.
    ``portable=True`` emits only ops that every runtime in the README's matrix implements
    (compiler/portable.py says which are avoided and why); the default keeps the fused
    ops where onnxruntime runs them faster.

    A model with several outputs takes ``loss`` (and ``loss_weights``, ``metrics``) per
    output, as a dict by output name or a list in output order (program_io.py)."""
    return Program(model, loss, optimizer, metrics, opset=opset, dtype=dtype, seed=seed,
                   sample_weight=sample_weight, steps_per_execution=steps_per_execution, portable=portable,
                   loss_weights=loss_weights)


def _resolve_loss(loss):
    """resolve_loss (a Loss, a catalogue name, an expression string or a function), plus
    what a training program needs of it: a scalar and only y_true / y_pred as inputs."""
    loss = resolve_loss(loss)
    if loss.reduction == "none":
        raise ParameterError(f"loss {loss.name!r} has reduction='none'; a training program needs a scalar loss "
                             "(accepted: 'sum', 'mean', 'sum_over_batch_size', 'weighted_mean')")
    if loss.inputs:
        raise ParameterError(f"loss {loss.name!r} takes extra inputs {list(loss.inputs)}; compile_model feeds only "
                             "y_true and y_pred")
    return loss


def _entry(name, shape, dtype, **extra):
    return {"name": name, "shape": [d if isinstance(d, int) else str(d) for d in shape], "dtype": dtype, **extra}


def _version():
    try:
        from importlib.metadata import version
        return version("symgrad")
    except Exception:  # not installed as a distribution (a source checkout)
        return "0.1.0"


class Program:
    """The compiled training program: ``graphs`` ({kind: onnx.ModelProto}), ``manifest``
    (dict, without offsets and checksums until saved) and ``state`` (initial arrays)."""

    @ir.scoped
    def __init__(self, model, loss, optimizer, metrics=None, opset=DEFAULT_OPSET, dtype="float32", seed=None,
                 sample_weight=False, steps_per_execution=1, portable=False, loss_weights=None):
        self.opset = check_opset(opset)
        if not isinstance(portable, bool):
            raise ParameterError(f"portable must be True or False, got {portable!r}")
        self.portable = portable
        self.dtype = check_dtype(dtype)
        self.model = model
        self.data_in = program_io.model_inputs(model)
        n_out = len(getattr(model, "outputs", None) or [None])
        self.data_out = program_io.model_outputs(program_io.output_keys(model, n_out), loss, loss_weights,
                                                 _resolve_loss)
        self.loss = self.data_out[0].loss
        self.optimizer = optimizers.get(optimizer)
        self.sample_weight = bool(sample_weight)
        self.steps_per_execution = check_steps(steps_per_execution)
        # True: (N,); a shape such as (None, T) weighs each time step (loss._weight_shape)
        self._sw_shape = _weight_shape(sample_weight) if self.sample_weight else None
        self.input_shape = self.data_in[0].shape[1:] if len(self.data_in) == 1 else [d.shape[1:] for d in self.data_in]
        if seed is not None:
            if not hasattr(model, "initialize"):
                raise ParameterError("seed= needs a model with initialize(seed) (Sequential, Model)")
            model.initialize(seed)
        self._build_ir(metrics)
        self.graphs = {kind: self._emit(kind) for kind in _KINDS}
        self.manifest = self._manifest()
        if self.steps_per_execution > 1:
            feeds = self.manifest["graphs"]["train_step"]["feeds"]
            loop = self.graphs["train_loop"] = check(train_loop(self.graphs["train_step"], self.steps_per_execution,
                                                                feeds))
            self.manifest["graphs"]["train_loop"] = {
                "file": "train_loop.onnx", "inputs": [i.name for i in loop.graph.input],
                "outputs": [o.name for o in loop.graph.output], "feeds": dict(feeds),
                "steps": self.steps_per_execution}

    # ------------------------------------------------------------ IR
    def _labels(self):
        """One label input per output, shaped as its loss takes y_true (integer class ids for
        a sparse loss; (N, L) label sequences for CTC)."""
        ys = []
        for o, shape in zip(self.data_out, self.pred_shapes):
            sparse = o.loss.labels == "sparse"
            ys.append(ir.input_value(o.label_name, tuple(o.loss._input_shape("y_true", tuple(shape))),
                                     dtype="int64" if sparse else "float"))
        return ys

    def _loss(self, trace, ys, sw):
        """(total loss, [per-output losses]): sum_k weight_k * loss_k (one output: its loss)."""
        outputs = trace.outputs
        if len(outputs) != len(self.data_out):
            raise ShapeError(f"the model traced {len(outputs)} outputs, it declares {len(self.data_out)}")
        parts = []
        for o, pred, y in zip(self.data_out, outputs, ys):
            value, _ = o.loss.build(pred, y, None, sw)
            if value.shape != ():
                raise ShapeError(f"loss {o.loss.name!r} reduces to shape {value.shape}, not a scalar")
            parts.append(value)
        if len(parts) == 1:
            return parts[0], parts
        total = sum(o.weight * p.sym for o, p in zip(self.data_out, parts))
        return ir.elementwise(total, name="loss/total"), parts

    def _metrics(self, trace, ys):
        """[(output name, IR value)]: metric/<log> for batch metrics, state/<log>/<part> for
        epoch metrics (compiler/metrics_stateful.py; the runtime accumulates them)."""
        out, self.metric_states = [], {}
        for o, pred, y in zip(self.data_out, trace.outputs, ys):
            sparse = o.loss.labels == "sparse"
            for log, m in o.metrics:
                if getattr(m, "stateful", False):
                    parts = m.build_state(y, pred, sparse)
                    out += [(f"state/{log}/{part}", v) for part, v, _ in parts]
                    self.metric_states[log] = m.manifest_entry([(part, acc) for part, _, acc in parts])
                    self.metric_states[log]["parts"] = {
                        part: dict(spec, output=f"state/{log}/{part}")
                        for part, spec in self.metric_states[log]["parts"].items()}
                else:
                    out.append((f"metric/{log}", m.build(y, pred, sparse)))
        return out

    def _heads(self, trace, ys):
        loss, parts = self._loss(trace, ys, self._sw)
        per = [(f"metric/{o.key}_loss", p) for o, p in zip(self.data_out, parts)] if len(parts) > 1 else []
        return loss, [("loss", loss)] + per + self._metrics(trace, ys)

    def _build_ir(self, metric_ids):
        self._xs = [ir.input_value(d.name, d.shape, dtype=d.dtype) for d in self.data_in]
        x_arg = self._xs[0] if len(self._xs) == 1 else self._xs
        train = self.model.trace(x_arg, training=True)
        infer = self.model.trace(x_arg, training=False)
        self.pred_shapes = [tuple(v.shape) for v in train.outputs]
        self.pred_shape = self.pred_shapes[0]
        self._traces = (train, infer)
        program_io.attach_metrics(self.data_out, metric_ids, self.pred_shapes)
        self.metrics = [m for o in self.data_out for _, m in o.metrics]
        self._ys = self._labels()
        self._sw = ir.input_value("sample_weight", self._sw_shape) if self.sample_weight else None

        self.weights = list(train.weights)
        self.trainable = [w for w in self.weights if w.trainable]
        self.updated = dict(train.updates)
        self.random_inputs = list(train.random_inputs)
        unknown = sorted(set(self.updated) - {w.name for w in self.weights})
        if unknown:
            raise ParameterError(f"the model updates {unknown}, which are none of its weights")

        loss, head = self._heads(train, self._ys)
        grads = gradients(loss, [w.value for w in self.trainable], scope="grad")
        self._lr = ir.input_value("learning_rate", ())
        self._step = ir.input_value("step", ())
        slot_shapes = [(w.name, w.shape) for w in self.trainable]
        self.slot_entries = [(self.optimizer.slot_name(n, s), n, s, shape)
                             for n, shape in slot_shapes for s in self.optimizer.slot_names]
        self._slots = {name: ir.input_value(name, shape) for name, _, _, shape in self.slot_entries}
        params = [(w.name, w.value) for w in self.trainable]
        new_params, new_slots = self.optimizer.build_update(params, grads, self._slots, self._lr, self._step)
        grad_inputs = [ir.input_value(f"grad/{w.name}", w.shape) for w in self.trainable]
        split_params, split_slots = self.optimizer.build_update(params, grad_inputs, self._slots, self._lr,
                                                                self._step)

        xs_in = [(v.name, v) for v in self._xs]
        data = xs_in + [(v.name, v) for v in self._ys] + ([("sample_weight", self._sw)] if self._sw else [])
        hyper = [("learning_rate", self._lr), ("step", self._step)]
        weights_in = [(w.name, w.value) for w in self.weights]
        slots_in = list(self._slots.items())
        random_in = [(r.name, r.value) for r in self.random_inputs]
        next_params = [(f"next/{w.name}", v) for w, v in zip(self.trainable, new_params)]
        next_state = [(f"next/{n}", v) for n, v in self.updated.items()]
        next_slots = [(f"next/{n}", new_slots[n]) for n, *_ in self.slot_entries]

        eval_infer = {w.name: w.value for w in infer.weights}
        infer_weights = [(w.name, eval_infer.get(w.name, w.value)) for w in self.weights]
        _, eval_head = self._heads(infer, self._ys)
        self._specs = {
            "train_step": (data + hyper + weights_in + slots_in + random_in,
                           head + next_params + next_state + next_slots),
            "gradients": (data + weights_in + random_in,
                          head + [(f"grad/{w.name}", g) for w, g in zip(self.trainable, grads)] + next_state),
            "update": (hyper + params + slots_in + [(v.name, v) for v in grad_inputs],
                       [(f"next/{w.name}", v) for w, v in zip(self.trainable, split_params)]
                       + [(f"next/{n}", split_slots[n]) for n, *_ in self.slot_entries]),
            "eval": (data + infer_weights, eval_head),
            "inference": (xs_in + infer_weights, [(o.name, v) for o, v in zip(self.data_out, infer.outputs)]),
        }

    # ------------------------------------------------------------ emission
    @ir.scoped
    def _emit(self, kind, opset=None, baked=None):
        inputs, outputs = self._specs[kind]
        b = OnnxBuilder(opset or self.opset, self.dtype)
        b.portable = self.portable
        names, signature_in = {}, []
        for name, v in inputs:
            if baked is not None and name in baked:
                names[v.id] = b.array(baked[name], name)
                continue
            names[v.id] = b.reserve(name)
            signature_in.append((name, v.shape, _ELEM[v.dtype]))
        for name, _ in outputs:
            b.reserve(name)
        sources = emit_values(b, [v for _, v in outputs], names)
        name_outputs(b, list(zip(sources, [n for n, _ in outputs])), {n for n, *_ in signature_in})
        model = make_model(b, signature_in, [(n, v.shape) for n, v in outputs], graph_name=kind,
                           doc=f"symgrad {kind}: loss {self.loss.name}, optimizer {self.optimizer.name}")
        return check(tidy(model))

    @ir.scoped
    def _weighted_variants(self):
        """{kind: graph} for 'train_step_weighted' and 'eval_weighted': the same graphs with a
        sample_weight (N,) input, so that fit(sample_weight=..., class_weight=...) works on a
        program compiled without one, while unweighted batches keep the lean graphs. Built on
        first use (bundle()); a program compiled with sample_weight has none."""
        if self.sample_weight:
            return {}
        if getattr(self, "_weighted", None) is None:
            train, infer = self._traces
            sw = ir.input_value("sample_weight", ("N",))
            loss, parts = self._loss(train, self._ys, sw)
            grads = gradients(loss, [w.value for w in self.trainable], scope="grad")
            params = [(w.name, w.value) for w in self.trainable]
            new_params, new_slots = self.optimizer.build_update(params, grads, self._slots, self._lr, self._step)

            def losses_of(total, per):
                out = {"loss": total}
                if len(per) > 1:        # per-output losses of a multi-output model
                    out.update((f"metric/{o.key}_loss", p) for o, p in zip(self.data_out, per))
                return out
            replace = losses_of(loss, parts)
            replace.update((f"next/{w.name}", v) for w, v in zip(self.trainable, new_params))
            replace.update((f"next/{n}", new_slots[n]) for n, *_ in self.slot_entries)
            eval_replace = losses_of(*self._loss(infer, self._ys, sw))
            labels = {y.name for y in self._ys}
            for kind, repl in (("train_step", replace), ("eval", eval_replace)):
                inputs, outputs = self._specs[kind]
                at = max(i for i, (n, _) in enumerate(inputs) if n in labels) + 1
                self._specs[f"{kind}_weighted"] = (inputs[:at] + [("sample_weight", sw)] + inputs[at:],
                                                   [(n, repl.get(n, v)) for n, v in outputs])
            self._weighted = {f"{k}_weighted": self._emit(f"{k}_weighted") for k in ("train_step", "eval")}
        return self._weighted

    def inference_model(self, weights=None, opset=None):
        """The inference graph with the weights baked in as initializers (inputs: x only).

        weights: {name: array} (default: the initial state); opset: 13..21 (default: the
        program's)."""
        arrays = dict(self.state if weights is None else weights)
        missing = [w.name for w in self.weights if w.name not in arrays]
        if missing:
            raise ParameterError(f"inference_model: no value for weight(s) {missing}; give every weight of "
                                 f"{[w.name for w in self.weights]}")
        for w in self.weights:
            if tuple(np.shape(arrays[w.name])) != tuple(w.shape):
                raise ShapeError(f"inference_model: weight {w.name!r} has shape {tuple(np.shape(arrays[w.name]))}, "
                                 f"the model needs {tuple(w.shape)}")
        return self._emit("inference", opset=check_opset(opset or self.opset),
                          baked={w.name: arrays[w.name] for w in self.weights})

    # ------------------------------------------------------------ state and manifest
    @property
    def state(self):
        """Initial values of every parameter, state tensor and optimizer slot."""
        np_dtype = np.dtype(self.dtype)
        out = {}
        for w in self.weights:
            a = np.asarray(w.initial, dtype=np_dtype)
            if a.size != int(np.prod(w.shape, dtype=np.int64)):
                raise ShapeError(f"weight {w.name!r} starts as an array of shape {a.shape}; it needs {tuple(w.shape)}")
            out[w.name] = a.reshape(w.shape)    # a 0-d weight may come back 1-d from NumPy helpers
        out.update(self.optimizer.initial_slots([(w.name, w.shape) for w in self.trainable], dtype=np_dtype))
        return out

    def _manifest(self):
        dt = self.dtype
        params = [_entry(w.name, w.shape, dt, trainable=bool(w.trainable), layer=w.name.rsplit("/", 1)[0])
                  for w in self.weights if w.name not in self.updated]
        state = [_entry(w.name, w.shape, dt, trainable=False, layer=w.name.rsplit("/", 1)[0])
                 for w in self.weights if w.name in self.updated]
        slots = [_entry(name, shape, dt, param=param, slot=slot) for name, param, slot, shape in self.slot_entries]
        def dtype_of(v):
            return "int64" if v.dtype == "int64" else dt
        # data: keyed "x"/"y" for one input and output (as ever), by graph name otherwise
        data = {v.name: _entry(v.name, v.shape, dtype_of(v)) for v in self._xs + self._ys}
        data_inputs = [_entry(d.name, v.shape, dtype_of(v), key=d.key) for d, v in zip(self.data_in, self._xs)]
        data_outputs = [_entry(o.name, shape, dt, key=o.key, labels=_entry(y.name, y.shape, dtype_of(y)),
                          loss={"name": o.loss.name, "reduction": o.loss.reduction, "labels": o.loss.labels},
                          loss_weight=o.weight, metrics=[log for log, _ in o.metrics])
                   for o, shape, y in zip(self.data_out, self.pred_shapes, self._ys)]
        if self._sw is not None:
            data["sample_weight"] = _entry("sample_weight", self._sw_shape, dt)
        graphs = {kind: self._graph_entry(kind) for kind in _KINDS}
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "symgrad_version": _version(),
            "opset": self.opset, "dtype": dt,
            "data": data,
            "prediction": _entry(self.data_out[0].name, self.pred_shape, dt),
            "inputs": data_inputs, "outputs": data_outputs,
            "structure": {"inputs": getattr(self.model, "input_structure", "single"),
                          "outputs": getattr(self.model, "output_structure", "single")},
            "hyper": {"learning_rate": "learning_rate", "step": "step"},
            "params": params, "state": state, "slots": slots,
            "random_inputs": [_entry(r.name, r.shape, dt, distribution="uniform") for r in self.random_inputs],
            "optimizer": {"name": self.optimizer.name, "config": self.optimizer.get_config()},
            "loss": {"name": self.loss.name, "reduction": self.loss.reduction, "labels": self.loss.labels},
            "metrics": [log for o in self.data_out for log, _ in o.metrics],
            **({"metric_states": self.metric_states} if self.metric_states else {}),
            "graphs": graphs,
        }

    def _graph_entry(self, kind):
        inputs, outputs = self._specs[kind]
        entry = {"file": f"{kind}.onnx", "inputs": [n for n, _ in inputs], "outputs": [n for n, _ in outputs]}
        if kind.startswith(("train_step", "gradients", "update")):
            entry["feeds"] = {n: n[len("next/"):] for n, _ in outputs if n.startswith("next/")}
        return entry

    def bundle(self):
        """The artifact bundle (compiler/bundle.py): manifest, serialized graphs, state.
        Without a compiled sample_weight input it also holds train_step_weighted and
        eval_weighted, used only for weighted batches (manifest data.sample_weight has
        "optional": true)."""
        all_graphs = dict(self.graphs, **self._weighted_variants())
        graphs = {kind: model.SerializeToString() for kind, model in all_graphs.items()}
        manifest = self.manifest
        if len(all_graphs) > len(self.graphs):
            manifest = dict(manifest, data=dict(manifest["data"]), graphs=dict(manifest["graphs"]))
            manifest["data"]["sample_weight"] = _entry("sample_weight", ("N",), self.dtype, optional=True)
            for kind in all_graphs:
                if kind not in self.graphs:
                    manifest["graphs"][kind] = self._graph_entry(kind)
        return Bundle(manifest, graphs, self.state)

    def save(self, path):
        """Write the bundle folder atomically; returns the path."""
        return self.bundle().save(path)

    def node_counts(self):
        return {kind: len(model.graph.node) for kind, model in self.graphs.items()}

    def __repr__(self):
        counts = ", ".join(f"{k}={v}" for k, v in self.node_counts().items())
        metrics = [m.name for m in self.metrics]
        return (f"Program(loss={self.loss.name!r}, optimizer={self.optimizer!r}, metrics={metrics},"
                f" opset={self.opset}, dtype={self.dtype!r}, nodes: {counts})")
