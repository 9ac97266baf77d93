"""Metrics: per-sample values in the graph, reduced to the batch mean.

The definitions are Keras 3's (``keras/src/metrics/accuracy_metrics.py``,
``regression_metrics.py``). As in Keras' ``compile(metrics=...)`` (not
``weighted_metrics``), sample weights do not enter a metric. A metric is logged under
the name the user gave ("acc", "mae", ...), as Keras does.

"accuracy" / "acc" is resolved from the loss and shapes as Keras resolves it: integer
class labels -> sparse_categorical_accuracy; a prediction whose last axis has size 1
(or no class axis) -> binary_accuracy; otherwise categorical_accuracy. One refinement:
when the loss says ``from_logits=True``, the resolved binary accuracy thresholds the
logit at 0 (the probability 0.5), where Keras would compare the raw logit with 0.5.
"""
import sympy

from . import ir, primitives  # noqa: F401  (primitives: registers reduce_sum, argmax...)
from .errors import ParameterError, unknown_name
from .params import check_int, check_number


def _indicator(cond):
    return sympy.Piecewise((1, cond), (0, True))


def _batch_mean(v, name):
    return ir.apply("reduce_mean", [v], name=f"metric/{name}/mean", keepdims=False)


class Metric:
    """A metric: ``build(y_true, y_pred, sparse)`` returns its scalar batch mean as IR.

    ``labels`` says what y_true it accepts: 'dense' (shaped like y_pred), 'sparse'
    (integer class indices) or 'any'."""

    kind = None
    labels = "dense"

    def __init__(self, name=None):
        self.name = str(name or self.kind)

    def per_sample(self, y_true, y_pred):
        raise NotImplementedError

    def build(self, y_true, y_pred, sparse):
        if self.labels == "dense" and sparse:
            raise ParameterError(f"metric {self.name!r} needs y_true shaped like y_pred, but the loss takes "
                                 "integer class labels; use sparse_categorical_accuracy or "
                                 "sparse_top_k_categorical_accuracy")
        if self.labels == "sparse" and not sparse:
            raise ParameterError(f"metric {self.name!r} needs integer class labels (a loss with labels='sparse'), "
                                 "but the loss takes y_true shaped like y_pred; use categorical_accuracy or "
                                 "top_k_categorical_accuracy")
        return _batch_mean(self.per_sample(y_true, y_pred), self.name)

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class BinaryAccuracy(Metric):
    """mean(y_true == (y_pred > threshold))."""

    kind = "binary_accuracy"

    def __init__(self, name=None, threshold=0.5):
        super().__init__(name)
        self.threshold = check_number(f"metric {self.name!r}", "threshold", threshold)

    def per_sample(self, y_true, y_pred):
        # a node of its own: sympy would fold Eq(y, Piecewise) into an ITE the printer lacks
        predicted = ir.elementwise(_indicator(y_pred.sym > sympy.Float(self.threshold)),
                                   name=f"metric/{self.name}/predicted")
        return ir.elementwise(_indicator(sympy.Eq(y_true.sym, predicted.sym)), name=f"metric/{self.name}")

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    """argmax(y_true) == argmax(y_pred) over the last axis."""

    kind = "categorical_accuracy"

    def per_sample(self, y_true, y_pred):
        target = ir.apply("argmax", [y_true], name=f"metric/{self.name}/target", axis=-1)
        return _match(target, y_pred, self.name)


class SparseCategoricalAccuracy(Metric):
    """y_true == argmax(y_pred) for integer labels y_true."""

    kind = "sparse_categorical_accuracy"
    labels = "sparse"

    def per_sample(self, y_true, y_pred):
        if y_true.dtype != "float":
            y_true = ir.apply("cast_float", [y_true], name=f"metric/{self.name}/labels")
        return _match(y_true, y_pred, self.name)


def _match(target, y_pred, name):
    predicted = ir.apply("argmax", [y_pred], name=f"metric/{name}/argmax", axis=-1)
    return ir.elementwise(_indicator(sympy.Eq(target.sym, predicted.sym)), name=f"metric/{name}")


