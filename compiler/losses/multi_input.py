"""Losses over several predictions (PyTorch's pairwise and triplet losses). y_pred is the
first input; the others are extra named inputs shaped like it, each with a gradient output."""
import sympy
from sympy import Eq, Max, Min, Ne, Piecewise, sqrt

from .. import ops
from .common import p as y_pred, sym, y
from .registry import register, spec
from .tensors import expand_dims

COSINE_EPS = sympy.Float(1e-12)     # PyTorch CosineEmbeddingLoss' constant


def _input(name):
    return sympy.Symbol(name, real=True)


@register("multi_input", margin="number")
def cosine_embedding(margin=0.0, reduction=None):
    """Cosine embedding loss: 1 - cos(y_pred, input2) where y = 1, max(0, cos - margin) where y = -1.

    Inputs: y_pred (input1) and input2, shaped (N, D); y_true holds one int64 label in {1, -1}
    per sample, shaped (N,). cos = sum(x1*x2) / sqrt((sum(x1^2) + 1e-12) * (sum(x2^2) + 1e-12)),
    finite for zero vectors. Convention: PyTorch CosineEmbeddingLoss (a label other than +-1
    contributes 0), then the batch mean.
    """
    x2, m = _input("input2"), sym("margin")
    cos = ops.sum(y_pred * x2) / sqrt((ops.sum(y_pred ** 2) + COSINE_EPS) * (ops.sum(x2 ** 2) + COSINE_EPS))
    t = expand_dims(y, -1)   # (N,) labels against (N, 1) per-sample values
    per = Piecewise((1 - cos, Eq(t, 1)), (Max(0, cos - m), Eq(t, -1)), (0, True))
    return spec(per, params={"margin": margin}, inputs=("input2",), labels="sparse")


@register("multi_input", margin="number")
def margin_ranking(margin=0.0, reduction=None):
    """Margin ranking loss: max(0, -y*(y_pred - input2) + margin), per element.

    Inputs: y_pred (input1), input2 and y_true (the label y in {1, -1}), all the same shape,
    typically (N,). Convention: PyTorch MarginRankingLoss; the loss is per element (not
    averaged over a last axis), then the mean.
    """
    x2, m = _input("input2"), sym("margin")
    return spec(Max(0, -y * (y_pred - x2) + m), params={"margin": margin}, inputs=("input2",))


@register("multi_input", margin="positive", p="positive", eps="nonnegative", swap="bool")
def triplet_margin(margin=1.0, p=2, eps=1e-6, swap=False, reduction=None):  # p: PyTorch's name
    """Triplet margin loss: max(d(a, pos) - d(a, neg) + margin, 0), d(a, b) = ||a - b + eps||_p.

    Inputs: y_pred (the anchor), ``positive`` and ``negative``, shaped (N, D); no y_true.
    Convention: PyTorch TripletMarginLoss(margin, p, eps, swap): eps is added to the
    difference vector (Optax puts it inside the root). swap=True uses min(d(a, neg), d(pos, neg)).
    """
    anchor, pos, neg = y_pred, _input("positive"), _input("negative")
    e, m = sym("eps"), sym("margin")
    degree = int(p) if float(p).is_integer() else p

    def dist(a, b):
        return ops.norm(a - b + e, ord=degree)

    d_neg = dist(anchor, neg)
    if swap:
        d_neg = Min(d_neg, dist(pos, neg))
    per = Max(dist(anchor, pos) - d_neg + m, 0)
    return spec(per, params={"margin": margin, "eps": eps}, inputs=("positive", "negative"))


@register("multi_input", margin="number")
def hinge_embedding(margin=1.0, reduction=None):
    """Hinge embedding loss: y_pred where y = 1, max(0, margin - y_pred) where y = -1, per element.

    Inputs: y_pred (x, e.g. distances) and y_true (labels in {1, -1}) of the same shape.
    Convention: PyTorch HingeEmbeddingLoss: where(y != 1, max(0, margin - x), 0) +
    where(y != -1, x, 0), then the mean.
    """
    m = sym("margin")
    per = Piecewise((Max(0, m - y_pred), Ne(y, 1)), (0, True)) + Piecewise((y_pred, Ne(y, -1)), (0, True))
    return spec(per, params={"margin": margin})
