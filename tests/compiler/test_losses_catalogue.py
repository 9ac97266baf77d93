"""Every catalogue entry, value and gradient, against a NumPy reference written here from
the formulas in shared/reference/losses.md (not from the code under test), on random
inputs, run through onnxruntime in float64. Gradients are compared with float64 central
finite differences of the NumPy reference."""
import functools

import numpy as np
import pytest

from symgrad.compiler import losses
from oracle import central_fd, session

N, C = 4, 5
EPS = 1e-7


# ---------------------------------------------------------------- NumPy references
def clip(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


def log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def onehot(labels, depth=C):
    return (labels[..., None] == np.arange(depth)).astype(np.float64)


def renorm_clip(p, eps=EPS):
    return clip(p / p.sum(-1, keepdims=True), eps, 1 - eps)


def keras_hinge_labels(y):
    # Keras converts the whole tensor when every label is 0 or 1
    return 2 * y - 1 if np.all((y == 0) | (y == 1)) else y


def ref_huber(y, p, delta=1.0):
    e = np.abs(p - y)
    return np.where(e <= delta, 0.5 * e ** 2, delta * (e - 0.5 * delta)).mean(-1)


def ref_smooth_l1(y, p, beta=1.0):
    e = np.abs(p - y)
    return np.where(e < beta, 0.5 * e ** 2 / beta, e - 0.5 * beta).mean(-1)


def ref_poisson(y, p, log_input=False, full=False):
    per = np.exp(p) - y * p if log_input else p - y * np.log(p + EPS)
    if full:
        ys = np.where(y > 1, y, 1.0)
        per = per + np.where(y > 1, ys * np.log(ys) - ys + 0.5 * np.log(2 * np.pi * ys), 0.0)
    return per.mean(-1)


def ref_gaussian_nll(y, p, var, full=False, eps=1e-6):
    v = np.maximum(var, eps)
    per = 0.5 * (np.log(v) + (p - y) ** 2 / v) + (0.5 * np.log(2 * np.pi) if full else 0.0)
    return per.mean(-1)


def ref_bce(y, p, from_logits=False, label_smoothing=0.0, pos_weight=None):
    y = y * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits and pos_weight is None:      # max(z, 0) - z*y + log1p(exp(-|z|))
        per = np.maximum(p, 0) - p * y + np.log1p(np.exp(-np.abs(p)))
    elif from_logits:                            # -[pw*y*log sigmoid(z) + (1-y)*log sigmoid(-z)]
        per = -(pos_weight * y * -np.logaddexp(0, -p) + (1 - y) * -np.logaddexp(0, p))
    else:
        q = clip(p, EPS, 1 - EPS)
        pw = 1.0 if pos_weight is None else pos_weight
        per = -(pw * y * np.log(q) + (1 - y) * np.log(1 - q))
    return per.mean(-1)


def ref_binary_focal(y, p, gamma=2.0, alpha=None, from_logits=False):
    bce = ref_bce(y[..., None], p[..., None], from_logits=from_logits)
    prob = 1 / (1 + np.exp(-p)) if from_logits else p
    p_t = y * prob + (1 - y) * (1 - prob)
    per = (1 - p_t) ** gamma * bce
    if alpha is not None:
        per = per * (y * alpha + (1 - y) * (1 - alpha))
    return per.mean(-1)


def ref_cce(y, p, from_logits=False, label_smoothing=0.0, class_weight=None):
    y = y * (1 - label_smoothing) + label_smoothing / y.shape[-1]
    logq = log_softmax(p) if from_logits else np.log(renorm_clip(p))
    w = 1.0 if class_weight is None else np.asarray(class_weight)
    return -(w * y * logq).sum(-1)


def ref_scce(labels, p, from_logits=False, ignore_index=None, class_weight=None):
    """Returns the reduced loss: PyTorch's weighted mean when weights or ignores are given."""
    logq = log_softmax(p) if from_logits else np.log(renorm_clip(p))
    keep = np.ones(len(labels)) if ignore_index is None else (labels != ignore_index).astype(float)
    safe = np.where(keep > 0, labels, 0)
    per = -logq[np.arange(len(labels)), safe] * keep
    if class_weight is None and ignore_index is None:
        return per.mean()
    w = (np.ones(C) if class_weight is None else np.asarray(class_weight))[safe] * keep
    return (w * per).sum() / w.sum()


def ref_nll(labels, x, ignore_index=None, class_weight=None):
    """-w[y] x[y]; PyTorch's weighted mean when weights or ignores are given."""
    keep = np.ones(len(labels)) if ignore_index is None else (labels != ignore_index).astype(float)
    safe = np.where(keep > 0, labels, 0)
    w = (np.ones(C) if class_weight is None else np.asarray(class_weight))[safe] * keep
    per = -x[np.arange(len(labels)), safe] * w
    return per.mean() if class_weight is None and ignore_index is None else per.sum() / w.sum()


def ref_cat_focal(y, p, alpha=0.25, gamma=2.0, from_logits=False):
    if from_logits:
        logq = log_softmax(p)
        q = np.exp(logq)
    else:
        q = renorm_clip(p)
        logq = np.log(q)
    return (alpha * (1 - q) ** gamma * -y * logq).sum(-1)


def ref_kld(y, p, log_input=False, log_target=False):
    if log_target:
        return (np.exp(y) * (y - (p if log_input else np.log(clip(p, EPS, 1))))).sum(-1)
    if log_input:
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1)), 0.0)
        return (ylogy - y * p).sum(-1)
    t, q = clip(y, EPS, 1), clip(p, EPS, 1)
    return (t * np.log(t / q)).sum(-1)


