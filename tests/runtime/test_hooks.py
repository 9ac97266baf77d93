"""Hook order and stop_training checks, as the Keras fit loop in the reference
(shared/reference/callbacks-and-layers.md §2.1); TF.js names; batch hooks that cost nothing."""
import pytest

from handmade import make_bundle, toy_data
from symgrad.compiler.errors import ParameterError
from symgrad.runtime import Trainer, callbacks
from symgrad.runtime.callbacks import Callback, CallbackList


class Recorder(Callback):
    def __init__(self, stop_at=None):
        super().__init__()
        self.events = []
        self.stop_at = stop_at           # ("batch", epoch, batch) or ("epoch", epoch)
        self._epoch = None

    def _log(self, *event):
        self.events.append(event)

    def on_train_begin(self, logs=None):
        self._log("train_begin")

    def on_train_end(self, logs=None):
        self._log("train_end", sorted(logs or {}))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._log("epoch_begin", epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._log("epoch_end", epoch, sorted(logs))
        if self.stop_at == ("epoch", epoch):
            self.trainer.stop_training = True

    def on_train_batch_begin(self, batch, logs=None):
        self._log("batch_begin", batch)

    def on_train_batch_end(self, batch, logs=None):
        self._log("batch_end", batch, sorted(logs))
        if self.stop_at == ("batch", self._epoch, batch):
            self.model.stop_training = True          # Keras spelling: self.model is the trainer

    def on_test_begin(self, logs=None):
        self._log("test_begin")

    def on_test_batch_begin(self, batch, logs=None):
        self._log("test_batch_begin", batch)

    def on_test_batch_end(self, batch, logs=None):
        self._log("test_batch_end", batch)

    def on_test_end(self, logs=None):
        self._log("test_end", sorted(logs))


KEYS = ["accuracy", "loss"]
VKEYS = ["accuracy", "loss", "val_accuracy", "val_loss"]


def epoch_events(epoch, batches, val_batches, stop_after=None):
    ev = [("epoch_begin", epoch)]
    for b in range(batches):
        ev += [("batch_begin", b), ("batch_end", b, KEYS)]
        if b == stop_after:
            break
    if val_batches:
        ev.append(("test_begin",))
        for b in range(val_batches):
            ev += [("test_batch_begin", b), ("test_batch_end", b)]
        ev.append(("test_end", KEYS))
    ev.append(("epoch_end", epoch, VKEYS if val_batches else KEYS))
    return ev


@pytest.fixture
def data():
    return toy_data(30)


def fit(data, cb, epochs=2, val=True, **kw):
    x, y = data
    tr = Trainer(make_bundle())
    h = tr.fit(x, y, epochs=epochs, batch_size=10, shuffle=False, verbose=0, callbacks=[cb],
               validation_data=(x[:20], y[:20]) if val else None, validation_batch_size=10, **kw)
    return tr, h


def test_keras_fit_order(data):
    rec = Recorder()
    _, h = fit(data, rec)
    want = [("train_begin",)] + epoch_events(0, 3, 2) + epoch_events(1, 3, 2) + [("train_end", VKEYS)]
    assert rec.events == want
    assert h.epoch == [0, 1] and sorted(h.history) == VKEYS


def test_stop_training_is_checked_after_each_batch(data):
    rec = Recorder(stop_at=("batch", 0, 1))
    tr, h = fit(data, rec, epochs=3)
    # the epoch is cut after batch 1, but validation and on_epoch_end still run; no further epoch
    want = [("train_begin",)] + epoch_events(0, 3, 2, stop_after=1) + [("train_end", VKEYS)]
    assert rec.events == want
    assert tr.step == 2 and len(h.history["loss"]) == 1


def test_stop_training_is_checked_after_each_epoch(data):
    rec = Recorder(stop_at=("epoch", 1))
    tr, h = fit(data, rec, epochs=5, val=False)
    want = [("train_begin",)] + epoch_events(0, 3, 0) + epoch_events(1, 3, 0) + [("train_end", KEYS)]
    assert rec.events == want
    assert tr.step == 6


def test_initial_epoch_and_logs_values(data):
    x, y = data
    seen = {}
    cb = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.setdefault("batch", []).append(logs),
                                  on_epoch_end=lambda e, logs: seen.setdefault("epoch", []).append((e, logs)))
    tr = Trainer(make_bundle())
    h = tr.fit(x, y, epochs=3, initial_epoch=1, batch_size=8, shuffle=False, verbose=0, callbacks=[cb])
    assert [e for e, _ in seen["epoch"]] == [1, 2] and h.epoch == [1, 2]
    # batch logs are running means (Keras); the last one of an epoch equals the epoch mean
    first_epoch = seen["batch"][:4]
    assert first_epoch[-1]["loss"] == pytest.approx(seen["epoch"][0][1]["loss"], rel=1e-12)
    # batch sizes 8, 8, 8, 6: the epoch mean weights them by size
    assert len(first_epoch) == 4


