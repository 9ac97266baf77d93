"""Property test: random combinations of callbacks keep the fit loop's hook order valid
(Keras order, /work/shared/reference/callbacks-and-layers.md §2.1) and stop_training
takes effect wherever it is set.

Each example draws a schedule (epochs, batch size, validation and its frequency,
initial_epoch), a set of built-in callbacks (EarlyStopping, ReduceLROnPlateau,
LearningRateScheduler, TerminateOnNaN, CSVLogger, ModelCheckpoint, BackupAndRestore,
LambdaCallback, History) and a stopper that sets ``stop_training`` in a random hook
(train begin, epoch begin/end, train batch begin/end, a validation batch, between
backward and update) at a random epoch and batch. Two recorders, one before every other
callback and one after all of them, log each hook and the flag after it ran. The log
must equal the expected Keras schedule, cut where the flag first became True:

- set before or during a train batch: that batch finishes, no later train batch runs;
- the epoch then ends as usual (validation if due, on_epoch_end), then on_train_end;
- set in on_epoch_end or during validation: no later epoch starts.

Profiles: 'ci' (default, CI-sized: EXAMPLES below); HYPOTHESIS_PROFILE=full runs 500.
"""
import math
import os
import tempfile

import numpy as np
from hypothesis import event, given, settings, strategies as st

from symgrad.runtime import Trainer, callbacks
from reliability_kit import classification_data, mlp_classifier

FULL = os.environ.get("HYPOTHESIS_PROFILE") == "full"
EXAMPLES = 500 if FULL else 80
N = 24
X, Y = classification_data(N)
PROGRAM = None


def program():
    global PROGRAM
    if PROGRAM is None:
        PROGRAM = mlp_classifier()
    return PROGRAM


class Recorder(callbacks.Callback):
    """Logs every hook with its index and whether stop_training is set after it."""

    def __init__(self, events, split, last):
        super().__init__()
        self.events, self.split = events, split
        self.run_last = last                    # the second recorder runs after every other callback

    def _log(self, name, index=None):
        if self.run_last:
            self.events.append((name, index, bool(self.trainer.stop_training)))
        else:
            self.events.append((name, index, None))

    def active_hooks(self):
        hooks = super().active_hooks()
        return hooks if self.split else hooks - {"on_after_backward", "on_before_optimizer_step"}

    def on_train_begin(self, logs=None):
        self._log("train_begin")

    def on_train_end(self, logs=None):
        self._log("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self._log("epoch_begin", epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._log("epoch_end", epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self._log("batch_begin", batch)

    def on_after_backward(self, batch, logs=None):
        self._log("after_backward", batch)

    def on_before_optimizer_step(self, batch, logs=None):
        self._log("before_step", batch)

    def on_train_batch_end(self, batch, logs=None):
        self._log("batch_end", batch)

    def on_test_begin(self, logs=None):
        self._log("test_begin")

    def on_test_batch_begin(self, batch, logs=None):
        self._log("test_batch_begin", batch)

    def on_test_batch_end(self, batch, logs=None):
        self._log("test_batch_end", batch)

    def on_test_end(self, logs=None):
        self._log("test_end")


class Stopper(callbacks.Callback):
    """Sets stop_training in ``hook`` at the given epoch and batch (its n-th call there)."""

    def __init__(self, hook, epoch, batch, events):
        super().__init__()
        self.hook, self.at_epoch, self.at_batch = hook, epoch, batch
        self.epoch = None
        self.events = events            # the last recorder's log: its length is the current event's index
        self.fired_at = None

    def active_hooks(self):
        return {"on_epoch_begin", self.hook}

    def _stop(self):
        if self.fired_at is None:
            self.fired_at = len(self.events)
        self.trainer.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.hook == "on_epoch_begin" and epoch == self.at_epoch:
            self._stop()

    def _maybe(self, index):
        if self.epoch == self.at_epoch and index in (None, self.at_batch):
            self._stop()

    def on_train_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._maybe(None)

    def on_train_batch_begin(self, batch, logs=None):
        self._maybe(batch)

    def on_train_batch_end(self, batch, logs=None):
        self._maybe(batch)

    def on_test_batch_end(self, batch, logs=None):
        self._maybe(batch)

    def on_after_backward(self, batch, logs=None):
        self._maybe(batch)


def schedule(epochs, initial_epoch, steps, val_steps, validation_freq, split):
    ev = [("train_begin", None)]
    for e in range(initial_epoch, epochs):
        ev.append(("epoch_begin", e))
        for b in range(steps):
            ev.append(("batch_begin", b))
            if split:
                ev += [("after_backward", b), ("before_step", b)]
            ev.append(("batch_end", b))
        if val_steps and (e + 1) % validation_freq == 0:
            ev.append(("test_begin", None))
            for b in range(val_steps):
                ev += [("test_batch_begin", b), ("test_batch_end", b)]
            ev.append(("test_end", None))
        ev.append(("epoch_end", e))
    ev.append(("train_end", None))
    return ev


def cut(ev, s):
    """The Keras loop's events when stop_training became True after event ``s``."""
    if ev[s][0] in ("epoch_end", "train_end"):
        return ev[:s + 1] + ([("train_end", None)] if ev[s][0] == "epoch_end" else [])
    out, i = ev[:s + 1], s + 1
    if ev[s][0] != "batch_end":
        while ev[i][0] not in ("batch_end", "epoch_end"):  # the current batch (or the epoch's first) finishes
            out.append(ev[i])
            i += 1
        if ev[i][0] == "batch_end":
            out.append(ev[i])
            i += 1
    while ev[i][0] in ("batch_begin", "after_backward", "before_step", "batch_end"):
        i += 1                                              # no later train batch
    while ev[i][0] != "epoch_end":                          # validation, if due, still runs
        out.append(ev[i])
        i += 1
    return out + [ev[i], ("train_end", None)]


HOOKS = [None, "on_train_batch_end", "on_train_batch_begin", "on_epoch_end", "on_epoch_begin", "on_test_batch_end",
         "on_after_backward", "on_train_begin"]


BUILTINS = ["early_stopping", "reduce_lr", "scheduler", "nan", "csv", "checkpoint", "backup", "lambda", "history"]


def setup_from(seed):
    """A uniform draw of the whole setup from one integer: hypothesis' own choices lean to
    the smallest values, and this test is after coverage of every stop point."""
    rng = np.random.default_rng(seed)
    epochs = int(rng.integers(1, 5))
    initial_epoch = int(rng.integers(0, epochs))
    batch_size = int(rng.choice([5, 8, 12, 24, 30]))
    steps = math.ceil(N / batch_size)
    hook = HOOKS[int(rng.integers(len(HOOKS)))]
    # mostly a point the run reaches, sometimes one past its end
    past = rng.random() < 0.15
    stop_epoch = int(rng.integers(0, epochs - initial_epoch + past))
    stop_batch = int(rng.integers(0, (3 if hook == "on_test_batch_end" else steps) + past))
    return {
        "epochs": epochs, "initial_epoch": initial_epoch, "batch_size": batch_size,
        "validation": bool(rng.random() < 0.6), "validation_freq": int(rng.integers(1, 3)),
        "split": bool(rng.random() < 0.4), "stop": (hook, stop_epoch, stop_batch),
        "builtins": sorted(set(rng.choice(BUILTINS, size=int(rng.integers(0, 6))).tolist())),
        "patience": int(rng.integers(0, 3)), "order_seed": int(rng.integers(1000)),
    }


def builtin_callbacks(names, patience, folder, log):
    make = {
        "early_stopping": lambda: callbacks.EarlyStopping(monitor="loss", patience=patience, min_delta=0.05),
        "reduce_lr": lambda: callbacks.ReduceLROnPlateau(monitor="loss", patience=patience, factor=0.5),
        "scheduler": lambda: callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.9),
        "nan": lambda: callbacks.TerminateOnNaN(),
        "csv": lambda: callbacks.CSVLogger(os.path.join(folder, "log.csv")),
        "checkpoint": lambda: callbacks.ModelCheckpoint(os.path.join(folder, "m.onnx"), monitor="loss"),
        "backup": lambda: callbacks.BackupAndRestore(os.path.join(folder, "backup")),
        "lambda": lambda: callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: log.append((epoch, logs))),
        "history": lambda: callbacks.History(),
    }
    return [make[n]() for n in sorted(names)]