def ref_multiclass_hinge(labels, s, margin=1.0, form="max", p=1.0):
    out = []
    for row, lab in zip(s, labels):
        others = np.delete(row, lab)
        if form == "max":
            out.append(max(0.0, margin + others.max() - row[lab]))
        else:
            out.append((np.maximum(0, margin - row[lab] + others) ** p).sum() / len(row))
    return np.array(out)


def ref_poly1(y, p, epsilon=2.0, from_logits=False):
    if from_logits:
        logq = log_softmax(p)
        q = np.exp(logq)
    else:
        q = renorm_clip(p)
        logq = np.log(q)
    return -(y * logq).sum(-1) + epsilon * (y * (1 - q)).sum(-1)


def ref_cosine(y, p, eps=EPS):
    def normalize(x):
        return x / np.sqrt(np.maximum((x ** 2).sum(-1, keepdims=True), eps ** 2))
    return -(normalize(y) * normalize(p)).sum(-1)


def ref_dice(y, p, smooth=0.0, epsilon=EPS):
    return 1 - (2 * (y * p).sum(-1) + smooth) / (y.sum(-1) + p.sum(-1) + smooth + epsilon)


def ref_tversky(y, p, alpha=0.5, beta=0.5):
    tp, fp, fn = (y * p).sum(-1), ((1 - y) * p).sum(-1), (y * (1 - p)).sum(-1)
    return 1 - tp / (tp + alpha * fp + beta * fn + EPS)


def ref_circle(y, x, gamma=80.0, margin=0.4):
    """Keras circle: every sample here has a positive, so the masked mean is the plain mean."""
    d = np.maximum(1 - x @ x.T, 0)
    pos = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    pt = -gamma * np.maximum(margin + d, 0) * (margin - d)
    nt = gamma * np.maximum(1 + margin - d, 0) * (1 - margin - d)
    p_loss = np.array([np.logaddexp.reduce(pt[i][pos[i]]) for i in range(len(y))])
    n_loss = np.array([np.logaddexp.reduce(nt[i][y != y[i]]) for i in range(len(y))])
    return np.logaddexp(0, p_loss + n_loss)


def ref_cosine_embedding(y, x1, input2, margin=0.0):
    cos = (x1 * input2).sum(-1) / np.sqrt(((x1 ** 2).sum(-1) + 1e-12) * ((input2 ** 2).sum(-1) + 1e-12))
    return np.where(y == 1, 1 - cos, 0) + np.where(y == -1, np.maximum(0, cos - margin), 0)


def ref_triplet(a, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False):
    def d(u, v):
        return (np.abs(u - v + eps) ** p).sum(-1) ** (1 / p)
    d_an = np.minimum(d(a, negative), d(positive, negative)) if swap else d(a, negative)
    return np.maximum(d(a, positive) - d_an + margin, 0)


def ref_hinge_embedding(y, x, margin=1.0):
    return np.where(y != 1, np.maximum(0, margin - x), 0) + np.where(y != -1, x, 0)


