"""PyTorch class names: each equals a NumPy reference written here from PyTorch's documented
formula (torch.nn docs), for every reduction, in value and (for 'mean') in gradient against
float64 central finite differences of the reference."""
import numpy as np
import pytest

from symgrad.compiler import ParameterError, UnknownNameError, losses
from oracle import central_fd, session

N, C = 4, 5
W = np.array([1.0, 2.0, 0.5, 1.5, 3.0])


def log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def softplus(x):
    return np.logaddexp(0, x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# Each reference returns (per-element or per-sample loss as 'none' gives it, denominator of 'mean').
def ref_ce(t, x, weight=None, ignore_index=-100, label_smoothing=0.0):
    w = np.ones(C) if weight is None else np.asarray(weight)
    keep = t != ignore_index
    safe = np.where(keep, t, 0)
    lp = log_softmax(x)
    nll = -w[safe] * lp[np.arange(len(t)), safe]
    smooth = -(w * lp).sum(-1) / C
    loss = np.where(keep, (1 - label_smoothing) * nll + label_smoothing * smooth, 0.0)
    return loss, (w[safe] * keep).sum()


def ref_nll(t, x, weight=None, ignore_index=-100):
    w = np.ones(C) if weight is None else np.asarray(weight)
    keep = t != ignore_index
    safe = np.where(keep, t, 0)
    loss = np.where(keep, -w[safe] * x[np.arange(len(t)), safe], 0.0)
    return loss, (w[safe] * keep).sum()


def ref_bce(y, x, weight=1.0):
    return -weight * (y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log(1 - x), -100)), None


def ref_bce_logits(y, x, weight=1.0, pos_weight=1.0):
    return -weight * (pos_weight * y * np.log(sigmoid(x)) + (1 - y) * np.log(1 - sigmoid(x))), None


def ref_kl(t, x, log_target=False):
    if log_target:
        return np.exp(t) * (t - x), None
    return np.where(t > 0, t * (np.log(np.where(t > 0, t, 1)) - x), 0.0), None


def ref_poisson(y, x, log_input=True, full=False, eps=1e-8):
    loss = np.exp(x) - y * x if log_input else x - y * np.log(x + eps)
    if full:
        ys = np.where(y > 1, y, 1.0)
        loss = loss + np.where(y > 1, ys * np.log(ys) - ys + 0.5 * np.log(2 * np.pi * ys), 0.0)
    return loss, None


def ref_gaussian(y, x, var, full=False, eps=1e-6):
    v = np.maximum(var, eps)
    return 0.5 * (np.log(v) + (x - y) ** 2 / v) + (0.5 * np.log(2 * np.pi) if full else 0.0), None


def ref_smooth_l1(y, x, beta=1.0):
    e = np.abs(x - y)
    return (np.where(e < beta, 0.5 * e ** 2 / beta, e - 0.5 * beta) if beta > 0 else e), None


def ref_huber(y, x, delta=1.0):
    e = np.abs(x - y)
    return np.where(e < delta, 0.5 * e ** 2, delta * (e - 0.5 * delta)), None


def ref_multi_margin(t, x, p=1, margin=1.0, weight=None):
    out = np.zeros(len(t))
    for n, (row, k) in enumerate(zip(x, t)):
        w = 1.0 if weight is None else weight[k]
        out[n] = sum(w * max(0.0, margin - row[k] + row[i]) ** p for i in range(C) if i != k) / C
    return out, None


def ref_multilabel_margin(t, x):
    out = np.zeros(len(t))
    for n, (row, idx) in enumerate(zip(x, t)):
        targets = []
        for k in idx:
            if k < 0:
                break
            targets.append(int(k))
        others = [i for i in range(C) if i not in targets]
        out[n] = sum(max(0.0, 1 - (row[j] - row[i])) for j in targets for i in others) / C
    return out, None


def ref_multilabel_soft(y, x, weight=None):
    w = 1.0 if weight is None else np.asarray(weight)
    return -(w * (y * np.log(sigmoid(x)) + (1 - y) * np.log(sigmoid(-x)))).mean(-1), None


def ref_cos_embed(t, x1, input2, margin=0.0):
    cos = (x1 * input2).sum(-1) / np.sqrt(((x1 ** 2).sum(-1) + 1e-12) * ((input2 ** 2).sum(-1) + 1e-12))
    return np.where(t == 1, 1 - cos, np.maximum(0, cos - margin)), None


def ref_triplet(a, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False):
    def d(u, v):
        return (np.abs(u - v + eps) ** p).sum(-1) ** (1 / p)
    dn = np.minimum(d(a, negative), d(positive, negative)) if swap else d(a, negative)
    return np.maximum(d(a, positive) - dn + margin, 0), None


