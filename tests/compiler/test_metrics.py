"""Metrics in the graph against NumPy written here (Keras 3 definitions)."""
import numpy as np
import pytest

from symgrad.compiler import ir, metrics, ops
from symgrad.compiler.emit import OnnxBuilder, emit_values, make_model, check
from symgrad.compiler.errors import ParameterError, UnknownNameError
from symgrad.compiler.loss import Loss, Y_PRED, Y_TRUE

from oracle import run

N, C = 7, 6


def metric_model(metric, sparse, classes=C, dtype="float64", opset=17):
    b = OnnxBuilder(opset, dtype)
    y_pred = ir.input_value("y_pred", ("N", classes))
    y_true = ir.input_value("y_true", ("N",) if sparse else ("N", classes), dtype="int64" if sparse else "float")
    value = metric.build(y_true, y_pred, sparse)
    names = {y_pred.id: b.reserve("y_pred"), y_true.id: b.reserve("y_true")}
    b.reserve("value")
    (src,) = emit_values(b, [value], names)
    b.alias(src, "value")
    sig = [("y_true", y_true.shape, 7 if sparse else None), ("y_pred", y_pred.shape)]
    return check(make_model(b, sig, [("value", ())], "metric"))


def evaluate(metric, y_true, y_pred, sparse, dtype="float64"):
    model = metric_model(metric, sparse, y_pred.shape[1], dtype)
    return float(run(model, y_true=y_true, y_pred=y_pred.astype(dtype))["value"])


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    y_pred = rng.normal(size=(N, C)).round(1)         # rounding makes ties
    y_pred[0, :] = 0.5                                 # a row that is all ties
    labels = rng.integers(0, C, size=N)
    labels[0] = 2
    onehot = np.eye(C)[labels]
    return y_pred, labels, onehot


def np_in_top_k(y_pred, labels, k):
    # Keras ops.in_top_k (numpy backend): the target's score >= the k-th largest score
    kth = -np.sort(-y_pred, axis=-1)[:, k - 1]
    return (y_pred[np.arange(len(labels)), labels] >= kth).astype(float)


def test_sparse_categorical_accuracy(data):
    y_pred, labels, _ = data
    want = np.mean(np.argmax(y_pred, -1) == labels)
    got = evaluate(metrics.get("sparse_categorical_accuracy"), labels.astype(np.int64), y_pred, True)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0 < want < 1


def test_categorical_accuracy_uses_first_maximum(data):
    y_pred, labels, onehot = data
    want = np.mean(np.argmax(y_pred, -1) == np.argmax(onehot, -1))
    assert evaluate(metrics.get("categorical_accuracy"), onehot, y_pred, False) == pytest.approx(want, abs=1e-12)
    # row 0 is all ties: argmax picks class 0, the label is 2, so it is a miss in both
    assert np.argmax(y_pred[0]) == 0


@pytest.mark.parametrize("k", [1, 2, 5, 6])
def test_top_k_accuracy_counts_boundary_ties_in(data, k):
    y_pred, labels, onehot = data
    want = np.mean(np_in_top_k(y_pred, labels, k))
    got_dense = evaluate(metrics.TopKCategoricalAccuracy(k=k), onehot, y_pred, False)
    got_sparse = evaluate(metrics.SparseTopKCategoricalAccuracy(k=k), labels.astype(np.int64), y_pred, True)
    assert got_dense == pytest.approx(want, abs=1e-12)
    assert got_sparse == pytest.approx(want, abs=1e-12)


def test_top_k_default_is_five():
    assert metrics.get("top_k_categorical_accuracy").k == 5
    assert metrics.get("sparse_top_k_categorical_accuracy").k == 5


