"""Behaviour of each built-in callback (Keras semantics) on real training runs."""
import csv
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from handmade import make_bundle, toy_data
from symgrad.compiler.errors import ParameterError
from symgrad.runtime import Trainer, callbacks
from symgrad.runtime.callbacks import progbar_logger
from test_trainer_numerics import reference_fit


class Script(callbacks.Callback):
    """Writes a scripted value into the epoch logs (before the callbacks under test) and
    records the weights at every epoch end."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values, self.weights = key, values, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights.append(self.trainer.get_weights())


@pytest.fixture
def data():
    return toy_data(40)


def run(data, cbs, epochs, bundle=None, **kw):
    x, y = data
    tr = Trainer(bundle or make_bundle(learning_rate=0.05), seed=0)
    h = tr.fit(x, y, epochs=epochs, batch_size=10, verbose=0, callbacks=cbs, **kw)
    return tr, h


# ------------------------------------------------------------ EarlyStopping

def test_early_stopping_restores_the_best_weights(data):
    script = Script("score", [1.0, 0.5, 0.6, 0.7, 0.4, 0.3])
    es = callbacks.EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=True)
    tr, h = run(data, [script, es], epochs=6)
    assert es.stopped_epoch == 3 and len(h.epoch) == 4 and es.best == 0.5 and es.best_epoch == 1
    for got, want in zip(tr.get_weights(), script.weights[1]):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(script.weights[3][0], script.weights[1][0])


def test_early_stopping_without_restore_keeps_the_last_weights(data):
    script = Script("score", [1.0, 0.5, 0.6, 0.7])
    es = callbacks.EarlyStopping(monitor="score", mode="min", patience=2)
    tr, _ = run(data, [script, es], epochs=4)
    for got, want in zip(tr.get_weights(), script.weights[3]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kwargs, values, stopped", [
    ({"baseline": 0.3, "patience": 2}, [1.0, 0.5, 0.6, 0.7, 0.8], 2),          # never beats the baseline
    ({"patience": 2}, [1.0, 0.5, 0.6, 0.7, 0.8], 3),                           # the same without a baseline
    ({"min_delta": 0.1, "patience": 1}, [1.0, 0.95, 0.9, 0.8], 1),             # 0.05 is no improvement
    ({"start_from_epoch": 2, "patience": 1}, [1.0, 2.0, 3.0, 4.0, 5.0], 3),    # epochs 0 and 1 not watched
    ({"mode": "max", "patience": 1}, [1.0, 2.0, 1.5, 3.0], 2),
    ({"patience": 0}, [1.0, 0.9, 0.95, 0.5], 2),
])
def test_early_stopping_keras_semantics(data, kwargs, values, stopped):
    es = callbacks.EarlyStopping(monitor="score", **{"mode": "min", **kwargs})
    _, h = run(data, [Script("score", values), es], epochs=len(values))
    assert es.stopped_epoch == stopped and len(h.epoch) == stopped + 1


def test_early_stopping_on_real_validation_loss(data):
    x, y = data
    es = callbacks.EarlyStopping(patience=1, restore_best_weights=True)    # monitor val_loss, mode auto -> min
    tr, h = run(data, [es], epochs=40, validation_data=(x, y), bundle=make_bundle(learning_rate=2.0))
    best = int(np.argmin(h.history["val_loss"]))
    assert es.best_epoch == best and len(h.epoch) < 40
    assert tr.evaluate(x, y, verbose=0)[0] == pytest.approx(min(h.history["val_loss"]), rel=1e-6)


def test_monitor_direction_and_bad_modes(data):
    es = callbacks.EarlyStopping(monitor="val_accuracy")
    x, y = data
    run(data, [es], epochs=1, validation_data=(x, y))
    assert es.monitor_op(2, 1)                  # accuracy goes up
    with pytest.raises(ParameterError, match="mode"):
        callbacks.EarlyStopping(mode="best")
    with pytest.raises(ParameterError, match="go up or down"):
        run(data, [Script("zork", [1.0]), callbacks.EarlyStopping(monitor="zork")], epochs=1)
    with pytest.warns(UserWarning, match="not in the logs"):
        run(data, [callbacks.EarlyStopping(monitor="val_loss")], epochs=1)


# ------------------------------------------------------------ ModelCheckpoint

def test_model_checkpoint_writes_loadable_onnx_per_epoch(data, tmp_path):
    x, y = data
    preds = []
    rec = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: preds.append(rec.trainer.predict(x, verbose=0)))
    mc = callbacks.ModelCheckpoint(str(tmp_path / "ckpt" / "ep{epoch:02d}-{val_loss:.4f}.onnx"))
    _, h = run(data, [rec, mc], epochs=3, validation_data=(x, y))
    names = [f"ep{e + 1:02d}-{v:.4f}.onnx" for e, v in enumerate(h.history["val_loss"])]
    assert sorted(os.listdir(tmp_path / "ckpt")) == sorted(names)
    for name, want in zip(names, preds):
        path = str(tmp_path / "ckpt" / name)
        onnx.checker.check_model(onnx.load(path), full_check=True)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        assert [i.name for i in sess.get_inputs()] == ["x"]
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-6, atol=1e-6)


def test_model_checkpoint_save_best_only(data, tmp_path):
    script = Script("val_acc", [0.5, 0.7, 0.6, 0.9])
    mc = callbacks.ModelCheckpoint(str(tmp_path / "best_{epoch}.onnx"), monitor="val_acc", save_best_only=True)
    run(data, [script, mc], epochs=4)
    assert sorted(os.listdir(tmp_path)) == ["best_1.onnx", "best_2.onnx", "best_4.onnx"]
    mc = callbacks.ModelCheckpoint(str(tmp_path / "one.onnx"), monitor="val_acc", mode="min", save_best_only=True)
    run(data, [Script("val_acc", [0.5, 0.7, 0.4]), mc], epochs=3)
    assert len(mc.saved) == 2


def test_model_checkpoint_every_n_batches_and_errors(data, tmp_path):
    mc = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}b{batch}.onnx"), save_freq=3)
    run(data, [mc], epochs=2)                      # 4 batches per epoch: saves after batches 3, 6 (=e2 b2)
    assert sorted(os.listdir(tmp_path)) == ["e1b3.onnx", "e2b2.onnx"]
    with pytest.raises(ParameterError, match=".onnx"):
        callbacks.ModelCheckpoint("model.keras")
    with pytest.raises(ParameterError, match="val_loss"):
        run(data, [callbacks.ModelCheckpoint(str(tmp_path / "{val_loss}.onnx"))], epochs=1)


# ------------------------------------------------------------ learning-rate callbacks

def test_reduce_lr_on_plateau(data):
    script = Script("score", [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    rl = callbacks.ReduceLROnPlateau(monitor="score", mode="min", factor=0.5, patience=1, min_lr=0.01)
    lrs = []
    rec = callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: lrs.append(rec.trainer.learning_rate))
    tr, h = run(data, [rec, script, rl], epochs=7)
    assert lrs == pytest.approx([0.05, 0.05, 0.025, 0.0125, 0.0125, 0.01, 0.01])
    assert h.history["learning_rate"] == pytest.approx(lrs)
    assert tr._hyper_np["learning_rate"] == np.float32(0.01)
    with pytest.raises(ParameterError, match="factor"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_cooldown(data):
    script = Script("score", [1.0] * 6)
    rl = callbacks.ReduceLROnPlateau(monitor="score", mode="min", factor=0.5, patience=1, cooldown=2)
    _, h = run(data, [script, rl], epochs=6)
    assert h.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125])


def test_learning_rate_scheduler_changes_the_updates(data):
    x, y = data
    b = make_bundle(learning_rate=0.1)
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5)
    tr = Trainer(b)
    h = tr.fit(x, y, epochs=3, batch_size=10, shuffle=False, verbose=0, callbacks=[sched])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    w, _, _ = reference_fit(b, x, y, None, 3, 10, None, "sgd", lr_at=lambda step: 0.1 * 0.5 ** ((step - 1) // 4))
    np.testing.assert_allclose(tr.state_dict()["dense/kernel"], w["dense/kernel"], rtol=2e-4, atol=2e-6)
    old_style = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    _, h = run(data, [old_style], epochs=2)
    assert h.history["learning_rate"] == pytest.approx([0.01, 0.02])
    with pytest.raises(ParameterError, match="finite float"):
        run(data, [callbacks.LearningRateScheduler(lambda e, lr: "fast")], epochs=1)


# ------------------------------------------------------------ CSVLogger

def test_csv_logger_content(data, tmp_path):
    x, y = data
    path = tmp_path / "log.csv"
    _, h = run(data, [callbacks.CSVLogger(str(path))], epochs=3, validation_data=(x, y))
    rows = list(csv.reader(open(path, newline="")))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    for key in ("accuracy", "loss", "val_accuracy", "val_loss"):
        col = rows[0].index(key)
        assert [float(r[col]) for r in rows[1:]] == h.history[key]       # exact: repr round-trips
    _, h2 = run(data, [callbacks.CSVLogger(str(path), append=True, separator=",")], epochs=2,
                validation_data=(x, y))
    rows = list(csv.reader(open(path, newline="")))
    assert len(rows) == 1 + 3 + 2 and rows[4][0] == "0"
    assert [p for p in os.listdir(tmp_path) if p != "log.csv"] == []        # no temporary files left


def test_csv_logger_separator_and_missing_values(data, tmp_path):
    path = tmp_path / "log.tsv"
    script = Script("extra", [1.5, None])
    run(data, [script, callbacks.CSVLogger(str(path), separator="\t")], epochs=2)
    lines = open(path).read().splitlines()
    assert lines[0].split("\t") == ["epoch", "accuracy", "extra", "loss"]
    assert lines[1].split("\t")[2] == "1.5" and lines[2].split("\t")[2] == ""


# ------------------------------------------------------------ TerminateOnNaN

def test_terminate_on_nan_stops_and_keeps_the_last_good_state(data):
    x, y = data
    batches = [(x[:10], y[:10]), (x[10:20], y[10:20]), (np.full((10, 4), 3e38, np.float32), y[20:30]),
               (x[30:], y[30:])]
    after = []
    rec = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: after.append(rec.trainer.get_weights()))
    ton = callbacks.TerminateOnNaN()
    tr = Trainer(make_bundle())
    h = tr.fit(batches, epochs=3, verbose=0, callbacks=[rec, ton])
    assert ton.terminated_batch == 2 and tr.step == 2 and len(after) == 3
    assert all(np.isfinite(w).all() for w in tr.get_weights())
    assert not all(np.isfinite(w).all() for w in after[2])          # the bad step had poisoned the weights
    for got, want in zip(tr.get_weights(), after[1]):
        np.testing.assert_array_equal(got, want)
    assert not np.isfinite(h.history["loss"][0]) and len(h.epoch) == 1
    with pytest.raises(RuntimeError, match="loss is (nan|inf)"):
        Trainer(make_bundle()).fit(batches, epochs=1, verbose=0, callbacks=[callbacks.TerminateOnNaN(raise_error=True)])


# ------------------------------------------------------------ LambdaCallback, ProgbarLogger

def test_lambda_callback_checks_its_arguments():
    with pytest.raises(ParameterError, match="unknown hook"):
        callbacks.LambdaCallback(on_epoch_middle=print)
    with pytest.raises(ParameterError, match="must be a function"):
        callbacks.LambdaCallback(on_epoch_end=3)
    cb = callbacks.LambdaCallback(onEpochEnd=print)
    assert cb.active_hooks() == {"on_epoch_end"}


def test_progbar_verbose_modes(data, capsys, monkeypatch):
    x, y = data
    tr = Trainer(make_bundle())
    tr.fit(x, y, epochs=2, batch_size=10, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "4/4" in err
    tr.fit(x, y, epochs=2, batch_size=10, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("Epoch 2/2") and "loss: " in out[1]
    monkeypatch.setattr(progbar_logger, "tqdm", None)
    tr.fit(x, y, epochs=1, batch_size=10, verbose=1)
    assert capsys.readouterr().out.startswith("Epoch 1/1")
    tr.evaluate(x, y, verbose=1)
    assert "Evaluate" in capsys.readouterr().out