def test_tfjs_camel_case_hooks_and_dict_callbacks(data):
    calls = []

    class TfjsStyle(Callback):
        def onTrainBegin(self, logs=None):
            calls.append("onTrainBegin")

        def onEpochEnd(self, epoch, logs=None):
            calls.append(("onEpochEnd", epoch, round(logs["loss"], 6) == round(logs["loss"], 6)))

        def onBatchEnd(self, batch, logs=None):
            calls.append(("onBatchEnd", batch))

        def onTrainEnd(self, logs=None):
            calls.append("onTrainEnd")
            self.model.stopTraining = True      # TF.js spelling works too

    plain = {"onEpochBegin": lambda epoch, logs: calls.append(("dict", epoch))}
    tr, _ = fit(data, TfjsStyle(), epochs=1, val=False)
    assert calls == ["onTrainBegin"] + [("onBatchEnd", b) for b in range(3)] + [("onEpochEnd", 0, True), "onTrainEnd"]
    assert tr.stop_training is True
    calls.clear()
    x, y = data
    Trainer(make_bundle()).fit(x, y, epochs=2, verbose=0, callbacks=[plain])
    assert calls == [("dict", 0), ("dict", 1)]
    with pytest.raises(ParameterError, match="onEpochEndd"):
        CallbackList([{"onEpochEndd": print}])


def test_legacy_batch_aliases(data):
    seen = []

    class Legacy(Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            seen.append(("end", batch))

    fit(data, Legacy(), epochs=1, val=False)
    assert seen == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1), ("begin", 2), ("end", 2)]


def test_unused_batch_hooks_cost_nothing(data, monkeypatch):
    class EpochOnly(Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    cbl = CallbackList([EpochOnly(), callbacks.EarlyStopping(monitor="loss"), callbacks.BackupAndRestore("/tmp/x")],
                       add_history=True)
    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_end", "on_after_backward"):
        assert not cbl.has(hook)

    def boom(*a, **k):
        raise AssertionError("a batch hook nobody overrides was called")

    for name in ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"):
        monkeypatch.setattr(Callback, name, boom)
    x, y = data
    Trainer(make_bundle()).fit(x, y, epochs=2, verbose=0, callbacks=[EpochOnly()], validation_data=(x, y))


def test_evaluate_and_predict_hooks(data):
    x, y = data
    events = []
    cb = callbacks.LambdaCallback(on_test_begin=lambda logs: events.append("test_begin"),
                                  on_test_end=lambda logs: events.append(("test_end", sorted(logs))),
                                  on_predict_begin=lambda logs: events.append("predict_begin"),
                                  on_predict_batch_end=lambda b, logs: events.append(("pb", b, logs["outputs"].shape)),
                                  on_predict_end=lambda logs: events.append("predict_end"))
    tr = Trainer(make_bundle())
    tr.evaluate(x, y, batch_size=16, verbose=0, callbacks=[cb])
    tr.predict(x, batch_size=16, verbose=0, callbacks=[cb])
    assert events == ["test_begin", ("test_end", KEYS), "predict_begin", ("pb", 0, (16, 3)), ("pb", 1, (14, 3)),
                      "predict_end"]


def test_params_and_history_attribute(data):
    rec = Recorder()
    tr, h = fit(data, rec, epochs=2)
    assert rec.params["epochs"] == 2 and rec.params["steps"] == 3 and rec.params["do_validation"] is True
    assert tr.history is h and rec.trainer is tr and rec.model is tr


def test_callbacks_must_be_callbacks(data):
    x, y = data
    with pytest.raises(ParameterError, match="Callback"):
        Trainer(make_bundle()).fit(x, y, verbose=0, callbacks=[object()])
