"""CTC (connectionist temporal classification) as a declared forward recursion.

The loss is -log p(labels | logits), summed over every alignment. It is declared as the
alpha recursion in log space, unrolled over the fixed time dimension T:

    alpha_0[s] = e_0[s] for s in {0, 1}, -inf otherwise
    alpha_t[s] = logsumexp(alpha_{t-1}[s], alpha_{t-1}[s-1], alpha_{t-1}[s-2] if allowed) + e_t[s]
    loss       = -logsumexp(alpha_{T-1}[2l], alpha_{T-1}[2l-1])

over the extended label sequence (blank, l_1, blank, l_2, ..., blank) of length S = 2L + 1,
with e_t[s] = log_softmax(y_pred)[t, l'_s] and the skip allowed where l'_s is no blank and
differs from l'_{s-2}. Each step is built from IR nodes (slice, pad, logsumexp, an
elementwise sum), so its gradient is derived by reverse mode through the recursion like
every other loss; nothing is written by hand. -inf is represented by -1e30 (finite in
float32, and exp(-1e30 - m) = 0), so no NaN appears on impossible paths.

Conventions: y_pred is (N, T, C) logits (Keras CTC) or log-probabilities (PyTorch CTCLoss:
log_softmax leaves them unchanged); y_true is (N, L) int64 labels padded at the end with
``padding`` (default: the blank index, Keras' mask_index=0); a sample's label length is its
number of non-padding entries, its input length is T (every time step counts).
"""
import numpy as np
import sympy

from .. import ir
from ..build import build_ir
from ..errors import ParameterError, ShapeError
from ..loss import Y_PRED, Y_TRUE, Loss
from .registry import register, spec

NEG = -1e30


class CTCDisplay(sympy.Function):
    """ctc(y_true, y_pred): how the loss prints; the graph comes from CTCLoss.per_sample."""
    is_real = True

    def _sympystr(self, printer):
        return f"ctc({printer._print(self.args[0])}, {printer._print(self.args[1])})"


