"""Similarity and overlap losses: cosine similarity, Dice, Tversky. Each reduces over
``axis`` (keeping the axis), then the batch reduction applies.

Dice and Tversky follow Keras 3: the default ``axis=None`` gives one value over the whole
batch (every axis, the batch included); an integer or a tuple of axes (e.g. (1, 2, 3) for
images) gives one value per sample, which the reduction then averages."""
from sympy import Max, sqrt

from .. import ops
from .common import p, sym, y
from .registry import register, spec


def _normalize(x, axis, eps):
    # Keras ops.nn.normalize: x * rsqrt(max(sum(x^2), eps^2)), finite for a zero vector
    return x / sqrt(Max(ops.sum(x ** 2, axis), eps ** 2))


@register("similarity", aliases=("cosine", "cosine_proximity"), axis="axis", epsilon="positive")
def cosine_similarity(axis=-1, epsilon=1e-7, reduction=None):
    """Negative cosine similarity: -sum(normalize(y_true) * normalize(y_pred)) over ``axis``, in [-1, 1].

    Convention: Keras CosineSimilarity: normalize(x) = x * rsqrt(max(sum(x^2), epsilon^2))
    with epsilon = 1e-7, so a zero vector gives 0 (TF.js cosineProximity uses
    max(sum(x^2), epsilon) instead; Optax cosine_distance is 1 + this loss).
    """
    eps = sym("epsilon")
    per = -ops.sum(_normalize(y, axis, eps) * _normalize(p, axis, eps), axis)
    return spec(per, params={"epsilon": epsilon})


@register("similarity", axis="axes", smooth="nonnegative", epsilon="nonnegative")
def dice(axis=None, smooth=0.0, epsilon=1e-7, reduction=None):
    """Dice loss over ``axis``: 1 - (2*sum(y*p) + smooth) / (sum(y) + sum(p) + smooth + epsilon).

    Convention: Keras Dice: axis=None (the default) sums over every axis, the batch included,
    giving one value for the whole batch; axis=-1 or a tuple such as (1, 2, 3) gives one value
    per sample, then the batch mean. epsilon = 1e-7 in the denominator only, smooth = 0;
    smooth=1, epsilon=0 is Optax binary_dice_loss' smoothing.
    """
    s, eps = sym("smooth"), sym("epsilon")
    inter = ops.sum(y * p, axis)
    total = ops.sum(y, axis) + ops.sum(p, axis)
    return spec(1 - (2 * inter + s) / (total + s + eps), params={"smooth": smooth, "epsilon": epsilon})


@register("similarity", alpha="nonnegative", beta="nonnegative", axis="axes", smooth="nonnegative",
          epsilon="nonnegative")
def tversky(alpha=0.5, beta=0.5, axis=None, smooth=0.0, epsilon=1e-7, reduction=None):
    """Tversky loss: 1 - (TP + smooth) / (TP + alpha*FP + beta*FN + smooth + epsilon).

    TP = sum(y*p), FP = sum((1 - y)*p), FN = sum(y*(1 - p)) over ``axis``. alpha weighs false
    positives and beta false negatives, as in Salehi et al. and Keras >= 3.16 (Keras <= 3.15.1
    swapped them). alpha = beta = 0.5 is the Dice loss.
    Convention: Keras Tversky (epsilon = 1e-7 in the denominator): axis=None (the default) is one
    value over the whole batch; an axis or a tuple of axes gives one value per sample, then the
    batch mean.
    """
    a, b, s, eps = sym("alpha"), sym("beta"), sym("smooth"), sym("epsilon")
    tp = ops.sum(y * p, axis)
    fp = ops.sum((1 - y) * p, axis)
    fn = ops.sum(y * (1 - p), axis)
    per = 1 - (tp + s) / (tp + a * fp + b * fn + s + eps)
    return spec(per, params={"alpha": alpha, "beta": beta, "smooth": smooth, "epsilon": epsilon})
