"""Weights of any broadcastable shape, every reduction (TF.js SUM_BY_NONZERO_WEIGHTS too),
Dice/Tversky over the whole batch and over tuple axes, and the TF.js core losses.

Expected numbers are taken from keras/src/losses/losses_test.py (Keras 3) and
tfjs-core/src/ops/losses/*_test.ts; gradients are checked against float64 central finite
differences of NumPy references written here."""
import numpy as np
import pytest

from symgrad.compiler import Loss, ParameterError, losses
from symgrad.compiler.loss import Y_PRED
from oracle import central_fd, run

Y = np.array([[1, 9, 2], [-5, -2, 6]], dtype=np.float64)         # Keras' and TF.js' 2x3 example
P = np.array([[4, 8, 12], [8, 1, 3]], dtype=np.float64)


def evaluate(loss, y_true, y_pred, sample_weight=None, weight_shape=None, output="loss"):
    if sample_weight is not None and weight_shape is None:
        weight_shape = (None,) + np.shape(sample_weight)[1:] if np.ndim(sample_weight) else ()
    model = loss.to_onnx(dtype="float64", shape=(None,) + y_pred.shape[1:], sample_weight=False if weight_shape is None else weight_shape)
    feeds = {"y_pred": y_pred}
    if loss.uses_y_true():
        feeds["y_true"] = y_true
    if sample_weight is not None:
        feeds["sample_weight"] = np.asarray(sample_weight, dtype=np.float64)
    return run(model, **feeds)[output]


# ---------------------------------------------------------------- Keras' weighted and reduction cases
@pytest.mark.parametrize("reduction,weight,expected", [
    (None, None, 49.5),
    (None, 2.3, 113.85),
    (None, [[1.2], [3.4]], 767.8 / 6),
    (None, 0.0, 0.0),
    ("none", 2.3, [84.3333, 143.3666]),
    ("sum", 2.3, 227.69998),
    ("mean_with_sample_weight", [[1.2], [3.4]], (110 / 3 * 1.2 + 187 / 3 * 3.4) / (1.2 + 3.4)),
])
def test_keras_mean_squared_error_weights_and_reductions(reduction, weight, expected):
    loss = losses.get("MeanSquaredError", **({"reduction": reduction} if reduction else {}))
    got = evaluate(loss, Y, P, weight)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("name,expected", [("mse", 97.833336), ("mae", 13.833333), ("msle", 2.647374)])
def test_keras_timestep_weights_shaped_n_t(name, expected):
    """sample_weight (N, T) against y_pred (N, T, 1): each time step has its own weight."""
    y = np.array([1, 9, 2, -5, -2, 6], np.float64).reshape(2, 3, 1)
    p = np.array([4, 8, 12, 8, 1, 3], np.float64).reshape(2, 3, 1)
    w = np.array([3, 6, 5, 0, 4, 2], np.float64).reshape(2, 3)
    assert evaluate(losses.get(name), y, p, w, weight_shape=(None, 3)) == pytest.approx(expected, rel=1e-6)


def test_weight_shape_is_declared_on_the_onnx_input():
    model = losses.get("mse").to_onnx(shape=(None, 3, 1), sample_weight=(None, 3))
    w = next(i for i in model.graph.input if i.name == "sample_weight")
    dims = [d.dim_value or d.dim_param for d in w.type.tensor_type.shape.dim]
    assert dims[1:] == [3] and isinstance(dims[0], str)
    flat = losses.get("mse").to_onnx(shape=(None, 3), sample_weight=True)
    w = next(i for i in flat.graph.input if i.name == "sample_weight")
    assert len(w.type.tensor_type.shape.dim) == 1
    with pytest.raises(ParameterError, match="start with None"):
        losses.get("mse").to_onnx(sample_weight=(4, 3))
    with pytest.raises(ParameterError, match="sample_weight"):
        losses.get("mse").to_onnx(sample_weight="yes")