def normal(r, shape=(N, C)):
    return r.normal(size=shape)


def prob(r):
    return r.uniform(0.02, 0.98, (N, C))


def binary(r):
    return r.integers(0, 2, (N, C)).astype(float)


def pm1(r):
    return 2 * binary(r) - 1


def index(r):
    return np.array([3, -100, 0, 4], np.int64)


def index_kept(r):
    return np.array([3, 1, 0, 4], np.int64)


def logp(r):
    return log_softmax(normal(r))


# id: (class name, params, {input: generator}, reference)
CASES = {
    "ce": ("CrossEntropyLoss", {}, {"y": index, "p": normal}, ref_ce),
    "ce_weight_smooth": ("CrossEntropyLoss", {"weight": list(W), "label_smoothing": 0.2},
                         {"y": index, "p": normal}, lambda y, p: ref_ce(y, p, W, label_smoothing=0.2)),
    "ce_ignore_1": ("nn.CrossEntropyLoss", {"ignore_index": 1}, {"y": index_kept, "p": normal},
                    lambda y, p: ref_ce(y, p, ignore_index=1)),
    "nll": ("NLLLoss", {"weight": list(W)}, {"y": index, "p": logp}, lambda y, p: ref_nll(y, p, W)),
    "bce": ("BCELoss", {}, {"y": binary, "p": prob}, ref_bce),
    "bce_weight": ("BCELoss", {"weight": list(W)}, {"y": binary, "p": prob}, lambda y, p: ref_bce(y, p, W)),
    "bce_logits": ("BCEWithLogitsLoss", {"pos_weight": list(W), "weight": 0.5}, {"y": binary, "p": normal},
                   lambda y, p: ref_bce_logits(y, p, 0.5, W)),
    "kl": ("KLDivLoss", {}, {"y": lambda r: np.exp(logp(r)) * binary(r), "p": logp}, ref_kl),
    "kl_log_target": ("KLDivLoss", {"log_target": True}, {"y": logp, "p": logp}, lambda y, p: ref_kl(y, p, True)),
    "poisson": ("PoissonNLLLoss", {}, {"y": lambda r: r.poisson(2, (N, C)).astype(float), "p": normal},
                ref_poisson),
    "poisson_rate_full": ("PoissonNLLLoss", {"log_input": False, "full": True},
                          {"y": lambda r: r.poisson(2, (N, C)).astype(float), "p": lambda r: r.uniform(.5, 3, (N, C))},
                          lambda y, p: ref_poisson(y, p, False, True)),
    "gaussian": ("GaussianNLLLoss", {"full": True}, {"y": normal, "p": normal, "var": lambda r: r.uniform(.3, 2, (N, C))},
                 lambda y, p, var: ref_gaussian(y, p, var, True)),
    "smooth_l1": ("SmoothL1Loss", {"beta": 0.5}, {"y": normal, "p": normal}, lambda y, p: ref_smooth_l1(y, p, 0.5)),
    "smooth_l1_beta0": ("SmoothL1Loss", {"beta": 0.0}, {"y": normal, "p": normal}, lambda y, p: ref_smooth_l1(y, p, 0.0)),
    "huber": ("HuberLoss", {"delta": 0.7}, {"y": normal, "p": normal}, lambda y, p: ref_huber(y, p, 0.7)),
    "l1": ("L1Loss", {}, {"y": normal, "p": normal}, lambda y, p: (np.abs(p - y), None)),
    "mse": ("MSELoss", {}, {"y": normal, "p": normal}, lambda y, p: ((p - y) ** 2, None)),
    "margin_ranking": ("MarginRankingLoss", {"margin": 0.2}, {"y": pm1, "p": normal, "input2": normal},
                       lambda y, p, input2: (np.maximum(0, -y * (p - input2) + 0.2), None)),
    "hinge_embedding": ("HingeEmbeddingLoss", {"margin": 1.5}, {"y": pm1, "p": lambda r: 2 * normal(r)},
                        lambda y, p: (np.where(y == 1, p, np.maximum(0, 1.5 - p)), None)),
    "multi_margin": ("MultiMarginLoss", {}, {"y": index_kept, "p": normal}, ref_multi_margin),
    "multi_margin_p2_weight": ("MultiMarginLoss", {"p": 2, "margin": 0.5, "weight": list(W)},
                               {"y": index_kept, "p": normal}, lambda y, p: ref_multi_margin(y, p, 2, 0.5, W)),
    "multilabel_margin": ("MultiLabelMarginLoss", {},
                          {"y": lambda r: np.array([[3, 0, -1, 1, 2], [1, 1, 4, -1, -1], [-1, 2, 3, 0, 0],
                                                    [0, 1, 2, 3, 4]], np.float64), "p": normal},
                          ref_multilabel_margin),
    "multilabel_soft_margin": ("MultiLabelSoftMarginLoss", {"weight": list(W)}, {"y": binary, "p": normal},
                               lambda y, p: ref_multilabel_soft(y, p, W)),
    "soft_margin": ("SoftMarginLoss", {}, {"y": pm1, "p": normal}, lambda y, p: (softplus(-y * p), None)),
    "cosine_embedding": ("CosineEmbeddingLoss", {"margin": 0.1},
                         {"y": lambda r: np.array([1, -1, 1, -1], np.int64), "p": normal, "input2": normal},
                         lambda y, p, input2: ref_cos_embed(y, p, input2, 0.1)),
    "triplet": ("TripletMarginLoss", {"swap": True}, {"p": normal, "positive": normal, "negative": normal},
                lambda p, positive, negative: ref_triplet(p, positive, negative, swap=True)),
}
FEED = {"y": "y_true", "p": "y_pred"}