# ---------------------------------------------------------------- random inputs
def normal(rng, shape=(N, C), scale=1.0):
    return rng.normal(0, scale, shape)


def uniform(lo, hi, shape=(N, C)):
    return lambda rng: rng.uniform(lo, hi, shape)


def binary(rng, shape=(N, C)):
    return rng.integers(0, 2, shape).astype(np.float64)


def pm1(rng, shape=(N, C)):
    return 2 * binary(rng, shape) - 1


def probs(rng):
    e = np.exp(normal(rng))
    return e / e.sum(-1, keepdims=True)


def one_hot_rows(rng):
    return onehot(rng.integers(0, C, N))


def labels(rng):
    return rng.integers(0, C, N).astype(np.int64)


# id: (catalogue name, params, {input: generator}, reference(**inputs) -> per-sample or reduced loss)
# The reference takes y_true as ``y`` and y_pred as ``p`` (extra inputs by their names).
CASES = {
    "mse": ("mse", {}, {"y": normal, "p": normal}, lambda y, p: ((p - y) ** 2).mean(-1)),
    "mae": ("mean_absolute_error", {}, {"y": normal, "p": normal}, lambda y, p: np.abs(p - y).mean(-1)),
    "mape": ("mape", {}, {"y": uniform(0.5, 2), "p": normal},
             lambda y, p: 100 * np.abs((y - p) / np.maximum(np.abs(y), EPS)).mean(-1)),
    "msle": ("msle", {}, {"y": uniform(0, 3), "p": uniform(0.1, 3)},
             lambda y, p: ((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(y, EPS) + 1)) ** 2).mean(-1)),
    "huber": ("huber", {}, {"y": normal, "p": lambda r: normal(r, scale=2)}, ref_huber),
    "huber_delta": ("huber", {"delta": 0.5}, {"y": normal, "p": normal}, lambda y, p: ref_huber(y, p, 0.5)),
    "smooth_l1": ("smooth_l1", {"beta": 0.7}, {"y": normal, "p": normal}, lambda y, p: ref_smooth_l1(y, p, 0.7)),
    "log_cosh": ("log_cosh", {}, {"y": normal, "p": normal}, lambda y, p: np.log(np.cosh(p - y)).mean(-1)),
    "quantile": ("quantile", {"quantile": 0.8}, {"y": normal, "p": normal},
                 lambda y, p: np.maximum(0.8 * (y - p), -0.2 * (y - p)).mean(-1)),
    "poisson": ("poisson", {}, {"y": lambda r: r.poisson(2, (N, C)).astype(float), "p": uniform(0.5, 3)},
                ref_poisson),
    "poisson_log_full": ("poisson", {"log_input": True, "full": True},
                         {"y": lambda r: r.poisson(2, (N, C)).astype(float), "p": normal},
                         lambda y, p: ref_poisson(y, p, log_input=True, full=True)),
    "gaussian_nll": ("gaussian_nll", {"full": True}, {"y": normal, "p": normal, "var": uniform(0.3, 2)},
                     lambda y, p, var: ref_gaussian_nll(y, p, var, full=True)),
    "bce": ("bce", {}, {"y": binary, "p": uniform(0.02, 0.98)}, ref_bce),
    "bce_soft_smooth_pw": ("binary_crossentropy", {"label_smoothing": 0.2, "pos_weight": 3.0},
                           {"y": uniform(0, 1), "p": uniform(0.02, 0.98)},
                           lambda y, p: ref_bce(y, p, label_smoothing=0.2, pos_weight=3.0)),
    "bce_logits": ("bce", {"from_logits": True}, {"y": binary, "p": lambda r: normal(r, scale=3)},
                   lambda y, p: ref_bce(y, p, from_logits=True)),
    "bce_logits_pw_vector": ("bce", {"from_logits": True, "pos_weight": [1, 2, 3, 0.5, 1]},
                             {"y": binary, "p": lambda r: normal(r, scale=3)},
                             lambda y, p: ref_bce(y, p, from_logits=True, pos_weight=np.array([1, 2, 3, .5, 1]))),
    "binary_focal": ("binary_focal_crossentropy", {}, {"y": binary, "p": uniform(0.02, 0.98)}, ref_binary_focal),
    "binary_focal_logits_alpha": ("binary_focal_crossentropy", {"from_logits": True, "alpha": 0.25, "gamma": 1.5},
                                  {"y": binary, "p": lambda r: normal(r, scale=2)},
                                  lambda y, p: ref_binary_focal(y, p, 1.5, 0.25, True)),
    "cce": ("cce", {}, {"y": one_hot_rows, "p": uniform(0.05, 1)}, ref_cce),
    "cce_logits_smooth": ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.1},
                          {"y": probs, "p": lambda r: normal(r, scale=2)},
                          lambda y, p: ref_cce(y, p, True, 0.1)),
    "cce_class_weight": ("categorical_crossentropy", {"class_weight": [1, 2, 0.5, 1, 3], "label_smoothing": 0.2},
                         {"y": one_hot_rows, "p": uniform(0.05, 1)},
                         lambda y, p: ref_cce(y, p, label_smoothing=0.2, class_weight=[1, 2, 0.5, 1, 3])),
    "scce": ("scce", {}, {"y": labels, "p": uniform(0.05, 1)}, lambda y, p: ref_scce(y, p)),
    "scce_logits_weights_ignore": ("sparse_categorical_crossentropy",
                                   {"from_logits": True, "class_weight": [1, 2, 0.5, 1, 3], "ignore_index": 2},
                                   {"y": lambda r: np.array([2, 0, 4, 1], np.int64), "p": normal},
                                   lambda y, p: ref_scce(y, p, True, 2, [1, 2, 0.5, 1, 3])),
    "nll": ("nll", {}, {"y": labels, "p": lambda r: log_softmax(normal(r))}, lambda y, p: ref_nll(y, p)),
    "nll_weights": ("nll", {"class_weight": [2, 1, 1, 0.5, 1], "ignore_index": -100},
                    {"y": lambda r: np.array([0, -100, 3, 1], np.int64), "p": lambda r: log_softmax(normal(r))},
                    lambda y, p: ref_nll(y, p, -100, [2, 1, 1, 0.5, 1])),
    "cat_focal": ("categorical_focal_crossentropy", {}, {"y": one_hot_rows, "p": uniform(0.05, 1)}, ref_cat_focal),
    "cat_focal_logits": ("categorical_focal_crossentropy", {"from_logits": True, "alpha": 0.5, "gamma": 3.0},
                         {"y": one_hot_rows, "p": normal}, lambda y, p: ref_cat_focal(y, p, 0.5, 3.0, True)),
    "kld": ("kld", {}, {"y": probs, "p": probs}, ref_kld),
    "kld_log_input": ("kl_divergence", {"log_input": True},
                      {"y": lambda r: probs(r) * binary(r), "p": lambda r: log_softmax(normal(r))},
                      lambda y, p: ref_kld(y, p, log_input=True)),
    "kld_log_both": ("kl_divergence", {"log_input": True, "log_target": True},
                     {"y": lambda r: log_softmax(normal(r)), "p": lambda r: log_softmax(normal(r))},
                     lambda y, p: ref_kld(y, p, True, True)),
    "hinge_01": ("hinge", {}, {"y": binary, "p": normal},
                 lambda y, p: np.maximum(0, 1 - keras_hinge_labels(y) * p).mean(-1)),
    "hinge_pm1": ("hinge", {}, {"y": pm1, "p": normal},
                  lambda y, p: np.maximum(0, 1 - keras_hinge_labels(y) * p).mean(-1)),
    "squared_hinge": ("squared_hinge", {}, {"y": binary, "p": normal},
                      lambda y, p: (np.maximum(0, 1 - keras_hinge_labels(y) * p) ** 2).mean(-1)),
    "categorical_hinge": ("categorical_hinge", {}, {"y": one_hot_rows, "p": normal},
                          lambda y, p: np.maximum(0, ((1 - y) * p).max(-1) - (y * p).sum(-1) + 1)),
    "multiclass_hinge": ("multiclass_hinge", {}, {"y": labels, "p": normal}, ref_multiclass_hinge),
    "multiclass_hinge_sum": ("multiclass_hinge", {"form": "sum", "p": 2, "margin": 0.5}, {"y": labels, "p": normal},
                             lambda y, p: ref_multiclass_hinge(y, p, 0.5, "sum", 2)),
    "soft_margin": ("soft_margin", {}, {"y": pm1, "p": normal}, lambda y, p: np.log1p(np.exp(-y * p)).mean(-1)),
    "poly1": ("poly1_crossentropy", {}, {"y": one_hot_rows, "p": uniform(0.05, 1)}, ref_poly1),
    "poly1_logits": ("poly1_crossentropy", {"from_logits": True, "epsilon": 1.0}, {"y": probs, "p": normal},
                     lambda y, p: ref_poly1(y, p, 1.0, True)),
    "cosine_similarity": ("cosine_similarity", {}, {"y": normal, "p": normal}, ref_cosine),
    "dice": ("dice", {"axis": -1}, {"y": binary, "p": uniform(0.01, 0.99)}, ref_dice),
    "dice_smooth": ("dice", {"smooth": 1.0, "epsilon": 0.0, "axis": -1}, {"y": binary, "p": uniform(0.01, 0.99)},
                    lambda y, p: ref_dice(y, p, 1.0, 0.0)),
    "tversky": ("tversky", {"alpha": 0.7, "beta": 0.3, "axis": -1}, {"y": binary, "p": uniform(0.01, 0.99)},
                lambda y, p: ref_tversky(y, p, 0.7, 0.3)),
    "cosine_embedding": ("cosine_embedding", {"margin": 0.1},
                         {"y": lambda r: np.array([1, -1, 1, -1], np.int64), "p": normal, "input2": normal},
                         lambda y, p, input2: ref_cosine_embedding(y, p, input2, 0.1)),
    "margin_ranking": ("margin_ranking", {"margin": 0.3}, {"y": pm1, "p": normal, "input2": normal},
                       lambda y, p, input2: np.maximum(0, -y * (p - input2) + 0.3)),
    "triplet_margin": ("triplet_margin", {}, {"p": normal, "positive": normal, "negative": normal},
                       lambda p, positive, negative: ref_triplet(p, positive, negative)),
    "triplet_margin_p1_swap": ("triplet_margin", {"p": 1, "swap": True, "margin": 2.0},
                               {"p": normal, "positive": normal, "negative": normal},
                               lambda p, positive, negative: ref_triplet(p, positive, negative, 2.0, 1, swap=True)),
    "hinge_embedding": ("hinge_embedding", {"margin": 1.5}, {"y": pm1, "p": lambda r: normal(r, scale=2)},
                        lambda y, p: ref_hinge_embedding(y, p, 1.5)),
    "circle": ("Circle", {"gamma": 2.0}, {"y": lambda r: np.array([0, 0, 3, 3], np.int64), "p": normal},
               lambda y, p: ref_circle(y, p, 2.0)),
    "gce": ("categorical_generalized_cross_entropy", {"q": 0.6}, {"y": labels, "p": uniform(0.05, 1)},
            lambda y, p: (1 - p[np.arange(N), y] ** 0.6) / 0.6),
    # TF.js core losses (per element, SUM_BY_NONZERO_WEIGHTS = the plain mean without weights)
    "absolute_difference": ("absoluteDifference", {}, {"y": normal, "p": normal}, lambda y, p: np.abs(p - y)),
    "cosine_distance": ("cosine_distance", {}, {"y": normal, "p": normal}, lambda y, p: 1 - (y * p).sum(-1)),
    "mean_pairwise": ("mean_pairwise_squared_error", {"reduction": "mean"}, {"y": normal, "p": normal},
                      lambda y, p: np.array([np.mean([(d[i] - d[j]) ** 2 for i in range(C) for j in range(i)])
                                             for d in p - y])),
    "sigmoid_cross_entropy": ("sigmoid_cross_entropy", {"label_smoothing": 0.1}, {"y": binary, "p": normal},
                              lambda y, p: np.maximum(p, 0) - p * (0.9 * y + 0.05) + np.log1p(np.exp(-np.abs(p)))),
    "softmax_cross_entropy": ("softmaxCrossEntropy", {"labelSmoothing": 0.1}, {"y": one_hot_rows, "p": normal},
                              lambda y, p: ref_cce(y, p, True, 0.1)),
    "log_loss": ("log_loss", {}, {"y": binary, "p": uniform(0.02, 0.98)},
                 lambda y, p: -y * np.log(p + EPS) - (1 - y) * np.log(1 - p + EPS)),
}
FEED = {"y": "y_true", "p": "y_pred"}