@settings(max_examples=EXAMPLES)
@given(seed=st.integers(0, 2**32 - 1))
def test_hook_order_and_stop_training_under_random_callbacks(seed):
    setup = setup_from(seed)
    events_pre, events_post, lambda_log = [], [], []
    pre, post = Recorder(events_pre, setup["split"], False), Recorder(events_post, setup["split"], True)
    hook, stop_epoch, stop_batch = setup["stop"]
    with tempfile.TemporaryDirectory() as folder:
        cbs = builtin_callbacks(setup["builtins"], setup["patience"], folder, lambda_log)
        stopper = None
        if hook is not None:
            stopper = Stopper(hook, stop_epoch + setup["initial_epoch"], stop_batch, events_post)
            cbs.append(stopper)
        np.random.default_rng(setup["order_seed"]).shuffle(cbs)
        tr = Trainer(program(), seed=0)
        val = (X[:10], Y[:10]) if setup["validation"] else None
        h = tr.fit(X, Y, epochs=setup["epochs"], initial_epoch=setup["initial_epoch"],
                   batch_size=setup["batch_size"], validation_data=val, validation_batch_size=4,
                   validation_freq=setup["validation_freq"], shuffle=True, verbose=0, callbacks=[pre] + cbs + [post])
        csv_rows = open(os.path.join(folder, "log.csv")).read().splitlines() if "csv" in setup["builtins"] else None

    steps, val_steps = math.ceil(N / setup["batch_size"]), (3 if val is not None else 0)
    full = schedule(setup["epochs"], setup["initial_epoch"], steps, val_steps, setup["validation_freq"],
                    setup["split"])
    flags = [f for *_, f in events_post]
    stopped = flags.index(True) if True in flags else None
    want = full if stopped is None else cut(full, stopped)
    got = [(name, index) for name, index, _ in events_post]
    event(f"stopped after {full[stopped][0] if stopped is not None else 'nothing'}")
    event(f"validation every {setup['validation_freq']} over {setup['epochs'] - setup['initial_epoch']} epochs"
          if val is not None else "no validation")
    assert got == want, (setup, stopped)
    # every callback saw the same hooks: the first recorder agrees with the last
    assert [(name, index) for name, index, _ in events_pre] == got
    # the stopper's request took effect at the hook where it was made (or someone stopped earlier)
    if stopper is not None and stopper.fired_at is not None:
        assert stopped is not None and stopped <= stopper.fired_at and tr.stop_training
    # History and the epoch logs follow the epochs that ended
    ended = [i for name, i in got if name == "epoch_end"]
    validated = [e for e in ended if val is not None and (e + 1) % setup["validation_freq"] == 0]
    assert h.epoch == ended and len(h.history["loss"]) == len(ended)
    assert len(h.history.get("val_loss", [])) == len(validated)
    if lambda_log:
        assert [e for e, _ in lambda_log] == ended and all("loss" in logs for _, logs in lambda_log)
    if csv_rows is not None:
        assert len(csv_rows) == 1 + len(ended)
