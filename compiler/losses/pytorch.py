"""PyTorch's loss classes under their own names, with PyTorch's argument names, defaults
and reductions, so that ``losses.get("CrossEntropyLoss", weight=w, label_smoothing=0.1)``
means what ``torch.nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)`` means.

Unlike the Keras-convention entries (a per-sample mean over the last axis, then the batch
reduction), these keep PyTorch's granularity: elementwise losses are per element, so
``reduction='none'`` returns y_pred's shape and ``'mean'`` averages every element.
Class-weighted losses on index targets (CrossEntropyLoss, NLLLoss) use PyTorch's weighted
mean sum_n l_n / sum_n w[y_n], ignored targets weighing 0. The deprecated ``size_average``
and ``reduce`` are honoured as PyTorch does. Formulas: torch/nn/modules/loss.py and
shared/reference/losses.md.
"""
import sympy
from sympy import Abs, Eq, Max, Min, Piecewise, exp, log, pi

from .. import ops
from ..errors import ParameterError
from ..functions import softplus
from . import multi_input
from .common import p, p as y_pred, sym, vector, y
from .registry import register, spec
from .tensors import count, cumsum, expand_dims, transpose

REDUCTION = "choice:none,mean,sum"
LEGACY = {"size_average": "bool?", "reduce": "bool?"}
_TO_LOSS = {"none": "none", "mean": "mean", "sum": "sum"}
_LOG_FLOOR = sympy.exp(-100)        # BCELoss clamps each log term at -100


def _reduction(reduction, size_average=None, reduce=None, mean="mean"):
    """PyTorch's legacy rule: size_average / reduce, when given, override ``reduction``."""
    if size_average is not None or reduce is not None:
        if reduce is False:
            reduction = "none"
        else:
            reduction = "sum" if size_average is False else "mean"
    return mean if reduction == "mean" else _TO_LOSS.get(reduction, reduction)


def _weights(weight):
    return sympy.S.One if weight is None else vector("weight", weight)


def _index_targets(ignore_index):
    """one_hot(target) with an ignored target as a zero row (so it contributes 0)."""
    labels = Piecewise((-1, Eq(y, ignore_index)), (y, True))
    return ops.one_hot(labels, p)


@register("pytorch", name="CrossEntropyLoss", aliases=("cross_entropy",), weight="vector?", ignore_index="int",
          reduction=REDUCTION, label_smoothing="halfopen_unit", **LEGACY)
def cross_entropy_loss(weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                       label_smoothing=0.0):
    """PyTorch CrossEntropyLoss on logits with class-index targets (int64, no class axis).

    l_n = (1 - s) * w[y_n] * (-log_softmax(x)[y_n]) + s * mean_c(w_c * -log_softmax(x)_c), 0 where
    y_n == ignore_index; 'mean' is sum_n l_n / sum_n w[y_n] over the kept targets.
    Convention: PyTorch (index targets; for probability targets use categorical_crossentropy
    with from_logits=True). The weights are a per-class vector.
    """
    onehot = _index_targets(ignore_index)
    w, logq = _weights(weight), ops.log_softmax(p)
    s = sym("label_smoothing")
    kept = ops.sum(onehot)
    per = (1 - s) * -ops.sum(onehot * w * logq) + s * kept * ops.mean(w * -logq)
    return spec(per, params={"label_smoothing": label_smoothing}, labels="sparse",
                normalizer=ops.sum(onehot * w),
                reduction=_reduction(reduction, size_average, reduce, mean="weighted_mean"))