class TopKCategoricalAccuracy(Metric):
    """Whether argmax(y_true) is among the k largest scores. Ties at the boundary count as
    in (Keras' in_top_k): the target's score is beaten by fewer than k classes."""

    kind = "top_k_categorical_accuracy"

    def __init__(self, k=5, name=None):
        super().__init__(name)
        self.k = check_int(f"metric {self.name!r}", "k", k, minimum=1)

    def per_sample(self, y_true, y_pred):
        target = ir.apply("argmax", [y_true], name=f"metric/{self.name}/target", axis=-1)
        return _in_top_k(target, y_pred, self.k, self.name)

    def get_config(self):
        return {"name": self.name, "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    kind = "sparse_top_k_categorical_accuracy"
    labels = "sparse"

    def per_sample(self, y_true, y_pred):
        return _in_top_k(y_true, y_pred, self.k, self.name)


def _in_top_k(target, y_pred, k, name):
    score = ir.apply("take_along_axis", [y_pred, target], name=f"metric/{name}/score")
    beaten = ir.apply("reduce_sum", [ir.elementwise(_indicator(y_pred.sym > score.sym), name=f"metric/{name}")],
                      name=f"metric/{name}/beaten", axes=(-1,))
    return ir.elementwise(_indicator(beaten.sym < k), name=f"metric/{name}")


class MeanAbsoluteError(Metric):
    kind = "mean_absolute_error"

    def per_sample(self, y_true, y_pred):
        return ir.elementwise(sympy.Abs(y_true.sym - y_pred.sym), name=f"metric/{self.name}")


class MeanSquaredError(Metric):
    kind = "mean_squared_error"

    def per_sample(self, y_true, y_pred):
        return ir.elementwise((y_true.sym - y_pred.sym) ** 2, name=f"metric/{self.name}")


class LossMetric(Metric):
    """Any loss as a metric: a Loss, a catalogue name, an expression string or a function
    f(y_true, y_pred) (resolve_loss). Its value is the loss of the batch under the loss's own
    reduction ('none' is averaged); sample weights do not enter it, as for every metric."""

    kind = "loss"
    labels = "any"

    def __init__(self, loss, name=None):
        from .loss_spec import resolve_loss
        self.loss = resolve_loss(loss)
        if name is None:
            name = loss if isinstance(loss, str) else self.loss.name
        super().__init__(name)
        if self.loss.inputs:
            raise ParameterError(f"metric {self.name!r}: loss {self.loss.name!r} takes extra inputs "
                                 f"{list(self.loss.inputs)}; a metric sees only y_true and y_pred")

    def build(self, y_true, y_pred, sparse):
        if (self.loss.labels == "sparse") != bool(sparse) and self.loss.uses_y_true():
            want = "integer class labels" if self.loss.labels == "sparse" else "y_true shaped like y_pred"
            raise ParameterError(f"metric {self.name!r}: loss {self.loss.name!r} takes {want}, which the "
                                 "program's loss does not")
        value, _ = self.loss.build(y_pred, y_true)
        if value.shape != ():
            value = _batch_mean(value, self.name)
        return value

    def get_config(self):
        return {"name": self.name, "loss": self.loss.name}


METRICS = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_absolute_error": MeanAbsoluteError,
    "mean_squared_error": MeanSquaredError,
}
ALIASES = {"mae": "mean_absolute_error", "mse": "mean_squared_error"}
ACCURACY = ("accuracy", "acc")


def names():
    from .metrics_stateful import STATEFUL, STATEFUL_ALIASES
    return sorted(set(METRICS) | set(ALIASES) | set(ACCURACY) | set(STATEFUL) | set(STATEFUL_ALIASES))


def resolve_accuracy(name, loss, pred_shape):
    """The accuracy metric Keras would pick for this loss and prediction shape."""
    if getattr(loss, "labels", "dense") == "sparse":
        return SparseCategoricalAccuracy(name=name)
    if len(pred_shape) < 2 or pred_shape[-1] == 1:
        threshold = 0.0 if _from_logits(loss) else 0.5
        return BinaryAccuracy(name=name, threshold=threshold)
    return CategoricalAccuracy(name=name)


def _from_logits(loss):
    for source in (getattr(loss, "config", None), getattr(loss, "kwargs", None)):
        if isinstance(source, dict) and "from_logits" in source:
            return bool(source["from_logits"])
    return bool(getattr(loss, "from_logits", False))


def get(identifier, loss=None, pred_shape=("N", 2)):
    """A Metric from an instance or a name; 'accuracy'/'acc' need the loss and y_pred shape."""
    if isinstance(identifier, Metric):
        return identifier
    if not isinstance(identifier, str):
        from .loss import Loss
        if isinstance(identifier, Loss) or callable(identifier):
            return LossMetric(identifier)
        raise ParameterError(f"a metric must be a name ({', '.join(names())}), a Metric, or a loss (a Loss, "
                             f"a loss name, an expression string or a function f(y_true, y_pred)), "
                             f"got {identifier!r}")
    key = identifier.lower()
    if key in ACCURACY:
        return resolve_accuracy(identifier, loss, pred_shape)
    from .metrics_stateful import STATEFUL, STATEFUL_ALIASES, MeanIoU
    stateful = STATEFUL_ALIASES.get(key, key)
    if stateful == "mean_iou":
        return MeanIoU(num_classes=max(int(pred_shape[-1]), 2), name=identifier)
    if stateful in STATEFUL:
        return STATEFUL[stateful](name=identifier)
    cls = METRICS.get(ALIASES.get(key, key))
    if cls is None:
        from .errors import UnknownNameError
        try:
            return LossMetric(identifier)
        except UnknownNameError:
            raise unknown_name("metric", identifier, names()) from None
    return cls(name=identifier)


def get_list(identifiers, loss=None, pred_shape=("N", 2)):
    """Metrics for compile_model; names must be unique (they become output names)."""
    if identifiers is None:
        return []
    if isinstance(identifiers, (str, Metric)) or callable(identifiers) or hasattr(identifiers, "build"):
        identifiers = [identifiers]
    out = [get(i, loss, pred_shape) for i in identifiers]
    seen = set()
    for m in out:
        if m.name in seen or m.name in ("loss",):
            raise ParameterError(f"metric name {m.name!r} is used twice (or clashes with 'loss'); "
                                 "give each metric a unique name")
        seen.add(m.name)
    return out
