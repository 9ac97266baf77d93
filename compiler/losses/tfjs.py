"""TensorFlow.js core losses (``tf.losses.*``) under their own names and semantics.

They differ from the Keras-convention entries in two ways (tfjs-core/src/ops/losses/):
the loss is per element (no mean over the last axis; softmaxCrossEntropy and
cosineDistance reduce over their class/``axis`` axis), and the default reduction is
TF.js' ``SUM_BY_NONZERO_WEIGHTS``: sum(w*L) / count(w != 0), or the plain mean without
weights. ``reduction='mean'`` is TF.js' MEAN, sum(w*L) / sum(w) with w broadcast to the
loss (the catalogue's 'weighted_mean'). Parameters may be given in camelCase
(``labelSmoothing``) or snake_case.
"""
from sympy import Abs, log

from .. import ops
from ..functions import softplus
from .common import p, sym, y
from .registry import register, spec
from .tensors import count

TFJS_DEFAULT = "sum_by_nonzero_weights"


def _reduction(reduction):
    if reduction is None:
        return TFJS_DEFAULT
    return "weighted_mean" if reduction == "mean" else reduction


@register("tfjs", aliases=("tf_absolute_difference",))
def absolute_difference(reduction=None):
    """TF.js absoluteDifference: |y_pred - y_true| per element.

    Convention: TF.js tf.losses.absoluteDifference (per element, SUM_BY_NONZERO_WEIGHTS); the
    Keras-style batch mean of the per-sample mean is mean_absolute_error.
    """
    return spec(Abs(p - y), reduction=_reduction(reduction))


@register("tfjs", axis="axis")
def cosine_distance(axis=-1, reduction=None):
    """TF.js cosineDistance: 1 - sum(y_true * y_pred) over ``axis``, with no normalisation.

    Convention: TF.js tf.losses.cosineDistance: the inputs are expected to be unit vectors
    already (nothing is normalised); one value per position of the other axes, then
    SUM_BY_NONZERO_WEIGHTS. For the normalised form use cosine_similarity (Keras).
    """
    return spec(1 - ops.sum(y * p, axis), reduction=_reduction(reduction))


@register("tfjs")
def mean_pairwise_squared_error(reduction=None):
    """Mean pairwise squared error per sample: the mean over pairs i != j of the last axis of
    ((y_pred_i - y_pred_j) - (y_true_i - y_true_j))^2.

    Computed as 2*sum(d^2)/(n - 1) - 2*sum(d)^2/(n*(n - 1)) with d = y_pred - y_true and n the
    size of the last axis (n >= 2). Convention: TensorFlow tf.compat.v1.losses.
    mean_pairwise_squared_error (pairs within a sample, never across samples); its default
    reduction is the sum over the batch, as TensorFlow's.
    """
    d = p - y
    n = count(d)
    per = 2 * ops.sum(d ** 2) / (n - 1) - 2 * ops.sum(d) ** 2 / (n * (n - 1))
    return spec(per, reduction=_reduction(reduction) if reduction else "sum")


@register("tfjs", label_smoothing="halfopen_unit")
def sigmoid_cross_entropy(label_smoothing=0.0, reduction=None):
    """TF.js sigmoidCrossEntropy on logits, per element: max(z, 0) - z*t + log(1 + exp(-|z|)),
    t = y*(1 - s) + s/2.

    Convention: TF.js tf.losses.sigmoidCrossEntropy(multiClassLabels, logits, weights,
    labelSmoothing) (evaluated as the equal t*softplus(-z) + (1 - t)*softplus(z)).
    """
    s = sym("label_smoothing")
    t = y * (1 - s) + s / 2
    return spec(t * softplus(-p) + (1 - t) * softplus(p), params={"label_smoothing": label_smoothing},
                reduction=_reduction(reduction))


@register("tfjs", label_smoothing="halfopen_unit")
def softmax_cross_entropy(label_smoothing=0.0, reduction=None):
    """TF.js softmaxCrossEntropy on logits with one-hot labels: -sum_c t_c * log_softmax(z)_c over
    the last axis, t = y*(1 - s) + s/C.

    Convention: TF.js tf.losses.softmaxCrossEntropy(onehotLabels, logits, weights,
    labelSmoothing): one value per sample, then SUM_BY_NONZERO_WEIGHTS.
    """
    s = sym("label_smoothing")
    logq = ops.log_softmax(p)
    per = (1 - s) * -ops.sum(y * logq) - s * ops.mean(logq)
    return spec(per, params={"label_smoothing": label_smoothing}, reduction=_reduction(reduction))


@register("tfjs", epsilon="positive")
def log_loss(epsilon=1e-7, reduction=None):
    """TF.js logLoss on probabilities, per element: -y*log(p + epsilon) - (1 - y)*log(1 - p + epsilon).

    Convention: TF.js tf.losses.logLoss: epsilon = 1e-7 is added inside the logs (not a clip);
    binary_crossentropy(epsilon_mode='add') is the Keras-reduced form of the same formula.
    """
    e = sym("epsilon")
    return spec(-y * log(p + e) - (1 - y) * log(1 - p + e), params={"epsilon": epsilon},
                reduction=_reduction(reduction))
