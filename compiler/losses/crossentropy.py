"""Cross-entropy losses: binary, categorical, sparse (integer labels), focal, NLL, KL, poly-1.

Probability inputs follow Keras: categorical variants renormalise along the class axis,
then clip to [epsilon, 1 - epsilon] (epsilon = 1e-7) before the log, so p = 0 and p = 1
stay finite in float32. Logit inputs use the stable forms directly (softplus,
log_softmax), finite at logits of +-50 and beyond.
"""
import sympy
from sympy import Eq, Piecewise, exp, log

from .. import ops
from ..errors import ParameterError
from ..functions import sigmoid, softplus
from .common import KERAS_EPSILON, clip, p, sym, vector, y
from .registry import register, spec


def _log_probs(from_logits, axis, eps):
    """log p over the class axis: log_softmax of logits, or Keras' renormalise-and-clip."""
    if from_logits:
        return ops.softmax(p, axis), ops.log_softmax(p, axis)
    q = clip(p / ops.sum(p, axis), eps, 1 - eps)
    return q, log(q)


def _class_weights(name, class_weight, axis):
    if class_weight is None:
        return sympy.S.One
    if axis != -1:
        raise ParameterError(f"loss {name!r}: parameter 'class_weight' applies along the last axis, so "
                             f"'axis' must be -1 with it, got axis={axis}")
    return vector("class_weight", class_weight)


def _sparse_one_hot(ignore_index):
    """one_hot of the integer labels; an ignored label becomes -1, i.e. a zero row."""
    labels = y if ignore_index is None else Piecewise((-1, Eq(y, ignore_index)), (y, True))
    return ops.one_hot(labels, p)


def _sparse_weight(onehot, class_weight, ignore_index):
    """PyTorch's weighted mean: each sample weighs w[label] (0 when ignored)."""
    if class_weight is not None:
        return ops.sum(onehot * vector("class_weight", class_weight))
    if ignore_index is not None:
        return ops.sum(onehot)
    return None


@register("classification", aliases=("bce", "binary_cross_entropy"),
          from_logits="bool", label_smoothing="halfopen_unit", pos_weight="weight?", epsilon="clip_epsilon",
          epsilon_mode="choice:clip,add")
def binary_crossentropy(from_logits=False, label_smoothing=0.0, pos_weight=None, epsilon=1e-7, epsilon_mode="clip",
                        reduction=None):
    """Binary cross-entropy: -(w+ * y log p + (1 - y) log(1 - p)), mean over the last axis.

    Convention: Keras BinaryCrossentropy. Probabilities are clipped to [epsilon, 1 - epsilon]
    (epsilon = 1e-7, so the loss saturates at about 16.1; PyTorch BCELoss clamps log at -100
    instead). from_logits=True uses y*softplus(-z) + (1 - y)*softplus(z), PyTorch
    BCEWithLogitsLoss. Labels are smoothed as y*(1 - s) + s/2. pos_weight (PyTorch; a number,
    or one per class of the last axis) multiplies the positive term. epsilon_mode='add' is
    TF.js logLoss' guard instead of the clip: log(p + epsilon) and log(1 - p + epsilon).
    """
    ls = sym("label_smoothing")
    t = y * (1 - ls) + ls / 2
    params = {"label_smoothing": label_smoothing}
    if isinstance(pos_weight, float):
        w, params["pos_weight"] = sym("pos_weight"), pos_weight
    else:
        w = vector("pos_weight", pos_weight) if pos_weight is not None else sympy.S.One
    if from_logits:
        per = w * t * softplus(-p) + (1 - t) * softplus(p)
    else:
        eps = sym("epsilon")
        params["epsilon"] = epsilon
        if epsilon_mode == "add":
            per = -(w * t * log(p + eps) + (1 - t) * log(1 - p + eps))
        else:
            q = clip(p, eps, 1 - eps)
            per = -(w * t * log(q) + (1 - t) * log(1 - q))
    return spec(ops.mean(per), params=params)


@register("classification", aliases=("binary_focal",),
          gamma="nonnegative", alpha="closed_unit?", from_logits="bool", label_smoothing="halfopen_unit",
          epsilon="clip_epsilon")