def test_binary_accuracy_threshold():
    rng = np.random.default_rng(4)
    y_pred = rng.uniform(size=(N, 1))
    y_true = (rng.uniform(size=(N, 1)) > 0.5).astype(float)
    want = np.mean(y_true == (y_pred > 0.5))
    assert evaluate(metrics.get("binary_accuracy"), y_true, y_pred, False) == pytest.approx(want, abs=1e-12)
    want7 = np.mean(y_true == (y_pred > 0.7))
    assert evaluate(metrics.BinaryAccuracy(threshold=0.7), y_true, y_pred, False) == pytest.approx(want7, abs=1e-12)


@pytest.mark.parametrize("name,fn", [("mae", lambda t, p: np.mean(np.abs(t - p))),
                                     ("mse", lambda t, p: np.mean((t - p) ** 2)),
                                     ("mean_squared_error", lambda t, p: np.mean((t - p) ** 2))])
def test_regression_metrics(name, fn):
    rng = np.random.default_rng(5)
    y_true, y_pred = rng.normal(size=(N, 3)), rng.normal(size=(N, 3))
    m = metrics.get(name)
    assert m.name == name                              # logged under the user's name, as Keras
    assert evaluate(m, y_true, y_pred, False) == pytest.approx(fn(y_true, y_pred), rel=1e-12)


def test_float32_metric_graph(data):
    y_pred, labels, _ = data
    got = evaluate(metrics.get("sparse_categorical_accuracy"), labels.astype(np.int64), y_pred, True, "float32")
    assert got == pytest.approx(np.mean(np.argmax(y_pred, -1) == labels), abs=1e-6)


@pytest.mark.parametrize("opset", [13, 21])
def test_metric_graphs_pass_checker_at_opsets(opset):
    for name in ["sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy"]:
        metric_model(metrics.get(name), True, opset=opset, dtype="float32")
    for name in ["categorical_accuracy", "top_k_categorical_accuracy", "binary_accuracy", "mae", "mse"]:
        metric_model(metrics.get(name), False, opset=opset, dtype="float32")


def _loss(labels="dense", **attrs):
    loss = Loss((Y_PRED - Y_TRUE) ** 2 if labels == "dense" else
                -ops.sum(ops.one_hot(Y_TRUE, Y_PRED) * ops.log_softmax(Y_PRED)), labels=labels)
    for k, v in attrs.items():
        setattr(loss, k, v)
    return loss


def test_accuracy_resolves_from_loss_and_shape_as_keras():
    assert isinstance(metrics.get("accuracy", _loss("sparse"), ("N", 10)), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.get("acc", _loss(), ("N", 10)), metrics.CategoricalAccuracy)
    binary = metrics.get("accuracy", _loss(), ("N", 1))
    assert isinstance(binary, metrics.BinaryAccuracy) and binary.threshold == 0.5
    assert metrics.get("acc", _loss(), ("N", 1)).name == "acc"
    # a loss on logits: the resolved binary accuracy thresholds the logit at 0
    assert metrics.get("accuracy", _loss(config={"from_logits": True}), ("N", 1)).threshold == 0.0


def test_catalogue_loss_from_logits_reaches_accuracy():
    from symgrad.compiler import losses
    bce = losses.get("binary_crossentropy", from_logits=True)
    assert metrics.get("accuracy", bce, ("N", 1)).threshold == 0.0
    assert metrics.get("accuracy", losses.get("binary_crossentropy"), ("N", 1)).threshold == 0.5


def test_metric_errors_are_clear():
    with pytest.raises(UnknownNameError, match="'mae'"):
        metrics.get("maee")
    with pytest.raises(ParameterError, match="integer class labels"):
        metric_model(metrics.get("sparse_categorical_accuracy"), sparse=False)
    with pytest.raises(ParameterError, match="shaped like y_pred"):
        metric_model(metrics.get("mae"), sparse=True)
    with pytest.raises(ParameterError, match="used twice"):
        metrics.get_list(["mae", "mae"])
    with pytest.raises(ParameterError, match="k"):
        metrics.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ParameterError, match="metric must be"):
        metrics.get(3.5)