@functools.lru_cache(maxsize=None)
def compiled(case_id, dtype="float64", reduction=None, sample_weight=False):
    name, params, _, _ = CASES[case_id]
    kw = dict(params, reduction=reduction) if reduction else params
    loss = losses.get(name, **kw)
    return loss, session(loss.to_onnx(dtype=dtype, shape=(None, C), sample_weight=sample_weight))


def make_inputs(case_id, seed=0):
    _, _, gens, _ = CASES[case_id]
    rng = np.random.default_rng(seed)
    return {k: g(rng) for k, g in gens.items()}


def run(sess, inputs, dtype=np.float64, sample_weight=None):
    feeds = {}
    for k, v in inputs.items():
        name = FEED.get(k, k)
        feeds[name] = v if v.dtype == np.int64 else v.astype(dtype)
    if sample_weight is not None:
        feeds["sample_weight"] = sample_weight.astype(dtype)
    wanted = {i.name for i in sess.get_inputs()}
    out = sess.run(None, {k: v for k, v in feeds.items() if k in wanted})
    return dict(zip([o.name for o in sess.get_outputs()], out))


def reference_loss(case_id, inputs):
    """The reduced reference: per-sample values are averaged (Keras sum_over_batch_size);
    references that return a scalar already applied their own (weighted) mean."""
    ref = CASES[case_id][3]
    value = ref(*inputs.values())  # in the order of the case's inputs
    return float(np.mean(value))