def binary_focal_crossentropy(gamma=2.0, alpha=None, from_logits=False, label_smoothing=0.0, epsilon=1e-7,
                              reduction=None):
    """Binary focal cross-entropy: (1 - p_t)^gamma * BCE, times alpha_t when alpha is set.

    p_t = y*p + (1 - y)*(1 - p) and alpha_t = y*alpha + (1 - y)*(1 - alpha).
    Convention: Keras BinaryFocalCrossentropy; alpha=None is Keras' apply_class_balancing=False,
    a number is apply_class_balancing=True with that alpha (torchvision uses alpha=0.25).
    On probabilities BCE is clipped as in binary_crossentropy and p_t uses the unclipped
    probability, as Keras. from_logits=True uses the exact softplus form of BCE and
    1 - p_t = y*sigmoid(-z) + (1 - y)*sigmoid(z) (Keras clips sigmoid(z) at 1e-7 first; the
    two differ only where sigmoid(z) is within 1e-7 of 0 or 1).
    """
    g, ls = sym("gamma"), sym("label_smoothing")
    t = y * (1 - ls) + ls / 2
    params = {"gamma": gamma, "label_smoothing": label_smoothing}
    if from_logits:
        bce = t * softplus(-p) + (1 - t) * softplus(p)
        one_minus_pt = t * sigmoid(-p) + (1 - t) * sigmoid(p)
    else:
        eps = sym("epsilon")
        params["epsilon"] = epsilon
        q = clip(p, eps, 1 - eps)
        bce = -(t * log(q) + (1 - t) * log(1 - q))
        one_minus_pt = 1 - (t * p + (1 - t) * (1 - p))
    per = one_minus_pt ** g * bce
    if alpha is not None:
        a = sym("alpha")
        params["alpha"] = alpha
        per = (t * a + (1 - t) * (1 - a)) * per
    return spec(ops.mean(per), params=params)


@register("classification", aliases=("cce", "categorical_cross_entropy"),
          from_logits="bool", label_smoothing="halfopen_unit", axis="axis", class_weight="vector?",
          epsilon="clip_epsilon")
def categorical_crossentropy(from_logits=False, label_smoothing=0.0, axis=-1, class_weight=None, epsilon=1e-7,
                             reduction=None):
    """Categorical cross-entropy with dense (one-hot or soft) labels: -sum_c w_c y_c log p_c.

    Convention: Keras CategoricalCrossentropy: probabilities are renormalised along ``axis``
    and clipped to [epsilon, 1 - epsilon]; from_logits=True uses log_softmax. Labels are
    smoothed as y*(1 - s) + s/C, computed as (1 - s)*CE(y) + s*mean_c(-w_c log p_c).
    class_weight w_c follows PyTorch CrossEntropyLoss with probability targets: the batch
    mean is not divided by the weights. It has one entry per class; compile with
    shape=(None, C) to have a mismatch reported at compile time.
    """
    ls = sym("label_smoothing")
    w = _class_weights("categorical_crossentropy", class_weight, axis)
    params = {"label_smoothing": label_smoothing}
    if not from_logits:
        params["epsilon"] = epsilon
    _, logq = _log_probs(from_logits, axis, sym("epsilon"))
    per = (1 - ls) * -ops.sum(w * y * logq, axis) - ls * ops.mean(w * logq, axis)
    return spec(per, params=params)


@register("classification", aliases=("scce", "sparse_categorical_cross_entropy"),
          from_logits="bool", ignore_index="int?", class_weight="vector?", epsilon="clip_epsilon")
def sparse_categorical_crossentropy(from_logits=False, ignore_index=None, class_weight=None, epsilon=1e-7,
                                    reduction=None):
    """Sparse categorical cross-entropy: -log p[label] with integer labels (int64, no class axis).

    Convention: Keras SparseCategoricalCrossentropy for the probabilities (renormalise, clip at
    1e-7) and the plain batch mean. With class_weight or ignore_index the default reduction is
    PyTorch CrossEntropyLoss' weighted mean, sum_n w[y_n] l_n / sum_n w[y_n], ignored labels
    weighing 0 (Keras' ignore_class gives the same mean over the kept labels). Pass
    reduction='sum_over_batch_size' for Keras' class_weight convention (divide by the batch size).
    class_weight has one entry per class (compile with shape=(None, C) to check it).
    """
    onehot = _sparse_one_hot(ignore_index)
    _, logq = _log_probs(from_logits, -1, sym("epsilon"))
    weight = _sparse_weight(onehot, class_weight, ignore_index)
    return spec(-ops.sum(onehot * logq), params={} if from_logits else {"epsilon": epsilon}, labels="sparse",
                weight=weight, default_reduction="weighted_mean" if weight is not None else "sum_over_batch_size")