class CTCLoss(Loss):
    example_shape = (None, 12, 6)       # y_pred of a small example: T = 12 steps, C = 6 classes

    def __init__(self, expr, blank=0, padding=None, max_label_length=None, length_normalized=False, **kwargs):
        super().__init__(expr, **kwargs)
        self.blank = int(blank)
        self.padding = self.blank if padding is None else int(padding)
        self.max_label_length = max_label_length
        self.length_normalized = bool(length_normalized)

    # a recursion, not one sympy expression: there is no closed-form elementwise derivative to print
    def gradient_expression(self, wrt="y_pred"):
        if wrt != "y_pred":
            raise ParameterError(f"loss {self.name!r}: cannot differentiate with respect to {wrt!r}; accepted: y_pred")
        return sympy.Function("reverse_mode_through_the_alpha_recursion")(Y_TRUE, Y_PRED)

    def _input_shape(self, name, pred_shape):
        if name == "y_true":
            if len(pred_shape) != 3:
                raise ShapeError(f"loss {self.name!r}: y_pred must be (N, T, C) logits, got shape {tuple(pred_shape)}")
            return (pred_shape[0], self.max_label_length or pred_shape[1])
        return tuple(pred_shape)

    def build(self, y_pred, y_true=None, extra=None, sample_weight=None):
        if y_true is None:
            raise ParameterError(f"loss {self.name!r} needs y_true")
        per = self.per_sample(y_pred, y_true)
        w = None
        if sample_weight is not None:
            w = sample_weight
            if w.rank < per.rank:
                w = ir.apply("unsqueeze", [w], name=f"{self.name}/sample_weight", axes=tuple(range(w.rank, per.rank)))
        return self._reduce(per, w), per

    def per_sample(self, y_pred, y_true):
        """-log p(labels | y_pred) per sample, shape (N, 1) (divided by the label length when
        length_normalized, PyTorch's 'mean')."""
        name = self.name
        if y_pred.rank != 3 or not all(isinstance(d, int) for d in y_pred.shape[1:]):
            raise ShapeError(f"loss {name!r}: y_pred must be (N, T, C) with static T and C, got {y_pred.shape}")
        _, T, C = y_pred.shape
        L = y_true.shape[1]
        if not isinstance(L, int) or L < 1:
            raise ShapeError(f"loss {name!r}: y_true must be (N, L) labels with a static L, got {y_true.shape}")
        if not 0 <= self.blank < C:
            raise ParameterError(f"loss {name!r}: blank={self.blank} is not a class of y_pred's {C} classes")
        S = 2 * L + 1
        odd = np.zeros((L, S))
        odd[np.arange(L), 2 * np.arange(L) + 1] = 1.0            # label k sits at s = 2k + 1
        even = (np.arange(S) % 2 == 0).astype(np.float64)
        P = ir.const_value(odd, name=f"{name}/interleave")
        labels = ir.apply("cast_float", [y_true], name=f"{name}/labels") if y_true.dtype != "float" else y_true

        lp = build_ir(_log_softmax(y_pred), name=f"{name}/log_probs")
        # extended labels as one-hot columns: (N, C, S)
        onehot = ir.apply("one_hot", [labels, y_pred], name=f"{name}/label_onehot")            # (N, L, C)
        onehot_t = ir.apply("transpose", [onehot], name=f"{name}/label_onehot_t", perm=(0, 2, 1))   # (N, C, L)
        blank_rows = np.zeros((C, S))
        blank_rows[self.blank] = even
        ext = ir.apply("matmul", [onehot_t, P], name=f"{name}/extended")                     # (N, C, S)
        ext = ir.elementwise(ext.sym + ir.const_value(blank_rows, name=f"{name}/blanks").sym, name=f"{name}/extended")
        # emissions e[n, t, s] = sum_c lp[n, t, c] * ext[n, c, s]
        lp4 = ir.apply("unsqueeze", [lp], name=f"{name}/lp4", axes=(3,))                         # (N, T, C, 1)
        ext4 = ir.apply("unsqueeze", [ext], name=f"{name}/ext4", axes=(1,))                      # (N, 1, C, S)
        prod = ir.elementwise(lp4.sym * ext4.sym, name=f"{name}/select")
        em = ir.apply("reduce_sum", [prod], name=f"{name}/emissions", axes=(2,))                 # (N, T, 1, S)
        em = ir.apply("squeeze", [em], name=f"{name}/emissions", axes=(2,))                      # (N, T, S)

        # skip s-2 -> s allowed where l'_s is a label that differs from the previous label
        prev = ir.apply("pad_axis", [ir.apply("slice", [labels], axis=1, start=0, end=L - 1)], axis=1, before=1,
                        after=0) if L > 1 else None
        if prev is not None:
            same = ir.elementwise(sympy.Piecewise((NEG, sympy.Eq(labels.sym, prev.sym)), (0, True)),
                                  name=f"{name}/repeat")
            skip = ir.apply("matmul", [same, P], name=f"{name}/skip")                            # (N, S), 0 at even s
        skip_const = np.where(even > 0, NEG, 0.0)
        skip_const[:3] = NEG                                     # s < 2 cannot skip; s = 2 is a blank anyway
        skip_mask = ir.const_value(skip_const, name=f"{name}/skip_const")
        skip_sym = skip_mask.sym + (skip.sym if prev is not None else 0)
        shift1 = ir.const_value(np.r_[NEG, np.zeros(S - 1)], name=f"{name}/shift1")

        def step_in(t):
            e = ir.apply("slice", [em], name=f"{name}/e{t}", axis=1, start=t, end=t + 1)
            return ir.apply("squeeze", [e], name=f"{name}/e{t}", axes=(1,))                        # (N, S)

        init = np.full(S, NEG)
        init[:2] = 0.0
        alpha = ir.elementwise(step_in(0).sym + ir.const_value(init, name=f"{name}/init").sym, name=f"{name}/alpha0")
        for t in range(1, T):
            stay = alpha
            a1 = ir.apply("pad_axis", [ir.apply("slice", [alpha], axis=1, start=0, end=S - 1)], axis=1, before=1,
                          after=0)
            a1 = ir.elementwise(a1.sym + shift1.sym, name=f"{name}/a1_{t}")
            if S > 2:
                a2 = ir.apply("pad_axis", [ir.apply("slice", [alpha], axis=1, start=0, end=S - 2)], axis=1,
                              before=2, after=0)
                a2 = ir.elementwise(a2.sym + skip_sym, name=f"{name}/a2_{t}")
                parts = [stay, a1, a2]
            else:
                parts = [stay, a1]
            stacked = ir.apply("concat", [ir.apply("unsqueeze", [p], axes=(1,)) for p in parts], axis=1)
            total = ir.apply("logsumexp", [stacked], name=f"{name}/lse{t}", axes=(1,))           # (N, 1, S)
            total = ir.apply("squeeze", [total], axes=(1,))
            alpha = ir.elementwise(total.sym + step_in(t).sym, name=f"{name}/alpha{t}")

        # end in the last label (s = 2l - 1) or the blank after it (s = 2l)
        present = ir.elementwise(sympy.Piecewise((0, sympy.Eq(labels.sym, self.padding)), (1, True)),
                                 name=f"{name}/present")
        length = ir.apply("reduce_sum", [present], name=f"{name}/label_length", axes=(1,))         # (N, 1)
        idx = ir.const_value(np.arange(S, dtype=np.float64), name=f"{name}/positions")
        final = ir.elementwise(sympy.Piecewise((0, sympy.Eq(idx.sym, 2 * length.sym)),
                                               (0, sympy.Eq(idx.sym, 2 * length.sym - 1)), (NEG, True)),
                               name=f"{name}/final_mask")
        end = ir.elementwise(alpha.sym + final.sym, name=f"{name}/end")
        logp = ir.apply("logsumexp", [end], name=f"{name}/log_likelihood", axes=(1,))              # (N, 1)
        if self.length_normalized:      # PyTorch 'mean': each loss over its target length (at least 1)
            return ir.elementwise(-logp.sym / sympy.Max(length.sym, 1), name=f"{name}/per_sample")
        return ir.elementwise(-logp.sym, name=f"{name}/per_sample")


