"""Edge cases of the catalogue in float32 (the default graph type): probabilities at exactly
0 and 1 (Keras clipping), logits at +-50, zero vectors for cosine losses, ignored labels,
class weights, and sample weights under every reduction. References are NumPy, written
here from the formulas in shared/reference/losses.md."""
import numpy as np
import pytest

from symgrad.compiler import losses
from oracle import central_fd, session

F32 = np.float32
EPS32 = F32(1e-7)


def run(loss, shape, with_weight=False, dtype="float32", **feeds):
    sess = session(loss.to_onnx(shape=shape, sample_weight=with_weight, dtype=dtype))
    wanted = [i.name for i in sess.get_inputs()]
    out = sess.run(None, {k: feeds[k] for k in wanted})
    return dict(zip([o.name for o in sess.get_outputs()], out))


def finite(out):
    for k, v in out.items():
        assert np.all(np.isfinite(v)), f"{k} is not finite: {v}"


def keras_clip32(p):
    return np.clip(p.astype(F32), EPS32, F32(1) - EPS32)


# ---------------------------------------------------------------- probabilities at 0 and 1
Y01 = np.array([[1, 0, 1, 0], [0, 1, 1, 0]], F32)
P01 = np.array([[0, 1, 1, 0], [1, 0, 0.5, 1]], F32)


def test_bce_clips_probabilities_at_0_and_1_like_keras():
    out = run(losses.get("bce"), (None, 4), y_true=Y01, y_pred=P01)
    finite(out)
    q = keras_clip32(P01)
    expected = np.mean(-(Y01 * np.log(q) + (1 - Y01) * np.log(F32(1) - q)))
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-5)
    assert out["loss"] > 10                       # wrong-sided certainty costs ~ -log(1e-7)
    clipped = (P01 == 0) | (P01 == 1)
    assert np.all(out["grad_y_pred"][clipped] == 0)   # clip's derivative is 0 outside [eps, 1-eps]
    assert np.all(out["grad_y_pred"][~clipped] != 0)


@pytest.mark.parametrize("name,params", [
    ("categorical_crossentropy", {}), ("categorical_focal_crossentropy", {}), ("poly1_crossentropy", {}),
    ("kl_divergence", {}), ("binary_focal_crossentropy", {"alpha": 0.25}),
])
def test_dense_probability_losses_are_finite_at_0_and_1(name, params):
    y = np.array([[1, 0, 0], [0, 0, 1]], F32)
    p = np.array([[0, 1, 0], [0, 0, 1]], F32)       # certain, and wrong / right
    out = run(losses.get(name, **params), (None, 3), y_true=y, y_pred=p)
    finite(out)
    if name == "categorical_crossentropy":        # -log(clip(0)) = -log(1e-7) for the wrong row, ~0 for the right
        np.testing.assert_allclose(out["loss"], (-np.log(EPS32) - np.log(F32(1) - EPS32)) / 2, rtol=1e-5)
    if name == "kl_divergence":                   # sum t log(t/q), both clipped to [eps, 1]
        t, q = np.clip(y, EPS32, 1), np.clip(p, EPS32, 1)
        np.testing.assert_allclose(out["loss"], np.mean((t * np.log(t / q)).sum(-1)), rtol=1e-5)


def test_sparse_crossentropy_is_finite_at_0_and_1():
    p = np.array([[0, 1, 0], [1, 0, 0]], F32)
    out = run(losses.get("scce"), (None, 3), y_true=np.array([0, 0], np.int64), y_pred=p)
    finite(out)
    np.testing.assert_allclose(out["loss"], (-np.log(EPS32) - np.log(F32(1) - EPS32)) / 2, rtol=1e-5)


# ---------------------------------------------------------------- logits at +-50
Z = np.array([[50, -50, 50, -50], [0.5, -50, 50, 2]], F32)


def _np_softplus(x):
    return np.logaddexp(0, x)


def _np_log_softmax(z):
    return z - np.logaddexp.reduce(z, axis=-1, keepdims=True)


LOGIT_REFS = {
    # name, params: (y, reference in float64)
    "bce": (Y01, lambda y, z: np.mean(y * _np_softplus(-z) + (1 - y) * _np_softplus(z))),
    "binary_focal_crossentropy": (Y01, lambda y, z: np.mean(
        (y * (1 - 1 / (1 + np.exp(-z))) + (1 - y) / (1 + np.exp(-z))) ** 2
        * (y * _np_softplus(-z) + (1 - y) * _np_softplus(z)))),
    "categorical_crossentropy": (np.eye(4, dtype=F32)[[1, 2]], lambda y, z: np.mean(-(y * _np_log_softmax(z)).sum(-1))),
    "categorical_focal_crossentropy": (np.eye(4, dtype=F32)[[1, 2]], lambda y, z: np.mean(
        (0.25 * (1 - np.exp(_np_log_softmax(z))) ** 2 * -y * _np_log_softmax(z)).sum(-1))),
    "poly1_crossentropy": (np.eye(4, dtype=F32)[[1, 2]], lambda y, z: np.mean(
        -(y * _np_log_softmax(z)).sum(-1) + 2 * (y * (1 - np.exp(_np_log_softmax(z)))).sum(-1))),
    "soft_margin": (2 * Y01 - 1, lambda y, z: np.mean(_np_softplus(-y * z))),
}


