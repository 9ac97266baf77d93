"""Circle loss (Sun et al. 2020) over the pairs of a batch, as Keras 3's ``Circle``.

Each sample's loss compares its embedding with every other sample of the batch: pairs
with the same label are positives, the rest negatives. With d = max(1 - x_i . x_j, 0):

    p_i = logsumexp_{j positive} (-gamma * max(margin + d, 0) * (margin - d))
    n_i = logsumexp_{j negative} ( gamma * max(1 + margin - d, 0) * (1 - margin - d))
    L_i = softplus(p_i + n_i)

A sample without positives has no loss and does not count in the mean (Keras masks it).
"""
import sympy
from sympy import Eq, Max, Piecewise

from .. import ops
from ..functions import softplus
from .common import p, sym, y
from .registry import register, spec
from .tensors import expand_dims, eye_like, transpose

NEG = -1e30     # -inf for the masked logsumexp entries, finite in float32


@register("similarity", gamma="positive", margin="nonnegative", remove_diagonal="bool")
def circle(gamma=80.0, margin=0.4, remove_diagonal=True, reduction=None):
    """Circle loss over the batch's pairs; y_pred holds L2-normalised embeddings (N, D), y_true
    integer labels (N,).

    Convention: Keras Circle(gamma=80, margin=0.4, remove_diagonal=True): the pairwise cosine
    distance is max(1 - x_i . x_j, 0) (embeddings are not normalised here: put a
    normalisation layer before), each sample against the whole batch; samples without a
    positive are left out of the mean ('sum_over_batch_size' divides by the samples that have
    one, 'weighted_mean' by their weights), as Keras' mask. Keras' ref_labels/ref_embeddings
    are not offered.
    """
    g, m = sym("gamma"), sym("margin")
    d = Max(1 - ops.matmul(p, transpose(p)), 0)                                   # (N, N)
    same = Eq(expand_dims(y, -1), expand_dims(y, 0))
    diagonal = eye_like(p) > 0.5

    def where_pos(a, b):    # first match wins: the diagonal (when removed) is no positive
        return Piecewise((b, diagonal), (a, same), (b, True)) if remove_diagonal else Piecewise((a, same), (b, True))

    pos = where_pos(1, 0)
    pos_term = g * (d ** 2 - m ** 2)         # -gamma * max(m + d, 0) * (m - d), with m, d >= 0
    neg_term = g * Max(1 + m - d, 0) * (1 - m - d)
    # masked entries are the constant NEG itself, never x + NEG (which would round x away)
    p_loss = ops.logsumexp(where_pos(pos_term, NEG))
    n_loss = ops.logsumexp(Piecewise((NEG, same), (neg_term, True)))
    has_positive = sympy.Min(ops.sum(pos), 1)       # the positives are counted: 1 if any (no nested Piecewise)
    return spec(softplus(p_loss + n_loss), params={"gamma": gamma, "margin": margin}, labels="sparse",
                normalizer=has_positive)