# ---------------------------------------------------------------- TF.js computeWeightedLoss
ELEMENTWISE = Y_PRED            # the per-element loss is the prediction itself: y_pred = losses


@pytest.mark.parametrize("losses_,weights,reduction,expected", [
    ([1, 2, 3], None, "SUM_BY_NONZERO_WEIGHTS", 2.0),
    ([1, 2, 3], [0.1, 0, 0.3], "SUM_BY_NONZERO_WEIGHTS", (0.1 + 0.9) / 2),
    ([1, 2, 3], [0.1, 0.2, 0.3], "MEAN", (0.1 + 0.4 + 0.9) / 0.6),
    ([1, 2, 3], [0.1, 0.2, 0.3], "sum", 1.4),
    ([1, 2, 3], [0.1, 0.2, 0.3], "none", [0.1, 0.4, 0.9]),
    ([[4, 8, 12], [8, 1, 3]], [[1, 0, 2], [-5, 0, 6]], "sum_by_nonzero_weights", (4 + 24 - 40 + 18) / 4),
    ([[0, 0, 1], [1, 0, 0], [0, 1, 0]], [[0.1, 0.2, 0.3]], "sum_by_nonzero_weights", 0.06666667),
    ([[0, 0, 1], [1, 0, 0], [0, 1, 0]], [[0.1, 0.2, 0.3]], "MEAN", (0.3 + 0.1 + 0.2) / (3 * 0.6)),
])
def test_tfjs_compute_weighted_loss(losses_, weights, reduction, expected):
    reduction = {"MEAN": "weighted_mean"}.get(reduction, reduction)      # TF.js' MEAN is sum(w*l)/sum(w)
    loss = Loss(ELEMENTWISE, reduction=reduction)
    values = np.asarray(losses_, np.float64)
    shape = None
    if weights is not None and np.shape(weights)[0] == 1 and values.shape[0] != 1:
        shape = (1,) + np.shape(weights)[1:]
    got = evaluate(loss, None, values, weights, weight_shape=shape)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_sum_by_nonzero_weights_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3, 2))
    w = rng.uniform(size=(4, 3)) * (rng.uniform(size=(4, 3)) > 0.4)
    loss = losses.get("log_cosh", reduction="sum_by_nonzero_weights")

    def ref(pred):
        per = np.log(np.cosh(pred - y)).mean(-1)
        return (per * w).sum() / np.count_nonzero(w)
    got = evaluate(loss, y, p, w, weight_shape=(None, 3), output="grad_y_pred")
    np.testing.assert_allclose(got, central_fd(ref, p), rtol=1e-6, atol=1e-9)
    assert evaluate(loss, y, p, w, weight_shape=(None, 3)) == pytest.approx(ref(p), rel=1e-12)
    assert evaluate(loss, y, p, np.zeros_like(w), weight_shape=(None, 3)) == 0.0


def test_reduction_spellings():
    assert losses.get("mse", reduction="SUM_BY_NONZERO_WEIGHTS").reduction == "sum_by_nonzero_weights"
    assert losses.get("mse", reduction="mean_with_sample_weight").reduction == "weighted_mean"
    assert Loss("(y_pred - y_true)**2", reduction=None).reduction == "none"
    with pytest.raises(ParameterError, match="SUM_BY_NONZERO_WEIGHTS"):
        Loss("(y_pred - y_true)**2", reduction="average")


# ---------------------------------------------------------------- Dice and Tversky (Keras)
SEG_Y = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]], np.float64)
SEG_P = np.array([[0, 1, 0, 1], [1, 0, 1, 1], [0, 1, 0, 1], [1, 0, 1, 1]], np.float64)
IMG_Y = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]])
IMG_P = np.array([[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]])
SMALL_Y = np.array([[1, 2], [1, 2]], np.float64)
SMALL_P = np.array([[4, 1], [6, 1]], np.float64)


