"""A model's several inputs and outputs, as a training program sees them.

compile_model names every data tensor of the graphs here. A model with one input and
one output keeps the names every bundle has always had (``x``, ``y``, ``y_pred``), so
existing bundles, the Node.js trainer and user code keep working. With several, each
tensor is named after its input or output: ``x/<input>``, ``y/<output>``,
``y_pred/<output>``; the manifest's ``inputs`` and ``outputs`` lists map names to keys
(docs/internals.md section 3).

Losses, loss weights and metrics are given per output as Keras takes them: one value
for every output, a list in output order, or a dict by output name. The total loss is
sum_k weight_k * loss_k; each output's unweighted loss is logged as
``<output>_loss`` and each metric as ``<output>_<metric>`` (Keras' log names). The one
loss resolver (``program._resolve_loss``) turns each output's loss into a Loss.
"""
import numbers

from . import metrics as metrics_mod
from .errors import ParameterError


class DataIn:
    """One model input as a graph input: ``key`` (the user's name), ``name`` (the graph's)."""

    def __init__(self, key, name, shape, dtype):
        self.key, self.name, self.shape, self.dtype = key, name, tuple(shape), dtype


class DataOut:
    """One model output: its prediction ``name``, label input ``label_name``, its loss and
    loss weight, and its metrics as (log name, Metric)."""

    def __init__(self, key, name, label_name, loss, weight):
        self.key, self.name, self.label_name, self.loss, self.weight = key, name, label_name, loss, weight
        self.metrics = []


def _shape(shape):
    shape = tuple(shape)
    return shape[1:] if shape and shape[0] is None else shape     # Keras style (None, features...)


def model_inputs(model):
    """[DataIn] of a model (Sequential, Model, or anything with trace and input_shape)."""
    if not callable(getattr(model, "trace", None)):
        raise ParameterError(f"compile_model needs a model (Sequential, or Model(inputs, outputs)), got {model!r} "
                             f"({type(model).__name__})")
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ParameterError("the model has no input_shape; give Sequential(..., input_shape=(...)) or an Input")
    several = isinstance(shape, list) and shape and isinstance(shape[0], (tuple, list))
    shapes = [_shape(s) for s in shape] if several else [_shape(shape)]
    dtypes = getattr(model, "input_dtype", "float")
    dtypes = list(dtypes) if isinstance(dtypes, (list, tuple)) else [dtypes] * len(shapes)
    dtypes = ["int64" if str(d).startswith("int") else "float" for d in dtypes]
    if len(shapes) == 1:
        return [DataIn("x", "x", ("N",) + shapes[0], dtypes[0])]
    keys = list(getattr(model, "input_names", None) or [f"input_{k + 1}" for k in range(len(shapes))])
    return [DataIn(k, f"x/{k}", ("N",) + s, d) for k, s, d in zip(keys, shapes, dtypes)]


def output_keys(model, n):
    names = getattr(model, "output_names", None)
    return list(names) if names and len(names) == n else [f"output_{k + 1}" for k in range(n)]


def per_output(what, value, keys, default=None):
    """Keras' forms of a per-output argument -> one entry per output key."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(keys))
        if unknown:
            raise ParameterError(f"compile_model: {what} names {', '.join(map(repr, unknown))}, which are no outputs "
                                 f"of the model; its outputs are {', '.join(map(repr, keys))}")
        return [value.get(k, default) for k in keys]
    if isinstance(value, (list, tuple)) and (len(keys) > 1 or len(value) == 1):
        if len(value) != len(keys):
            raise ParameterError(f"compile_model: {what} is a list of {len(value)}, the model has {len(keys)} outputs "
                                 f"({', '.join(map(repr, keys))}); give one per output, or a dict by output name")
        return list(value)
    return [value] * len(keys)


def model_outputs(keys, loss, loss_weights, resolve_loss):
    """[DataOut] with resolved losses and weights (metrics are filled in by attach_metrics)."""
    losses = per_output("loss", loss, keys)
    weights = per_output("loss_weights", 1.0 if loss_weights is None else loss_weights, keys, default=1.0)
    single = len(keys) == 1
    outs = []
    for key, l, w in zip(keys, losses, weights):
        if l is None:
            raise ParameterError(f"compile_model: output {key!r} has no loss; give loss={{{key!r}: ...}} for every "
                                 "output (a model trains every output it has)")
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not w >= 0 or w == float("inf"):
            raise ParameterError(f"compile_model: the loss weight of output {key!r} must be a finite number >= 0, "
                                 f"got {w!r}")
        outs.append(DataOut(key, "y_pred" if single else f"y_pred/{key}", "y" if single else f"y/{key}",
                            resolve_loss(l), float(w)))
    return outs


def attach_metrics(outs, metrics, pred_shapes):
    """Fill each DataOut's metrics: ["accuracy"] applies to every output (Keras), a dict
    or list gives them per output. Log names are unique across the program."""
    keys = [o.key for o in outs]
    if metrics is None:
        per = [None] * len(outs)
    elif isinstance(metrics, dict) or (len(outs) > 1 and isinstance(metrics, (list, tuple))
                                       and metrics and all(isinstance(m, (list, tuple, dict)) or m is None
                                                           for m in metrics)):
        per = per_output("metrics", metrics, keys)
    else:
        per = [metrics] * len(outs)
    seen = {"loss"} | {f"{o.key}_loss" for o in outs if len(outs) > 1}
    for o, ids, shape in zip(outs, per, pred_shapes):
        for m in metrics_mod.get_list(ids, o.loss, shape):
            log = m.name if len(outs) == 1 else f"{o.key}_{m.name}"
            if log in seen:
                raise ParameterError(f"metric name {log!r} is used twice (or clashes with a loss); give each metric "
                                     "a unique name")
            seen.add(log)
            o.metrics.append((log, m))
    return outs