def _log_softmax(y_pred):
    from .. import ops
    return ops.log_softmax(y_pred.sym)


@register("sequence", aliases=("connectionist_temporal_classification",), blank="int", padding="int?",
          max_label_length="int?")
def ctc(blank=0, padding=None, max_label_length=None, reduction=None):
    """CTC loss: -log p(labels | y_pred) summed over every alignment, by the alpha recursion.

    Inputs: y_pred (N, T, C) logits (log-probabilities work too), y_true (N, L) int64 labels
    padded at the end with ``padding`` (default: the blank index). L defaults to T
    (max_label_length sets it). Convention: Keras CTC (blank = mask_index = 0, label length =
    number of non-padding labels, input length = T, batch mean of the per-sample loss);
    CTCLoss is PyTorch's form. The gradient is derived by reverse mode through the declared
    recursion (compiler/losses/ctc.py).
    """
    return spec(CTCDisplay(Y_TRUE, Y_PRED), labels="sparse", loss_class=CTCLoss,
                loss_kwargs={"blank": blank, "padding": padding, "max_label_length": max_label_length})


@register("pytorch", name="CTCLoss", blank="int", reduction="choice:none,mean,sum", zero_infinity="bool",
          max_label_length="int?")
def ctc_loss(blank=0, reduction="mean", zero_infinity=False, max_label_length=None):
    """PyTorch CTCLoss on (N, T, C) log-probabilities (batch first) with targets padded by blank.

    Convention: PyTorch: 'mean' divides each sample's loss by its target length, then takes
    the batch mean; 'none' gives one value per sample. Input lengths are T for every sample
    and target lengths are the number of non-blank targets (pad with the blank index).
    zero_infinity is not supported (an impossible alignment gives a loss near 1e30).
    max_label_length (not PyTorch's) sets the targets' padded length S (default T).
    """
    if zero_infinity:
        raise ParameterError("loss 'CTCLoss': zero_infinity=True is not supported; impossible alignments give a "
                             "loss near 1e30 (make T >= the label length plus its repeats)")
    return spec(CTCDisplay(Y_TRUE, Y_PRED), labels="sparse", loss_class=CTCLoss,
                loss_kwargs={"blank": blank, "length_normalized": reduction == "mean",
                             "max_label_length": max_label_length},
                reduction="mean" if reduction == "mean" else reduction)
