"""Stateful metrics: values over a whole epoch, not a mean of batch values.

The graphs compute each batch's sufficient statistics and output them as
``state/<metric>/<part>``; the runtime accumulates them over the epoch (``sum`` for
counts, ``concat`` for per-sample scores) and finishes the value with NumPy
(runtime/metric_state.py). The manifest's ``metric_states`` says, per metric, its
kind, its config and, per part, its output and accumulation.

- ``Precision``, ``Recall``, ``F1Score`` (``average='micro' | 'macro'``): y_pred > threshold
  against 0/1 labels, element by element (Keras' thresholded multi-label semantics), per-class
  true/false positive and false negative counts;
- ``MeanIoU(num_classes)``: argmax of y_pred (or integer y_pred indices, ``sparse_y_pred``)
  against class labels (integers, or one-hot rows), per-class counts; classes absent from both
  are left out of the mean, as scikit-learn's jaccard_score(average='macro') and Keras do;
- ``AUC(curve='ROC' | 'PR')``: the exact area from every (score, label) pair of the epoch, equal
  to scikit-learn's roc_auc_score and average_precision_score (Keras' AUC interpolates over 200
  thresholds instead).

Sample weights do not enter them, as for every compile-time metric.
"""
import sympy

from . import ir
from .errors import ParameterError
from .metrics import Metric
from .params import check_choice, check_int, check_number


def _indicator(cond):
    return sympy.Piecewise((1, cond), (0, True))


class StatefulMetric(Metric):
    stateful = True
    labels = "any"

    def build(self, y_true, y_pred, sparse):
        raise ParameterError(f"metric {self.name!r} is stateful; it is built with build_state")

    def build_state(self, y_true, y_pred, sparse):
        """[(part, IR value, accumulation)] for this batch."""
        raise NotImplementedError

    def manifest_entry(self, parts):
        return {"kind": self.kind, "config": self.get_config(),
                "parts": {part: {"output": f"state/{self.name}/{part}", "accumulate": acc} for part, acc in parts}}


def _over_batch(v, name):
    """Sum over every axis but the last (the class axis): shape (1, ..., 1, C)."""
    axes = tuple(range(v.rank - 1)) if v.rank > 1 else (0,)
    return ir.apply("reduce_sum", [v], name=name, axes=axes, keepdims=True)


class _Confusion(StatefulMetric):
    """tp, fp, fn per class of y_pred > threshold against 0/1 labels."""

    def __init__(self, thresholds=0.5, name=None):
        super().__init__(name)
        self.threshold = check_number(f"metric {self.name!r}", "thresholds", thresholds, "number")

    def build_state(self, y_true, y_pred, sparse):
        if sparse:
            raise ParameterError(f"metric {self.name!r} needs 0/1 labels shaped like y_pred (binary or multi-label); "
                                 "the program's loss takes integer class labels")
        scope = f"metric/{self.name}"
        pred = ir.elementwise(_indicator(y_pred.sym > sympy.Float(self.threshold)), name=f"{scope}/predicted")
        t = y_true.sym
        tp = ir.elementwise(t * pred.sym, name=f"{scope}/tp")
        fp = ir.elementwise((1 - t) * pred.sym, name=f"{scope}/fp")
        fn = ir.elementwise(t * (1 - pred.sym), name=f"{scope}/fn")
        return [(part, _over_batch(v, f"{scope}/{part}_sum"), "sum") for part, v in (("tp", tp), ("fp", fp), ("fn", fn))]

    def get_config(self):
        return {"name": self.name, "thresholds": self.threshold}


class Precision(_Confusion):
    """tp / (tp + fp) over the epoch (0 when nothing is predicted positive)."""
    kind = "precision"


class Recall(_Confusion):
    """tp / (tp + fn) over the epoch (0 when there is no positive label)."""
    kind = "recall"


class F1Score(_Confusion):
    """2 tp / (2 tp + fp + fn): micro (all classes pooled) or macro (the mean of per-class F1)."""
    kind = "f1_score"

    def __init__(self, average="micro", threshold=0.5, name=None):
        super().__init__(threshold, name)
        self.average = check_choice(f"metric {self.name!r}", "average", average, ("micro", "macro"))

    def get_config(self):
        return {"name": self.name, "average": self.average, "threshold": self.threshold}


class MeanIoU(StatefulMetric):
    """Mean over classes of tp / (tp + fp + fn), classes with tp + fp + fn = 0 left out."""
    kind = "mean_iou"

    def __init__(self, num_classes, name=None, sparse_y_pred=False):
        super().__init__(name)
        self.num_classes = check_int(f"metric {self.name!r}", "num_classes", num_classes, minimum=2)
        self.sparse_y_pred = bool(sparse_y_pred)

    def build_state(self, y_true, y_pred, sparse):
        scope = f"metric/{self.name}"
        if y_pred.shape[-1] != self.num_classes and not self.sparse_y_pred:
            raise ParameterError(f"metric {self.name!r}: num_classes={self.num_classes} but y_pred has "
                                 f"{y_pred.shape[-1]} classes on its last axis")
        like = y_pred
        if self.sparse_y_pred:
            raise ParameterError(f"metric {self.name!r}: sparse_y_pred=True is not supported; give class scores "
                                 "(the argmax is taken in the graph)")
        pred_idx = ir.apply("argmax", [y_pred], name=f"{scope}/predicted", axis=-1)
        if sparse:
            true_idx = ir.apply("cast_float", [y_true], name=f"{scope}/labels") if y_true.dtype != "float" else y_true
        else:
            true_idx = ir.apply("argmax", [y_true], name=f"{scope}/target", axis=-1)
        p1 = ir.apply("one_hot", [pred_idx, like], name=f"{scope}/pred_onehot")
        t1 = ir.apply("one_hot", [true_idx, like], name=f"{scope}/true_onehot")
        tp = ir.elementwise(t1.sym * p1.sym, name=f"{scope}/tp")
        return [("tp", _over_batch(tp, f"{scope}/tp_sum"), "sum"),
                ("predicted", _over_batch(p1, f"{scope}/predicted_sum"), "sum"),
                ("actual", _over_batch(t1, f"{scope}/actual_sum"), "sum")]

    def get_config(self):
        return {"name": self.name, "num_classes": self.num_classes}


class AUC(StatefulMetric):
    """Exact ROC AUC or average precision (PR) over every (score, label) pair of the epoch."""
    kind = "auc"

    def __init__(self, curve="ROC", name=None):
        super().__init__(name)
        self.curve = check_choice(f"metric {self.name!r}", "curve", str(curve).upper(), ("ROC", "PR"))

    def build_state(self, y_true, y_pred, sparse):
        if sparse:
            raise ParameterError(f"metric {self.name!r} needs 0/1 labels shaped like y_pred (binary or multi-label)")
        # the areas depend only on the order of the scores, so logits and probabilities agree
        return [("score", y_pred, "concat"), ("label", y_true, "concat")]

    def get_config(self):
        return {"name": self.name, "curve": self.curve}


STATEFUL = {"precision": Precision, "recall": Recall, "f1_score": F1Score, "auc": AUC, "mean_iou": MeanIoU}
STATEFUL_ALIASES = {"f1score": "f1_score", "f1": "f1_score", "meaniou": "mean_iou"}