@pytest.mark.parametrize("name", list(LOGIT_REFS))
def test_logit_paths_are_finite_and_exact_at_50(name):
    y, ref = LOGIT_REFS[name]
    params = {} if name == "soft_margin" else {"from_logits": True}
    out = run(losses.get(name, **params), (None, 4), y_true=y, y_pred=Z)
    finite(out)
    z64, y64 = Z.astype(np.float64), y.astype(np.float64)
    np.testing.assert_allclose(out["loss"], ref(y64, z64), rtol=1e-5)
    grad = central_fd(lambda z: ref(y64, z), z64, h=1e-5)
    np.testing.assert_allclose(out["grad_y_pred"], grad, rtol=1e-3, atol=1e-6)


def test_sparse_logits_at_50():
    out = run(losses.get("scce", from_logits=True), (None, 4), y_true=np.array([1, 2], np.int64), y_pred=Z)
    finite(out)
    expected = np.mean([-_np_log_softmax(Z[0].astype(float))[1], -_np_log_softmax(Z[1].astype(float))[2]])
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-5)   # 100 and ~0: no clipping on logits


# ---------------------------------------------------------------- zero vectors
def test_cosine_similarity_with_a_zero_vector_is_finite():
    y = np.array([[1, 2, 2], [0, 0, 0]], F32)
    p = np.array([[0, 0, 0], [3, 0, 4]], F32)
    out = run(losses.get("cosine_similarity"), (None, 3), y_true=y, y_pred=p)
    finite(out)
    assert out["loss"] == 0
    # below eps^2 the norm is the constant eps: d/dp of -sum(y_n * p / eps) / N
    np.testing.assert_allclose(out["grad_y_pred"][0], -(y[0] / 3) / 1e-7 / 2, rtol=1e-4)
    np.testing.assert_allclose(out["grad_y_pred"][1], 0, atol=1e-6)


def test_cosine_embedding_and_triplet_with_zero_vectors_are_finite():
    z = np.zeros((2, 3), F32)
    x = np.array([[1, 0, 0], [0, 2, 0]], F32)
    out = run(losses.get("cosine_embedding"), (None, 3), y_true=np.array([1, -1], np.int64), y_pred=z, input2=x)
    finite(out)
    np.testing.assert_allclose(out["loss"], 0.5)          # cos = 0: 1 - 0 for y = 1, max(0, 0) for y = -1
    out = run(losses.get("triplet_margin"), (None, 3), y_pred=x, positive=x, negative=x)
    finite(out)
    np.testing.assert_allclose(out["loss"], 1.0, rtol=1e-5)   # d(a, p) = d(a, n) = ||eps||: the margin


# ---------------------------------------------------------------- ignored labels, class weights
def test_all_labels_ignored_gives_zero_not_nan():
    out = run(losses.get("scce", ignore_index=1, from_logits=True), (None, 3),
              y_true=np.array([1, 1], np.int64), y_pred=np.ones((2, 3), F32))
    assert out["loss"] == 0 and np.all(out["grad_y_pred"] == 0)


def test_ignore_index_is_the_mean_over_kept_labels():
    z = np.array([[1, 2, 3], [3, 1, 0], [0, 0, 5]], F32)
    out = run(losses.get("scce", ignore_index=-100, from_logits=True), (None, 3),
              y_true=np.array([2, -100, 0], np.int64), y_pred=z)
    lp = _np_log_softmax(z.astype(float))
    np.testing.assert_allclose(out["loss"], -(lp[0, 2] + lp[2, 0]) / 2, rtol=1e-6)
    assert np.all(out["grad_y_pred"][1] == 0)