@register("pytorch", name="NLLLoss", weight="vector?", ignore_index="int", reduction=REDUCTION, **LEGACY)
def nll_loss(weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """PyTorch NLLLoss: l_n = -w[y_n] * x[n, y_n] on log-probabilities x, class-index targets (int64).

    Convention: PyTorch; 'mean' is the weighted mean sum_n l_n / sum_n w[y_n], targets equal to
    ignore_index (default -100) weighing 0.
    """
    onehot = _index_targets(ignore_index)
    w = _weights(weight)
    return spec(-ops.sum(onehot * w * p), labels="sparse", normalizer=ops.sum(onehot * w),
                reduction=_reduction(reduction, size_average, reduce, mean="weighted_mean"))


@register("pytorch", name="BCELoss", weight="weight?", reduction=REDUCTION, **LEGACY)
def bce_loss(weight=None, size_average=None, reduce=None, reduction="mean"):
    """PyTorch BCELoss on probabilities, per element: -w*(y*log(x) + (1 - y)*log(1 - x)).

    Convention: PyTorch: each log is clamped at -100 (log(max(x, e^-100))), weight is a
    per-element rescale (a number or one per entry of the last axis) and 'mean' is the
    plain mean of w*l.
    """
    w = _weights(weight)
    per = -w * (y * log(Max(p, _LOG_FLOOR)) + (1 - y) * log(Max(1 - p, _LOG_FLOOR)))
    return spec(per, reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="BCEWithLogitsLoss", aliases=("binary_cross_entropy_with_logits",), weight="weight?",
          reduction=REDUCTION, pos_weight="weight?", **LEGACY)
def bce_with_logits_loss(weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
    """PyTorch BCEWithLogitsLoss, per element: w*(pos_weight*y*softplus(-x) + (1 - y)*softplus(x)).

    Convention: PyTorch (the stable log-sigmoid form); weight and pos_weight are a number or
    one per entry of the last axis; 'mean' is the plain mean.
    """
    w = _weights(weight)
    pw = sympy.S.One if pos_weight is None else vector("pos_weight", pos_weight)
    per = w * (pw * y * softplus(-p) + (1 - y) * softplus(p))
    return spec(per, reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="KLDivLoss", aliases=("kl_div",), reduction="choice:none,mean,sum,batchmean",
          log_target="bool", **LEGACY)
def kl_div_loss(size_average=None, reduce=None, reduction="mean", log_target=False):
    """PyTorch KLDivLoss: y_pred holds log-probabilities x; per element t*(log t - x) (0 where t = 0),
    or exp(t)*(t - x) with log_target=True.

    Convention: PyTorch: 'mean' averages every element; 'batchmean' (the true KL divergence)
    sums over the last axis and averages over the batch, for (N, C) inputs.
    """
    if log_target:
        per = exp(y) * (y - p)
    else:
        per = Piecewise((0, Eq(y, 0)), (y * log(y), True)) - y * p
    reduction = _reduction(reduction, size_average, reduce)
    if reduction == "batchmean":
        per, reduction = ops.sum(per), "mean"
    return spec(per, reduction=reduction)


@register("pytorch", name="PoissonNLLLoss", aliases=("poisson_nll",), log_input="bool", full="bool",
          eps="positive", reduction=REDUCTION, **LEGACY)
def poisson_nll_loss(log_input=True, full=False, size_average=None, eps=1e-8, reduce=None, reduction="mean"):
    """PyTorch PoissonNLLLoss, per element: exp(x) - y*x (log_input=True) or x - y*log(x + eps),
    plus y*log(y) - y + log(2*pi*y)/2 where y > 1 when full=True.

    Convention: PyTorch (eps = 1e-8; the catalogue's poisson follows Keras instead).
    """
    e = sym("eps")
    per = exp(p) - y * p if log_input else p - y * log(p + e)
    if full:
        per = per + Piecewise((y * log(y) - y + log(2 * pi * y) / 2, y > 1), (0, True))
    return spec(per, params={} if log_input else {"eps": eps}, reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="GaussianNLLLoss", full="bool", eps="positive", reduction=REDUCTION)
def gaussian_nll_loss(full=False, eps=1e-6, reduction="mean"):
    """PyTorch GaussianNLLLoss, per element: (log(max(var, eps)) + (x - y)^2 / max(var, eps)) / 2
    [+ log(2*pi)/2 when full].

    Inputs: y_pred (the mean x), y_true and ``var`` shaped like y_pred. Convention: PyTorch;
    PyTorch clamps var without a gradient through the clamp, here the gradient is 0 where var < eps.
    """
    e, v = sym("eps"), sympy.Symbol("var", real=True)
    vc = Max(v, e)
    per = (log(vc) + (p - y) ** 2 / vc) / 2
    if full:
        per = per + log(2 * pi) / 2
    return spec(per, params={"eps": eps}, inputs=("var",), reduction=_reduction(reduction))


@register("pytorch", name="SmoothL1Loss", reduction=REDUCTION, beta="nonnegative", **LEGACY)
def smooth_l1_loss(size_average=None, reduce=None, reduction="mean", beta=1.0):
    """PyTorch SmoothL1Loss, per element: e^2/(2*beta) where |e| < beta, else |e| - beta/2 (beta = 0: |e|).

    Convention: PyTorch (e = x - y).
    """
    e = p - y
    if beta == 0:
        return spec(Abs(e), reduction=_reduction(reduction, size_average, reduce))
    b = sym("beta")
    per = Piecewise((e ** 2 / (2 * b), Abs(e) < b), (Abs(e) - b / 2, True))
    return spec(per, params={"beta": beta}, reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="HuberLoss", reduction=REDUCTION, delta="positive")
def huber_loss(reduction="mean", delta=1.0):
    """PyTorch HuberLoss, per element: e^2/2 where |e| < delta, else delta*(|e| - delta/2).

    Convention: PyTorch (both branches meet at |e| = delta).
    """
    d, e = sym("delta"), p - y
    per = Piecewise((e ** 2 / 2, Abs(e) < d), (d * (Abs(e) - d / 2), True))
    return spec(per, params={"delta": delta}, reduction=_reduction(reduction))


@register("pytorch", name="L1Loss", reduction=REDUCTION, **LEGACY)
def l1_loss(size_average=None, reduce=None, reduction="mean"):
    """PyTorch L1Loss, per element: |x - y|.

    Convention: PyTorch.
    """
    return spec(Abs(p - y), reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="MSELoss", reduction=REDUCTION, **LEGACY)
def mse_loss(size_average=None, reduce=None, reduction="mean"):
    """PyTorch MSELoss, per element: (x - y)^2.

    Convention: PyTorch.
    """
    return spec((p - y) ** 2, reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="MarginRankingLoss", margin="number", reduction=REDUCTION, **LEGACY)
def margin_ranking_loss(margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """PyTorch MarginRankingLoss, per element: max(0, -y*(x1 - x2) + margin).

    Inputs: y_pred (x1), ``input2`` (x2) and y_true (y in {1, -1}). Convention: PyTorch.
    """
    out = multi_input.margin_ranking(margin=margin)
    out["reduction"] = _reduction(reduction, size_average, reduce)
    return out


@register("pytorch", name="HingeEmbeddingLoss", margin="number", reduction=REDUCTION, **LEGACY)
def hinge_embedding_loss(margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """PyTorch HingeEmbeddingLoss, per element: x where y = 1, max(0, margin - x) where y = -1.

    Convention: PyTorch.
    """
    out = multi_input.hinge_embedding(margin=margin)
    out["reduction"] = _reduction(reduction, size_average, reduce)
    return out


@register("pytorch", name="MultiMarginLoss", aliases=("multi_margin",), p="positive", margin="number",
          weight="vector?", reduction=REDUCTION, **LEGACY)
def multi_margin_loss(p=1, margin=1.0, weight=None, size_average=None, reduce=None, reduction="mean"):
    """PyTorch MultiMarginLoss with class-index targets (int64):
    l_n = sum_{i != y} w[y] * max(0, margin - x[y] + x[i])^p / C.

    Convention: PyTorch (p is 1 or 2; the weight sits outside the power; 'mean' is the plain
    batch mean, not divided by the weights).
    """
    if p not in (1, 2):
        raise ParameterError(f"loss 'MultiMarginLoss': parameter 'p' must be 1 or 2 (as PyTorch), got {p!r}")
    x, onehot, m = y_pred, ops.one_hot(y, y_pred), sym("margin")
    x_y = ops.sum(onehot * x)
    w_y = ops.sum(onehot * _weights(weight)) if weight is not None else sympy.S.One
    per = w_y * ops.mean((1 - onehot) * Max(0, m - x_y + x) ** int(p))
    return spec(per, params={"margin": margin}, labels="sparse", reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="MultiLabelSoftMarginLoss", aliases=("multilabel_soft_margin",), weight="weight?",
          reduction=REDUCTION, **LEGACY)
def multilabel_soft_margin_loss(weight=None, size_average=None, reduce=None, reduction="mean"):
    """PyTorch MultiLabelSoftMarginLoss: l_n = mean_c w_c*(y*softplus(-x) + (1 - y)*softplus(x)).

    Inputs: y_pred (scores x) and y_true (0/1 per class), shaped (N, C). Convention: PyTorch
    (one value per sample; 'mean' over the batch).
    """
    w = _weights(weight)
    return spec(ops.mean(w * (y * softplus(-p) + (1 - y) * softplus(p))),
                reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="MultiLabelMarginLoss", aliases=("multilabel_margin",), reduction=REDUCTION, **LEGACY)
def multilabel_margin_loss(size_average=None, reduce=None, reduction="mean"):
    """PyTorch MultiLabelMarginLoss: l_n = sum over targets j and non-targets i of
    max(0, 1 - (x[j] - x[i])) / C.

    Inputs: y_pred (scores x, (N, C)) and y_true ((N, C), fed as floats): the target class
    indices, ended by the first -1 (PyTorch's format; entries after it are ignored).
    Convention: PyTorch.
    """
    # integer arithmetic, not Piecewise (a Piecewise inside a condition folds into an ITE)
    ended = Max(Min(-y, 1), 0)                                          # 1 where y = -1
    valid = Max(1 - cumsum(ended), 0)                                   # 1 before the first -1
    listed = ops.sum(ops.one_hot(y, y_pred) * expand_dims(valid, -1), axis=1)   # (N, 1, C)
    target = Min(listed, 1)
    x_row = expand_dims(y_pred, 1)                                      # (N, 1, C): x[i]
    x_col = transpose(x_row, (0, 2, 1))                                 # (N, C, 1): x[j]
    # a target listed twice counts twice as j (PyTorch loops over the list), once as "not i"
    pairs = transpose(listed, (0, 2, 1)) * (1 - target) * Max(0, 1 - (x_col - x_row))
    per = ops.sum(pairs, axis=(1, 2)) / count(y_pred, -1)             # (N, 1, 1)
    return spec(per, reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="SoftMarginLoss", reduction=REDUCTION, **LEGACY)
def soft_margin_loss(size_average=None, reduce=None, reduction="mean"):
    """PyTorch SoftMarginLoss, per element: log(1 + exp(-y*x)) = softplus(-y*x), y in {1, -1}.

    Convention: PyTorch.
    """
    return spec(softplus(-y * p), reduction=_reduction(reduction, size_average, reduce))


@register("pytorch", name="CosineEmbeddingLoss", margin="number", reduction=REDUCTION, **LEGACY)
def cosine_embedding_loss(margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """PyTorch CosineEmbeddingLoss: 1 - cos(x1, x2) where y = 1, max(0, cos - margin) where y = -1.

    Inputs: y_pred (x1), ``input2`` (x2), shaped (N, D), and y_true (int64 labels in {1, -1},
    shaped (N,)). Convention: PyTorch (cos with its 1e-12 guards, as cosine_embedding).
    """
    out = multi_input.cosine_embedding(margin=margin)
    out["reduction"] = _reduction(reduction, size_average, reduce)
    return out


@register("pytorch", name="TripletMarginLoss", margin="positive", p="positive", eps="nonnegative", swap="bool",
          reduction=REDUCTION, **LEGACY)
def triplet_margin_loss(margin=1.0, p=2.0, eps=1e-6, swap=False, size_average=None, reduce=None, reduction="mean"):
    """PyTorch TripletMarginLoss: max(d(a, pos) - d(a, neg) + margin, 0), d(u, v) = ||u - v + eps||_p.

    Inputs: y_pred (the anchor), ``positive`` and ``negative``, shaped (N, D). Convention: PyTorch.
    """
    out = multi_input.triplet_margin(margin=margin, p=p, eps=eps, swap=swap)
    out["reduction"] = _reduction(reduction, size_average, reduce)
    return out