def _inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    return {k: g(rng) for k, g in CASES[case][2].items()}


def _run(case, reduction, inputs):
    name, params, _, _ = CASES[case]
    loss = losses.get(name, **params, reduction=reduction)
    sess = session(loss.to_onnx(dtype="float64", shape=(None, C)))
    wanted = {i.name for i in sess.get_inputs()}
    feeds = {FEED.get(k, k): v for k, v in inputs.items() if FEED.get(k, k) in wanted}
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _reduce(per, denom, reduction):
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if reduction == "batchmean":
        return per.sum() / len(per)
    return per.sum() / denom if denom is not None else per.mean()


def _reductions(case):
    return ("none", "mean", "sum", "batchmean") if CASES[case][0] == "KLDivLoss" else ("none", "mean", "sum")


@pytest.mark.parametrize("case,reduction", [(c, r) for c in CASES for r in _reductions(c)])
def test_value_matches_pytorch_formula(case, reduction):
    inputs = _inputs(case)
    per, denom = CASES[case][3](*inputs.values())
    out = _run(case, reduction, inputs)
    np.testing.assert_allclose(out["loss"], _reduce(per, denom, reduction), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_mean_gradient_matches_finite_differences(case):
    inputs = _inputs(case, seed=1)
    out = _run(case, "mean", inputs)
    for key in [k for k in inputs if k != "y"]:
        def f(v, key=key):
            return _reduce(*CASES[case][3](*dict(inputs, **{key: v}).values()), "mean")
        np.testing.assert_allclose(out["grad_" + FEED.get(key, key)], central_fd(f, inputs[key]),
                                   rtol=1e-5, atol=1e-7, err_msg=case)


def test_every_class_name_is_covered_and_resolves_in_any_prefix():
    covered = {losses.entry(name).name for name, _, _, _ in CASES.values()}
    assert covered == set(losses.class_names()) - {"CTCLoss"}          # CTCLoss: test_losses_ctc.py
    for spelling in ("CrossEntropyLoss", "nn.CrossEntropyLoss", "torch.nn.CrossEntropyLoss", "crossentropyloss",
                     "cross_entropy"):
        assert losses.get(spelling).name == "CrossEntropyLoss"
    assert losses.get("BCEWithLogitsLoss").reduction == "mean"
    assert losses.get("binary_cross_entropy_with_logits").name == "BCEWithLogitsLoss"


def test_legacy_size_average_and_reduce_are_honoured():
    assert losses.get("MSELoss", reduce=False).reduction == "none"
    assert losses.get("MSELoss", size_average=False).reduction == "sum"
    assert losses.get("NLLLoss", size_average=True).reduction == "weighted_mean"


def test_pytorch_arguments_are_checked():
    with pytest.raises(ParameterError, match="'reduction'"):
        losses.get("MSELoss", reduction="batchmean")
    with pytest.raises(ParameterError, match="'p'"):
        losses.get("MultiMarginLoss", p=3)
    with pytest.raises(ParameterError, match="'label_smoothing'"):
        losses.get("CrossEntropyLoss", label_smoothing=1.0)


@pytest.mark.parametrize("bad,wanted,unwanted", [
    ("CrossEntropy_Loss_", "CrossEntropyLoss", "'binary_cross_entropy'"),
    ("BCEWithLogits", "BCEWithLogitsLoss", "log_loss"),
    ("bce_with_logit", "BCEWithLogitsLoss", "'binary_crossentropy'"),
])
def test_suggestions_do_not_mislead(bad, wanted, unwanted):
    with pytest.raises(UnknownNameError) as info:
        losses.get(bad)
    hint = str(info.value).split("Known losses")[0]
    assert repr(wanted) in hint and unwanted not in hint