def test_class_weight_dict_equals_list_and_keras_convention_divides_by_batch():
    z = np.array([[1, 2, 3], [3, 1, 0]], F32)
    lab = np.array([2, 0], np.int64)
    lp = _np_log_softmax(z.astype(float))
    l = np.array([-lp[0, 2], -lp[1, 0]])
    w = np.array([4.0, 1.0])                      # weights of classes 2 and 0
    as_list = run(losses.get("scce", from_logits=True, class_weight=[1, 2, 4]), (None, 3), y_true=lab, y_pred=z)
    as_dict = run(losses.get("scce", from_logits=True, class_weight={0: 1, 1: 2, 2: 4}), (None, 3),
                  y_true=lab, y_pred=z)
    keras = run(losses.get("scce", from_logits=True, class_weight=[1, 2, 4], reduction="sum_over_batch_size"),
                (None, 3), y_true=lab, y_pred=z)
    np.testing.assert_allclose(as_list["loss"], (w * l).sum() / w.sum(), rtol=1e-6)    # PyTorch weighted mean
    np.testing.assert_allclose(as_dict["loss"], as_list["loss"], rtol=1e-7)
    np.testing.assert_allclose(keras["loss"], (w * l).sum() / 2, rtol=1e-6)           # Keras: / batch size


# ---------------------------------------------------------------- sample weights x reductions
REDUCTIONS = ["none", "sum", "mean", "sum_over_batch_size", "weighted_mean"]
SW = np.array([0.5, 2.0, 0.0, 1.0])


def _reduce(per, sw, reduction, w=None):
    """The reduction definitions of reference §1.1 (w: class weights, entering the weighted mean)."""
    w = np.ones_like(per) if w is None else w
    v = per * w * sw.reshape((-1,) + (1,) * (per.ndim - 1))
    if reduction == "none":
        return v
    if reduction == "sum":
        return v.sum()
    if reduction in ("mean", "sum_over_batch_size"):
        return v.sum() / per.size
    ws = (w * sw.reshape((-1,) + (1,) * (per.ndim - 1)) * np.ones_like(per)).sum()
    return v.sum() / ws if ws else 0.0


def _mse(inputs):
    return ((inputs["y_pred"] - inputs["y_true"]) ** 2).mean(-1), None


def _scce_weighted(inputs):
    cw = np.array([1.0, 3.0, 0.5])
    lab = inputs["y_true"]
    return -_np_log_softmax(inputs["y_pred"])[np.arange(4), lab], cw[lab]


def _ranking(inputs):
    return np.maximum(0, -inputs["y_true"] * (inputs["y_pred"] - inputs["input2"]) + 1.5), None


SW_CASES = {
    "mse": (lambda r: losses.get("mse", reduction=r), (None, 3), _mse),
    "scce_class_weight": (lambda r: losses.get("scce", from_logits=True, class_weight=[1, 3, 0.5], reduction=r),
                          (None, 3), _scce_weighted),
    "margin_ranking_1d": (lambda r: losses.get("margin_ranking", margin=1.5, reduction=r), (None,), _ranking),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(SW_CASES))
def test_sample_weight_under_every_reduction(case, reduction):
    make, shape, ref = SW_CASES[case]
    rng = np.random.default_rng(3)
    if case == "scce_class_weight":
        inputs = {"y_true": np.array([0, 1, 2, 1], np.int64), "y_pred": rng.normal(size=(4, 3))}
    elif case == "mse":
        inputs = {"y_true": rng.normal(size=(4, 3)), "y_pred": rng.normal(size=(4, 3))}
    else:
        inputs = {"y_true": np.array([1.0, -1, 1, -1]), "y_pred": np.array([0.1, 0.5, -0.3, 0.2]),
                  "input2": np.array([0.4, 0.2, 0.1, 0.9])}
    out = run(make(reduction), shape, with_weight=True, dtype="float64", sample_weight=SW, **inputs)

    def value(x):
        per, w = ref(dict(inputs, y_pred=x))
        return _reduce(per, SW, reduction, w)

    assert np.count_nonzero(ref(inputs)[0]) >= 3       # the weights must have something to weigh
    np.testing.assert_allclose(out["loss"], value(inputs["y_pred"]), rtol=1e-9, atol=1e-12)
    if reduction != "none":
        np.testing.assert_allclose(out["grad_y_pred"], central_fd(value, inputs["y_pred"]), rtol=1e-5, atol=1e-8)


def test_categorical_crossentropy_over_a_middle_axis():
    # Keras: the class axis is axis=1 of (N, C, T); per-sample values (N, T), mean over all of them
    rng = np.random.default_rng(5)
    z = rng.normal(size=(2, 3, 4))
    y = np.eye(3)[rng.integers(0, 3, (2, 4))].transpose(0, 2, 1)
    out = run(losses.get("cce", from_logits=True, axis=1), (None, 3, 4), dtype="float64", y_true=y, y_pred=z)
    lp = z - np.log(np.exp(z).sum(1, keepdims=True))
    expected = lambda zz: np.mean(-(y * (zz - np.log(np.exp(zz).sum(1, keepdims=True)))).sum(1))  # noqa: E731
    np.testing.assert_allclose(out["loss"], np.mean(-(y * lp).sum(1)), rtol=1e-10)
    np.testing.assert_allclose(out["grad_y_pred"], central_fd(expected, z), rtol=1e-6, atol=1e-9)