# Keras <= 3.15.1 swapped Tversky's alpha and beta (reference trap 11); its test values for
# alpha=0.2, beta=0.8 are alpha=0.8, beta=0.2 in the corrected convention used here.
@pytest.mark.parametrize("name,params,y,p,expected", [
    ("dice", {}, SMALL_Y, SMALL_P, -0.55555546),
    ("dice", {}, SEG_Y, SEG_P, 0.77777773),
    ("dice", {"axis": (1, 2, 3), "reduction": "none"}, IMG_Y, IMG_P, [0.5, 0.75757575]),
    ("Dice", {"axis": [1, 2, 3]}, IMG_Y, IMG_P, (0.5 + 0.75757575) / 2),
    ("tversky", {}, SMALL_Y, SMALL_P, -0.55555546),
    ("tversky", {"alpha": 0.8, "beta": 0.2}, SMALL_Y, SMALL_P, -0.29629636),
    ("tversky", {}, SEG_Y, SEG_P, 0.77777773),
    ("tversky", {"axis": (1, 2, 3), "reduction": "none"}, IMG_Y, IMG_P, [0.5, 0.75757575]),
    ("tversky", {"alpha": 0.8, "beta": 0.2}, SEG_Y, SEG_P, 0.7916667),
    ("tversky", {"alpha": 0.8, "beta": 0.2, "axis": (1, 2, 3), "reduction": "none"}, IMG_Y, IMG_P,
     [0.5, 0.7222222]),
])
def test_keras_dice_and_tversky(name, params, y, p, expected):
    got = evaluate(losses.get(name, **params), y, p)
    np.testing.assert_allclose(np.ravel(got), np.ravel(expected), rtol=1e-6)


def test_dice_default_is_one_value_over_the_whole_batch_and_its_gradient():
    assert losses.get("dice").config["axis"] is None
    rng = np.random.default_rng(1)
    y, p = (rng.uniform(size=(3, 4)) > 0.5).astype(float), rng.uniform(0.05, 0.95, (3, 4))

    def ref(pred):
        return 1 - 2 * (y * pred).sum() / (y.sum() + pred.sum() + 1e-7)
    loss = losses.get("dice")
    assert evaluate(loss, y, p) == pytest.approx(ref(p), rel=1e-12)
    np.testing.assert_allclose(evaluate(loss, y, p, output="grad_y_pred"), central_fd(ref, p), rtol=1e-6, atol=1e-9)


def test_axes_parameter_is_checked():
    with pytest.raises(ParameterError, match="'axis'"):
        losses.get("dice", axis=(1, "a"))
    with pytest.raises(ParameterError, match="'axis'"):
        losses.get("tversky", axis=1.5)


# ---------------------------------------------------------------- TF.js core losses
LABELS3 = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], np.float64)
LOGITS3 = np.array([[10.0, -10.0, -10.0], [-10.0, 10.0, -10.0], [-10.0, -10.0, 10.0]])
ROW_W = [[0.1, 0.2, 0.3]]