@register("classification", aliases=("negative_log_likelihood",), ignore_index="int?", class_weight="vector?")
def nll(ignore_index=None, class_weight=None, reduction=None):
    """Negative log-likelihood of log-probabilities: -y_pred[label], integer labels (int64).

    Convention: PyTorch NLLLoss (y_pred holds log-probabilities, e.g. log_softmax outputs).
    With class_weight or ignore_index the default reduction is PyTorch's weighted mean,
    sum_n w[y_n] l_n / sum_n w[y_n]; without them the batch mean. A label outside 0..C-1
    contributes 0. class_weight has one entry per class (compile with shape=(None, C) to check it).
    """
    onehot = _sparse_one_hot(ignore_index)
    weight = _sparse_weight(onehot, class_weight, ignore_index)
    return spec(-ops.sum(onehot * p), labels="sparse", weight=weight,
                default_reduction="weighted_mean" if weight is not None else "sum_over_batch_size")


@register("classification", aliases=("categorical_focal",),
          alpha="nonnegative", gamma="nonnegative", from_logits="bool", label_smoothing="halfopen_unit",
          axis="axis", epsilon="clip_epsilon")
def categorical_focal_crossentropy(alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                                   epsilon=1e-7, reduction=None):
    """Categorical focal cross-entropy: sum_c alpha*(1 - p_c)^gamma * (-y_c log p_c).

    Convention: Keras CategoricalFocalCrossentropy (alpha=0.25, gamma=2; probabilities
    renormalised and clipped at 1e-7; labels smoothed as y*(1 - s) + s/C). With
    from_logits=True, p = softmax and log p = log_softmax (Keras clips the softmax instead;
    the two differ only where p < 1e-7).
    """
    a, g, ls = sym("alpha"), sym("gamma"), sym("label_smoothing")
    q, logq = _log_probs(from_logits, axis, sym("epsilon"))
    term = a * (1 - q) ** g * -logq
    params = {"alpha": alpha, "gamma": gamma, "label_smoothing": label_smoothing}
    if not from_logits:
        params["epsilon"] = epsilon
    return spec((1 - ls) * ops.sum(y * term, axis) + ls * ops.mean(term, axis), params=params)


@register("classification", aliases=("kld", "kullback_leibler_divergence"),
          log_input="bool", log_target="bool", epsilon="clip_epsilon")
def kl_divergence(log_input=False, log_target=False, epsilon=1e-7, reduction=None):
    """Kullback-Leibler divergence: sum over the last axis of t * (log t - log q).

    Convention: Keras KLDivergence: y_true and y_pred are probabilities, both clipped to
    [epsilon, 1]. log_input=True takes y_pred as log-probabilities (PyTorch KLDivLoss input;
    a target of 0 contributes 0), log_target=True takes y_true as log-probabilities
    (PyTorch log_target=True). The default reduction equals PyTorch's reduction='batchmean'.
    """
    eps = sym("epsilon")
    logq = p if log_input else log(clip(p, eps, 1))
    if log_target:
        per = exp(y) * (y - logq)
    elif log_input:       # PyTorch: xlogy(t, t) - t * log q
        per = Piecewise((0, Eq(y, 0)), (y * log(y), True)) - y * logq
    else:
        t = clip(y, eps, 1)
        per = t * (log(t) - logq)
    return spec(ops.sum(per), params={} if log_input else {"epsilon": epsilon})


@register("classification", aliases=("poly1",),
          epsilon="number", from_logits="bool", axis="axis")
def poly1_crossentropy(epsilon=2.0, from_logits=False, axis=-1, reduction=None):
    """Poly-1 cross-entropy: CE + epsilon * sum_c y_c (1 - p_c).

    Convention: Optax poly_loss_cross_entropy (epsilon=2.0; epsilon is the poly coefficient
    here, not a clipping constant). Probabilities are renormalised and clipped at 1e-7 as in
    categorical_crossentropy; from_logits=True (Optax' input) uses softmax / log_softmax.
    """
    e = sym("epsilon")
    q, logq = _log_probs(from_logits, axis, sympy.Float(KERAS_EPSILON))
    return spec(-ops.sum(y * logq, axis) + e * ops.sum(y * (1 - q), axis), params={"epsilon": epsilon})


@register("classification", aliases=("gce", "generalized_cross_entropy"), q="open_unit")
def categorical_generalized_cross_entropy(q=0.5, reduction=None):
    """Generalized cross-entropy (noise-robust): (1 - p[label]^q) / q with integer labels (int64).

    Convention: Keras CategoricalGeneralizedCrossEntropy (Zhang & Sabuncu 2018; q in (0, 1),
    default 0.5; q -> 0 approaches cross-entropy, q = 1 is MAE). y_pred holds probabilities,
    used as given (no clipping, as Keras), so the gradient is infinite where p[label] = 0.
    """
    qs = sym("q")
    p_label = ops.sum(ops.one_hot(y, p) * p)
    return spec((1 - p_label ** qs) / qs, params={"q": q}, labels="sparse")
