"""Stateful metrics (Precision, Recall, F1Score, AUC ROC/PR, MeanIoU) accumulate over an epoch
and equal scikit-learn on the same predictions, batch sizes that do not divide the data included."""
import numpy as np
import pytest

from symgrad.compiler import Sequential, compile_model, layers
from symgrad.compiler.metrics_stateful import AUC, F1Score, MeanIoU, Precision, Recall
from symgrad.runtime import Trainer

metrics_sk = pytest.importorskip("sklearn.metrics")


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(83, 5)).astype(np.float32)
    y = (x[:, :3] @ np.array([[1.0, -1, 0.5], [0.3, 1, -1], [1, 0.2, 1]]) + rng.normal(0, 0.8, (83, 3)) > 0)
    model = Sequential([layers.Dense(3, activation="sigmoid")], input_shape=(5,), seed=1)
    program = compile_model(model, "binary_crossentropy", "sgd",
                            metrics=[Precision(), Recall(name="rec"), F1Score(), F1Score(average="macro", name="f1m"),
                                     AUC(), AUC(curve="PR", name="ap"), "accuracy"])
    return Trainer(program, seed=0), x, y.astype(np.float32)


def test_binary_metrics_equal_scikit_learn_over_the_epoch(binary):
    tr, x, y = binary
    logs = tr.evaluate(x, y, batch_size=10, return_dict=True, verbose=0)
    p = tr.predict(x, verbose=0)
    t, hard = y.ravel(), (p > 0.5).ravel()
    assert logs["precision"] == pytest.approx(metrics_sk.precision_score(t, hard), abs=1e-12)
    assert logs["rec"] == pytest.approx(metrics_sk.recall_score(t, hard), abs=1e-12)
    assert logs["f1_score"] == pytest.approx(metrics_sk.f1_score(t, hard), abs=1e-12)
    assert logs["f1m"] == pytest.approx(metrics_sk.f1_score(y, p > 0.5, average="macro"), abs=1e-12)
    assert logs["auc"] == pytest.approx(metrics_sk.roc_auc_score(t, p.ravel()), abs=1e-9)
    assert logs["ap"] == pytest.approx(metrics_sk.average_precision_score(t, p.ravel()), abs=1e-9)
    assert 0.2 < logs["auc"] < 1 and logs["precision"] > 0


def test_fit_logs_epoch_values_and_train_on_batch(binary):
    tr, x, y = binary
    seen = []

    class Spy:
        def on_train_batch_end(self, batch, logs=None):
            seen.append(dict(logs))

    from symgrad.runtime.callbacks import LambdaCallback
    hist = tr.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, validation_data=(x, y),
                  callbacks=[LambdaCallback(on_train_batch_end=Spy().on_train_batch_end)])
    assert {"precision", "auc", "val_precision", "val_auc", "val_ap"} <= set(hist.history)
    assert "precision" in seen[-1] and "auc" not in seen[-1]         # AUC: epoch logs only
    p = tr.predict(x, verbose=0)
    assert hist.history["val_auc"][-1] == pytest.approx(metrics_sk.roc_auc_score(y.ravel(), p.ravel()), abs=1e-9)
    one = tr.test_on_batch(x[:20], y[:20], return_dict=True)
    p20 = tr.predict(x[:20], verbose=0)
    assert one["auc"] == pytest.approx(metrics_sk.roc_auc_score(y[:20].ravel(), p20.ravel()), abs=1e-9)


def test_ties_and_roc_auc_match_scikit_learn():
    from symgrad.runtime.metric_state import average_precision, roc_auc
    rng = np.random.default_rng(4)
    score = rng.integers(0, 5, 200) / 4.0           # many ties
    label = rng.uniform(size=200) < 0.4
    assert roc_auc(score, label) == pytest.approx(metrics_sk.roc_auc_score(label, score), abs=1e-12)
    assert average_precision(score, label) == pytest.approx(metrics_sk.average_precision_score(label, score),
                                                            abs=1e-12)


def test_mean_iou_equals_jaccard_macro():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(57, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 57)
    labels[labels == 3] = 2                 # class 3 never occurs in y_true
    model = Sequential([layers.Dense(4)], input_shape=(4,), seed=3)
    program = compile_model(model, "sparse_categorical_crossentropy", "sgd",
                            metrics=[MeanIoU(num_classes=4, name="miou"), "mean_iou"])
    tr = Trainer(program)
    logs = tr.evaluate(x, labels, batch_size=8, return_dict=True, verbose=0)
    pred = tr.predict(x, verbose=0).argmax(-1)
    want = metrics_sk.jaccard_score(labels, pred, average="macro")
    assert logs["miou"] == pytest.approx(want, abs=1e-12)
    assert logs["mean_iou"] == pytest.approx(want, abs=1e-12)


def test_stateful_metrics_refuse_mismatched_labels():
    from symgrad.compiler import ParameterError
    model = Sequential([layers.Dense(3)], input_shape=(4,), seed=0)
    with pytest.raises(ParameterError, match="0/1 labels"):
        compile_model(model, "sparse_categorical_crossentropy", "sgd", metrics=[Precision()])
    with pytest.raises(ParameterError, match="num_classes"):
        compile_model(model, "sparse_categorical_crossentropy", "sgd", metrics=[MeanIoU(num_classes=5)])


def test_epoch_metrics_are_monitored_upwards(binary):
    tr, _, _ = binary
    assert tr.metric_direction("ap") == "max" and tr.metric_direction("rec") == "max"
    assert tr.metric_direction("accuracy") is None          # batch metrics: decided by their names