@pytest.mark.parametrize("name,params,y,p,weights,expected", [
    ("cosineDistance", {"axis": 1}, Y, P, None, ((1 - (4 + 72 + 24)) + (1 - (-40 - 2 + 18))) / 2),
    ("cosine_distance", {"axis": 1}, Y, P, [[3.0], [0.0]], (1 - (4 + 72 + 24)) * 3 / 1),
    ("cosine_distance", {"axis": 1, "reduction": "none"}, Y, P, [[3.0], [0.0]], [(1 - 100) * 3, 0.0]),
    ("cosine_distance", {"axis": 1, "reduction": "mean"}, Y, P, [[3.0], [0.0]], (1 - 100) * 3 / 3),
    ("softmaxCrossEntropy", {}, LABELS3, LOGITS3, None, 20.0),
    ("softmax_cross_entropy", {}, LABELS3, LOGITS3, [[0.1, 0.2, 0.3]] * 3, 4.0),
    ("softmax_cross_entropy", {"reduction": "none"}, LABELS3, LOGITS3, [0.1, 0.2, 0.3], [2.0, 4.0, 6.0]),
    ("softmax_cross_entropy", {"reduction": "MEAN"}, LABELS3, LOGITS3, [0.1, 0.2, 0.3], 20.0),
    ("softmax_cross_entropy", {"labelSmoothing": 0.3, "reduction": "mean"}, LABELS3, LOGITS3, ROW_W, 18.0),
    ("sigmoidCrossEntropy", {}, LABELS3, LOGITS3, None, 6.6667123),
    ("sigmoid_cross_entropy", {}, LABELS3, LOGITS3, ROW_W, 1.3333424),
    ("sigmoid_cross_entropy", {"reduction": "none"}, LABELS3, LOGITS3, ROW_W,
     [[1.0000046, 9.0797803e-06, 3.0000138], [1.0000046, 2.0000093, 1.3619671e-05],
      [4.5398901e-06, 2.0000093, 3.0000138]]),
    ("sigmoid_cross_entropy", {"label_smoothing": 0.3, "reduction": "mean"}, LABELS3, LOGITS3, ROW_W, 6.1667128),
    ("logLoss", {}, np.array([[1.0], [2.0], [3.0]]), np.array([[0.3], [0.6], [0.1]]), None, 2.668788),
    ("log_loss", {}, np.array([[1.0], [2.0], [3.0]]), np.array([[0.3], [0.6], [0.1]]), [0.1, 0.2, 0.3], 0.7168596),
    ("log_loss", {"reduction": "mean"}, np.array([[1.0], [2.0], [3.0]]), np.array([[0.3], [0.6], [0.1]]),
     [0.1, 0.2, 0.3], 3.5842977),
    ("log_loss", {}, np.array([[0.4, 0.8, 0.12], [0.8, 0.1, 0.3]]), np.array([[0.1, 0.7, 0.1], [0.5, 0.05, 0.15]]),
     None, 0.60019904),
    ("log_loss", {}, np.array([[0.4, 0.8, 0.12], [0.8, 0.1, 0.3]]), np.array([[0.1, 0.7, 0.1], [0.5, 0.05, 0.15]]),
     [[3, 0, 5], [0, 4, 2]], 1.8866577),
    ("log_loss", {"reduction": "mean"}, np.array([[0.4, 0.8, 0.12], [0.8, 0.1, 0.3]]),
     np.array([[0.1, 0.7, 0.1], [0.5, 0.05, 0.15]]), [[3, 0, 5], [0, 4, 2]], 0.53904504),
    ("absoluteDifference", {}, Y, P, [[1, 0, 2], [-5, 0, 6]], (3 * 1 + 10 * 2 - 13 * 5 + 3 * 6) / 4),
])
def test_tfjs_core_losses(name, params, y, p, weights, expected):
    shape = None
    if weights is not None and np.shape(weights)[0] == 1 and len(p) != 1:
        shape = (1,) + np.shape(weights)[1:]
    got = evaluate(losses.get(name, **params), y, p, weights, weight_shape=shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


def test_bce_epsilon_mode_add_is_tfjs_log_loss_per_sample():
    y = np.array([[0.4, 0.8, 0.12], [0.8, 0.1, 0.3]])
    p = np.array([[0.1, 0.7, 0.1], [0.5, 0.05, 0.15]])
    assert evaluate(losses.get("bce", epsilon_mode="add"), y, p) == pytest.approx(0.60019904, rel=1e-6)


def test_mean_pairwise_squared_error_against_pairs():
    rng = np.random.default_rng(3)
    y, p = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))

    def ref(pred):
        d = pred - y
        return sum(np.mean([(r[i] - r[j]) ** 2 for i in range(4) for j in range(4) if i < j]) for r in d)
    loss = losses.get("mean_pairwise_squared_error")
    assert evaluate(loss, y, p) == pytest.approx(ref(p), rel=1e-12)
    np.testing.assert_allclose(evaluate(loss, y, p, output="grad_y_pred"), central_fd(ref, p), rtol=1e-6, atol=1e-9)