@pytest.mark.parametrize("case_id", list(CASES))
def test_value_and_gradient_match_numpy_reference(case_id):
    loss, sess = compiled(case_id)
    inputs = make_inputs(case_id)
    out = run(sess, inputs)
    expected = reference_loss(case_id, inputs)
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-9, atol=1e-12)
    for key in [k for k in inputs if k not in ("y",)]:
        def f(x, key=key):
            return reference_loss(case_id, dict(inputs, **{key: x}))
        grad = central_fd(f, inputs[key])
        assert np.count_nonzero(np.abs(grad) > 1e-9) >= 2, f"{case_id}: inputs too flat to test {key}"
        out_name = "grad_" + FEED.get(key, key)
        np.testing.assert_allclose(out[out_name], grad, rtol=1e-5, atol=1e-7, err_msg=f"{case_id}: {out_name}")


def test_every_entry_has_a_reference_case():
    covered = {losses.entry(name).name for name, _, _, _ in CASES.values()}
    sequence = {n for n in losses.names() if losses.entry(n).category == "sequence"}   # test_losses_ctc.py
    assert covered == set(losses.names()) - sequence


@pytest.mark.parametrize("case_id", ["mse", "bce_logits", "scce", "cosine_similarity", "triplet_margin"])
def test_float32_agrees_with_float64(case_id):
    inputs = make_inputs(case_id, seed=1)
    out64 = run(compiled(case_id)[1], inputs)
    out32 = run(compiled(case_id, dtype="float32")[1], inputs, dtype=np.float32)
    for k, v in out64.items():
        assert out32[k].dtype == np.float32
        np.testing.assert_allclose(out32[k], v, rtol=2e-4, atol=1e-5)


