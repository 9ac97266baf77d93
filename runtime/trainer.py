"""The Trainer: trains an artifact bundle with onnxruntime, Keras style.

    trainer = Trainer(program_or_bundle_or_path, provider="cpu", seed=0, intra_op_num_threads=2)
    history = trainer.fit(x, y, epochs=10, batch_size=64, validation_data=(xv, yv), callbacks=[...])
    trainer.evaluate(xv, yv); trainer.predict(xv); trainer.export("model.onnx")

The state lives in OrtValues (session.py); sympy is never imported here.
"""
import math
import numbers
import os

import numpy as np
import onnxruntime as ort

from symgrad.compiler.bundle import TENSOR_SECTIONS, Bundle
from symgrad.compiler.errors import BundleError, DataError, ParameterError, ShapeError

from . import checkpoint, export as export_mod, loop
from .callbacks.callback_list import CallbackList
from .inputs import Inputs
from .metric_state import MetricStates
from .providers import resolve_device, session_options
from .session import GraphSession, Plan, StateStore, aligned_zeros, np_type, on_device
from .views import OptimizerView, reject_unknown
from .views import check_int as _check_int, check_verbose as _check_verbose, weight_order as _weight_order

_MAX_PLANS = 8      # batch sizes kept bound per graph (full batch, last batch, iterables' odd sizes)


def _classes(shape):
    last = shape[-1] if shape else None
    return (2 if last == 1 else last) if isinstance(last, int) and last > 0 else None


