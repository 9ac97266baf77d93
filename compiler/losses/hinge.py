"""Margin losses for classification: hinge, squared hinge, categorical and multiclass hinge,
soft margin. Their label conventions differ between libraries (reference trap 7, 13)."""
from sympy import Max

from .. import ops
from ..functions import softplus
from .common import hinge_labels, p as y_pred, sym, y
from .registry import register, spec


@register("classification")
def hinge(reduction=None):
    """Hinge: max(0, 1 - y*y_pred), mean over the last axis; labels in {-1, 1} or {0, 1}.

    Convention: Keras Hinge, which maps 0/1 labels to -1/1. Here a label of exactly 0 becomes
    -1 element by element (the same result as Keras for {0, 1} and {-1, 1} label sets).
    """
    return spec(ops.mean(Max(0, 1 - hinge_labels(y) * y_pred)))


@register("classification")
def squared_hinge(reduction=None):
    """Squared hinge: max(0, 1 - y*y_pred)^2, mean over the last axis; labels in {-1, 1} or {0, 1}.

    Convention: Keras SquaredHinge (0 labels become -1, as in hinge).
    """
    return spec(ops.mean(Max(0, 1 - hinge_labels(y) * y_pred) ** 2))


@register("classification")
def categorical_hinge(reduction=None):
    """Categorical hinge with one-hot labels: max(0, 1 + max_k((1 - y_k) s_k) - sum_k y_k s_k).

    Convention: Keras / TF.js categorical_hinge. The zeroed target slot clamps the competitor
    maximum at 0, so this differs from multiclass_hinge (Optax) when every other score is < 0.
    """
    pos = ops.sum(y * y_pred)
    neg = ops.max((1 - y) * y_pred)
    return spec(Max(0, neg - pos + 1))


@register("classification", aliases=("crammer_singer",),
          margin="number", form="choice:max,sum", p="positive")
def multiclass_hinge(margin=1.0, form="max", p=1.0, reduction=None):  # p: PyTorch's name
    """Multiclass hinge with integer labels (int64): max(0, margin + max_{k != y} s_k - s_y).

    Convention: Optax multiclass_hinge_loss (Crammer-Singer, margin 1), computed as
    max_k(s_k + margin*(1 - onehot_k)) - s_y. form='sum' is PyTorch MultiMarginLoss(p, margin):
    sum_{k != y} max(0, margin - s_y + s_k)^p / C.
    """
    s = y_pred
    onehot = ops.one_hot(y, s)
    m = sym("margin")
    s_y = ops.sum(onehot * s)
    if form == "max":
        return spec(ops.max(s + m * (1 - onehot)) - s_y, params={"margin": margin}, labels="sparse")
    power = sym("p")
    per = ops.mean((1 - onehot) * Max(0, m - s_y + s) ** power)
    return spec(per, params={"margin": margin, "p": p}, labels="sparse")


@register("classification")
def soft_margin(reduction=None):
    """Soft margin (logistic) loss with labels in {-1, 1}: log(1 + exp(-y*y_pred)) = softplus(-y*y_pred).

    Convention: PyTorch SoftMarginLoss, averaged over the last axis then the batch.
    """
    return spec(ops.mean(softplus(-y * y_pred)))