def _first_case_per_entry():
    seen = {}
    for cid, (name, _, _, _) in CASES.items():
        seen.setdefault(losses.entry(name).name, cid)
    return list(seen.values())


@pytest.mark.parametrize("case_id", _first_case_per_entry())
def test_per_sample_values_and_sample_weights(case_id):
    """reduction='none' gives the reference's per-sample values; with sample weights w the
    default reduction is sum(w * L) / numel(L) (Keras sum_over_batch_size)."""
    inputs = make_inputs(case_id, seed=2)
    per = np.asarray(CASES[case_id][3](*inputs.values()))
    if per.ndim == 0:                       # a weighted-mean reference: covered in test_losses_edges
        pytest.skip("reference is already reduced")
    sw = np.linspace(0.0, 2.0, N)
    none = run(compiled(case_id, reduction="none", sample_weight=True)[1], inputs, sample_weight=sw)["loss"]
    np.testing.assert_allclose(none, per * sw.reshape((-1,) + (1,) * (per.ndim - 1)), rtol=1e-9, atol=1e-12)
    out = run(compiled(case_id, reduction="sum_over_batch_size", sample_weight=True)[1], inputs, sample_weight=sw)
    weighted = per * sw.reshape((-1,) + (1,) * (per.ndim - 1))
    np.testing.assert_allclose(out["loss"], weighted.sum() / per.size, rtol=1e-9, atol=1e-12)