class Trainer:
    """Trains a compiled Program, a Bundle, or a bundle folder.

    provider: "cpu" or "cuda" (state resident on the GPU; needs ``symgrad[cuda]``).
    seed: makes shuffling and dropout noise reproducible (None: fresh entropy).
    session_opts: onnxruntime SessionOptions by keyword (``intra_op_num_threads``,
    ``graph_optimization_level``, ... see providers.SESSION_KEYWORDS), or
    ``session_options=ort.SessionOptions()``; ``device_id`` and ``provider_options``.

    Attributes a callback may use: ``stop_training``, ``learning_rate`` (settable, no
    recompiling), ``history``, ``step``, ``epoch``, ``optimizer`` (Keras-style view),
    ``batch_logs`` (the last training batch's own loss and metrics, set when a batch-end
    hook listens; Keras-named hooks get running means in ``logs``, TF.js' onBatchEnd gets these).
    """

    def __init__(self, program, provider="cpu", seed=None, **session_opts):
        self.program = None
        if isinstance(program, Bundle):
            bundle = program
        elif isinstance(program, (str, os.PathLike)):
            bundle = Bundle.load(program)
        elif callable(getattr(program, "bundle", None)):
            self.program, bundle = program, program.bundle()
        else:
            raise ParameterError(f"Trainer needs a compiled Program, a Bundle or a bundle folder path, "
                                 f"got {type(program).__name__}")
        self.bundle, self.manifest = bundle, bundle.manifest
        m = self.manifest
        for key in ("data", "graphs"):
            if key not in m:
                raise BundleError(f"the bundle manifest has no {key!r} section")
        if not ("x" in m["data"] or m.get("inputs")) or "train_step" not in m["graphs"]:
            raise BundleError("the bundle manifest needs data.x (or an inputs list) and a train_step graph")
        so, device_id, provider_options = session_options(session_opts)
        self.device = resolve_device(provider, device_id, provider_options)
        self._session_options = so
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ParameterError(f"seed must be None or an integer >= 0, got {seed!r}")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        updated = set()
        for g in m["graphs"].values():
            updated.update((g.get("feeds") or {}).values())
            updated.update(o[5:] for o in g.get("outputs", []) if isinstance(o, str) and o.startswith("next/"))
        entries = [e for s in TENSOR_SECTIONS for e in m.get(s, [])]
        self._store = StateStore(entries, bundle.state, updated, self.device)
        self._random = [r["name"] for r in m.get("random_inputs", [])]
        self._inputs = Inputs(m, self._label_classes())
        self._graphs, self._plans, self._shared, self._hyper_np = {}, {}, {}, {}
        hyper = m.get("hyper", {})
        self._hyper_names = {"learning_rate": hyper.get("learning_rate", "learning_rate"),
                             "step": hyper.get("step", "step")}
        saved = m.get("trainer", {})
        self._lr = float(saved.get("learning_rate", m.get("optimizer", {}).get("config", {}).get("learning_rate", 0.01)))
        self._step = int(saved.get("step", 0))
        self._epoch = 0
        self._no_revert_before = self._step
        self._last_steps = 1            # steps the last run made (K for a train_loop run)
        self.stop_training = False
        self.history = None
        self.batch_logs = None      # the last training batch's own loss and metrics (TF.js' batch logs)
        self._callbacks = self._progress = self._resume = None
        self.weight_names = _weight_order(m, self.program)
        self.optimizer = OptimizerView(self)

    @classmethod
    def load(cls, path, provider="cpu", seed=None, **session_opts):
        """A Trainer for the bundle folder at ``path``."""
        return cls(Bundle.load(path), provider=provider, seed=seed, **session_opts)

    # ------------------------------------------------------------ sessions and plans
    def _label_classes(self):
        """{label input name: classes} for integer labels (checked against the range)."""
        outs = self.manifest.get("outputs")
        if isinstance(outs, list) and len(outs) > 1:
            return {o["labels"]["name"]: _classes(o.get("shape")) for o in outs
                    if np.dtype(o["labels"]["dtype"]).kind in "iu"}
        spec = self.manifest["data"].get("y")
        if spec is None or np.dtype(spec["dtype"]).kind not in "iu":
            return None
        shape = (self.manifest.get("prediction") or {}).get("shape")
        if shape is None and "inference" in self.bundle.graphs:
            import onnx
            out = onnx.load_from_string(self.bundle.graphs["inference"]).graph.output[0]
            shape = [d.dim_value if d.HasField("dim_value") else None for d in out.type.tensor_type.shape.dim]
        return _classes(shape)

    def _session(self, kind):
        gs = self._graphs.get(kind)
        if gs is None:
            spec, raw = self.manifest["graphs"].get(kind), self.bundle.graphs.get(kind)
            if spec is None or raw is None:
                why = " (callbacks overriding on_after_backward/on_before_optimizer_step need it)" \
                    if kind in ("gradients", "update") else ""
                raise BundleError(f"the bundle has no {kind!r} graph{why}")
            gs = GraphSession(kind, raw, spec, self.device, self._session_options)
            for role, name in self._hyper_names.items():
                if name in gs.inputs and name not in self._shared:
                    buf = aligned_zeros((), np_type(gs.inputs[name]))
                    buf.fill(self._lr if role == "learning_rate" else self._step + 1)
                    self._hyper_np[role] = buf
                    self._shared[name] = ort.OrtValue.ortvalue_from_numpy(buf)   # shares buf's memory
            for name in list(gs.inputs) + list(gs.outputs):
                if name.startswith("grad/") and name not in self._shared:
                    entry = self._store.entries.get(name[5:])
                    if entry is None:
                        raise BundleError(f"the {kind!r} graph has gradient {name!r} of no parameter")
                    self._shared[name] = on_device(np.zeros(entry["shape"], entry["dtype"]), self.device)
            self._graphs[kind] = gs
        return gs

    def _loop_steps(self):
        """K of a bundle compiled with steps_per_execution=K (1 without a train_loop)."""
        spec = self.manifest["graphs"].get("train_loop")
        if spec is None or "train_loop" not in self.bundle.graphs:
            return 1
        return int(spec.get("steps", 1))

    def _plan(self, kind, n, weighted=False):
        """The plan of graph ``kind`` for n samples; a weighted batch on a program compiled
        without sample weights runs the <kind>_weighted variant (same outputs, no recompiling)."""
        if weighted and not self._inputs.weighted:
            variant = f"{kind}_weighted"
            if variant not in self.manifest["graphs"]:
                raise DataError(f"sample weights on the {kind!r} graph need compile_model(..., sample_weight=True) "
                                "(callbacks overriding on_after_backward/on_before_optimizer_step split the step "
                                "into gradients + update, which have no weighted variant)")
            kind = variant
        plans = self._plans.setdefault(kind, {})
        plan = plans.get(n)
        if plan is None:
            plan = Plan(self._session(kind), self._store, n, self._shared)
            plan.noise = [(plan.host[r], plan.host[r].dtype) for r in self._random if r in plan.host]
            if len(plans) >= _MAX_PLANS:
                plans.pop(next(iter(plans)))
            plans[n] = plan
        return plan

    # ------------------------------------------------------------ hyper-parameters
    @property
    def learning_rate(self):
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise ParameterError(f"learning_rate must be a finite number >= 0, got {value!r}")
        self._lr = float(value)
        buf = self._hyper_np.get("learning_rate")
        if buf is not None:
            buf.fill(self._lr)      # the bound OrtValue shares this memory: no rebinding, no recompiling

    @property
    def step(self):
        """Number of optimizer updates made so far."""
        return self._step

    iterations = step

    @property
    def epoch(self):
        return self._epoch

    @property
    def stopTraining(self):          # TF.js spelling
        return self.stop_training

    @stopTraining.setter
    def stopTraining(self, value):
        self.stop_training = value

    def metric_direction(self, name):
        if name in (self.manifest.get("metric_states") or {}):      # precision, recall, F1, AUC, IoU: higher is better
            return "max"
        for m in self.manifest.get("metrics", []):
            if isinstance(m, dict) and m.get("name") == name and m.get("direction") in ("up", "down"):
                return "max" if m["direction"] == "up" else "min"
        return None

    # ------------------------------------------------------------ training
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1, **kwargs):
        """Train for ``epochs`` epochs (Keras semantics); returns the History callback."""
        reject_unknown(Trainer.fit, kwargs)
        epochs = _check_int("epochs", epochs, 1)
        initial_epoch = _check_int("initial_epoch", initial_epoch, 0)
        verbose = _check_verbose(verbose)
        validation_freq = _check_int("validation_freq", validation_freq, 1)
        for name, value in (("batch_size", batch_size), ("steps_per_epoch", steps_per_epoch),
                            ("validation_steps", validation_steps), ("validation_batch_size", validation_batch_size)):
            if value is not None:
                _check_int(name, value, 1)
        if not isinstance(shuffle, bool):
            raise ParameterError(f"shuffle must be True or False, got {shuffle!r}")
        if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
                or not 0 <= validation_split < 1:
            raise ParameterError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
        train, val = self._inputs.train_sources(x, y, sample_weight, class_weight, batch_size, shuffle,
                                                steps_per_epoch, 0 if validation_data is not None else validation_split)
        if validation_data is not None:
            val = self._inputs.validation_source(validation_data, validation_batch_size or batch_size, validation_steps)
        cbl = CallbackList(callbacks, trainer=self, add_history=True, add_progbar=verbose != 0, verbose=verbose,
                           epochs=epochs, steps=train.steps, batch_size=getattr(train, "batch_size", None),
                           do_validation=val is not None, mode="train")
        split = cbl.has("on_after_backward") or cbl.has("on_before_optimizer_step")
        return loop.fit_loop(self, train, val, epochs, initial_epoch, cbl, validation_freq, split)

    # The fit loop's step, swappable: runtime/distributed runs it over Ray workers.
    def _train_kind(self, split):
        """The graph whose plans hold the training batches."""
        return "gradients" if split else "train_step"

    def _step_runner(self, split, cbl):
        """``step(plan, batch_index) -> scalars``: one optimizer step on a filled plan."""
        return loop.local_step(self, split, cbl)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        """Loss and metrics over the data: a float (no metrics), a list [loss, *metrics] or a dict."""
        reject_unknown(Trainer.evaluate, kwargs)
        verbose = _check_verbose(verbose)
        if batch_size is not None:
            _check_int("batch_size", batch_size, 1)
        source = self._inputs.source(x, y, sample_weight, None, batch_size, False, steps)
        cbl = CallbackList(callbacks, trainer=self, add_progbar=verbose != 0, verbose=verbose, epochs=1,
                           steps=source.steps, mode="test")
        logs = loop.evaluate_loop(self, source, cbl)
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None, **kwargs):
        """``y_pred`` for every sample of ``x`` (the inference graph, batch by batch)."""
        reject_unknown(Trainer.predict, kwargs)
        verbose = _check_verbose(verbose)
        if batch_size is not None:
            _check_int("batch_size", batch_size, 1)
        source = self._inputs.source(x, batch_size=batch_size, steps=steps, need_y=False)
        cbl = CallbackList(callbacks, trainer=self, add_progbar=verbose != 0, verbose=verbose, epochs=1,
                           steps=source.steps, mode="predict")
        return self._structured(loop.predict_loop(self, source, cbl))

    def _structured(self, result):
        """Several outputs as the model declared them: a list in order, or a dict by name."""
        outs = self.manifest.get("outputs")
        if not isinstance(result, dict) or not isinstance(outs, list) or len(outs) < 2:
            return result
        if (self.manifest.get("structure") or {}).get("outputs") == "dict":
            return {o["key"]: result[o["name"]] for o in outs}
        return [result[o["name"]] for o in outs]

    def _single_batch(self, kind, arrays):
        n = len(next(iter(arrays.values())))
        plan = self._plan(kind, n, "sample_weight" in arrays)
        for name, array in arrays.items():
            np.copyto(plan.host[name], array)
        return plan

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns its loss (and metrics) before the update."""
        plan = self._single_batch("train_step", self._inputs.arrays(x, y, sample_weight, class_weight))
        for buf, dtype in plan.noise:
            self.rng.random(out=buf, dtype=dtype)
        if "step" in self._hyper_np:
            self._hyper_np["step"].fill(self._step + 1)
        plan.run[self._store.parity]()
        self._store.parity ^= 1
        self._step += 1
        self._last_steps = 1
        logs = self._batch_logs(plan)
        return logs if return_dict else (logs["loss"] if len(logs) == 1 else list(logs.values()))

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        plan = self._single_batch("eval", self._inputs.arrays(x, y, sample_weight))
        plan.run[self._store.parity]()
        logs = self._batch_logs(plan)
        return logs if return_dict else (logs["loss"] if len(logs) == 1 else list(logs.values()))

    def _batch_logs(self, plan):
        """Loss and metrics of one batch (stateful metrics over this batch alone)."""
        logs = dict(zip([loop.log_name(o) for o in plan.scalar_names], plan.read_scalars().tolist()))
        states = MetricStates(self.manifest, plan.outputs)
        if states:
            states.update(plan.outputs)
            logs.update(states.results())
        return logs

    def predict_on_batch(self, x):
        plan = self._single_batch("inference", self._inputs.arrays(x, need_y=False))
        plan.run[self._store.parity]()
        outs = {k: v.copy() for k, v in plan.outputs.items()}
        return next(iter(outs.values())) if len(outs) == 1 else self._structured(outs)

    def revert_last_step(self):
        """Go back to the state before the last optimizer step (its buffers are still there);
        with steps_per_execution=K, before the last run of K steps."""
        if self._step <= self._no_revert_before:
            raise ParameterError("there is no step to revert: the state before the last step is gone "
                                 "(only the last step, and only once, can be reverted)")
        self._store.parity ^= 1
        self._step -= self._last_steps
        self._no_revert_before = self._step

    # ------------------------------------------------------------ weights and gradients
    def get_weights(self):
        """NumPy copies of the weights, layer by layer as Keras (``weight_names`` says which)."""
        return [self._store.get(n) for n in self.weight_names]

    def set_weights(self, weights):
        if not isinstance(weights, (list, tuple)) or len(weights) != len(self.weight_names):
            got = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
            raise ParameterError(f"set_weights expects a list of {len(self.weight_names)} arrays in the order of "
                                 f"get_weights() ({', '.join(self.weight_names)}), got {got}")
        for name, w in zip(self.weight_names, weights):
            if tuple(np.shape(w)) != tuple(self._store.entries[name]["shape"]):
                raise ShapeError(f"set_weights: {name!r} must have shape {tuple(self._store.entries[name]['shape'])}, "
                                 f"got {np.shape(w)}")
        for name, w in zip(self.weight_names, weights):
            self._store.set(name, w)
        self._no_revert_before = self._step

    def state_dict(self):
        """Every parameter, state tensor and optimizer slot: {name: NumPy copy}."""
        return self._store.snapshot()

    def load_state_dict(self, state):
        missing = sorted(set(self._store.entries) - set(state))
        if missing:
            raise ParameterError(f"load_state_dict: missing tensors {missing}")
        for name in self._store.entries:
            self._store.set(name, state[name])
        self._no_revert_before = self._step

    def get_gradients(self):
        """{parameter name: gradient} of the current batch, inside on_after_backward /
        on_before_optimizer_step (the split gradients + update mode)."""
        grads = {k[5:]: np.array(v.numpy(), copy=True) for k, v in self._shared.items() if k.startswith("grad/")}
        if not grads:
            raise ParameterError("gradients exist only inside on_after_backward / on_before_optimizer_step callbacks")
        return grads

    def set_gradients(self, grads):
        """Replace gradients before the update (clipping, accumulation...)."""
        for name, g in grads.items():
            ov = self._shared.get(f"grad/{name}")
            if ov is None:
                raise ParameterError(f"set_gradients: {name!r} is not a trained parameter (or no gradients exist yet)")
            entry = self._store.entries[name]
            if tuple(np.shape(g)) != tuple(entry["shape"]):
                raise ShapeError(f"set_gradients: {name!r} must have shape {tuple(entry['shape'])}, got {np.shape(g)}")
            ov.update_inplace(np.array(g, dtype=entry["dtype"], order="C"))

    # ------------------------------------------------------------ saving
    def export(self, path, opset=None, output_activation=None):
        """Write the inference model (x -> y_pred, trained weights as initializers) atomically.
        ``output_activation="softmax"`` (or ``"sigmoid"``) appends it, so that a deployed
        classifier trained on logits returns probabilities."""
        return export_mod.export(self, path, opset, output_activation)

    def inference_model(self, opset=None, output_activation=None):
        return export_mod.inference_model(self, opset, output_activation)

    def save(self, path):
        """A bundle folder with the current state (weights, slots, step, learning rate)."""
        import json
        manifest = json.loads(json.dumps(self.manifest))
        manifest["trainer"] = {"step": self._step, "learning_rate": self._lr}
        return Bundle(manifest, self.bundle.graphs, self.state_dict()).save(path)

    def save_checkpoint(self, path):
        """The full training state (checkpoint.py format), written atomically."""
        tensors, meta = checkpoint.capture(self, {"epoch": self._epoch, "batch": 0})
        return checkpoint.write_checkpoint(path, tensors, meta)

    def load_checkpoint(self, path):
        tensors, meta = checkpoint.read_checkpoint(path)
        checkpoint.restore(self, tensors, meta, source=f"checkpoint {os.fspath(path)!r}")
        self._no_revert_before = self._step

    def _resume_from(self, tensors, meta, callbacks, source):
        self._resume = checkpoint.restore(self, tensors, meta, callbacks, source=source)
        self._no_revert_before = self._step

    def _check_resume_data(self, resume, data_info):
        saved = resume.get("data")
        if saved != data_info:
            raise DataError(f"the checkpoint was written in the middle of an epoch over data {saved}; resume it with "
                            f"the same data, batch_size and shuffle (this run has {data_info})")

    def __repr__(self):
        opt = self.manifest.get("optimizer", {}).get("name")
        return (f"Trainer(provider={self.device.type!r}, optimizer={opt!r}, weights={len(self.weight_names)}, "
                f"step={self._step}, learning_rate={self._lr})")

