"""Faults during training.

- A loss that turns Inf under TerminateOnNaN stops training at that batch and keeps the
  last good state: weights, optimizer slots and step equal the state before the bad step.
- SIGKILL in the middle of a checkpoint write (a real SIGKILL, to a child process whose
  write stalls half-way), then a resumed run: the half-written file never replaces the
  last complete checkpoint, and the resumed run ends bit for bit where an uninterrupted
  run ends (no epoch, batch, learning-rate change or history entry lost).
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from symgrad.compiler import Sequential, compile_model, layers, optimizers
from symgrad.runtime import Trainer, callbacks
from symgrad.runtime.checkpoint import read_checkpoint
from reliability_kit import mlp_classifier, sigkill_at_marker

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reliability_ckpt_worker.py")


# ------------------------------------------------------------------ NaN / Inf


class Snapshots(callbacks.Callback):
    """The full state (weights and optimizer slots) and step before every batch."""

    def __init__(self):
        super().__init__()
        self.before, self.losses = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.before.append((self.trainer.step, self.trainer.state_dict()))

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


def _data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    return x, x @ np.array([[1.0], [-2.0], [0.5]], np.float32)


def _batch(step):
    x, y = _data()
    k = step % 8
    return x[8 * k:8 * k + 8], y[8 * k:8 * k + 8]


def _diverging_run(optimizer, terminate):
    """Linear regression with a learning rate that makes the weights grow ~100x a step:
    they stay finite while the squared error overflows float32 to Inf after a few steps."""
    model = Sequential([layers.Dense(1)], input_shape=(3,))
    program = compile_model(model, "mse", optimizer, seed=0)
    x, y = _data()
    tr = Trainer(program, seed=0)
    snap = Snapshots()
    cbs = [snap] + ([terminate] if terminate is not None else [])
    h = tr.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0, callbacks=cbs)
    return tr, snap, h


@pytest.mark.parametrize("optimizer", [optimizers.SGD(60.0), optimizers.SGD(40.0, momentum=0.5),
                                       optimizers.SGD(200.0, momentum=0.9, nesterov=True)],
                         ids=["sgd", "momentum", "nesterov"])
def test_terminate_on_nan_keeps_the_last_good_state(optimizer):
    terminate = callbacks.TerminateOnNaN()
    tr, snap, h = _diverging_run(optimizer, terminate)
    losses = np.array(snap.losses)
    bad_step = len(losses) - 1                                     # global index of the bad batch
    assert not math.isfinite(losses[-1]) and np.isfinite(losses[:-1]).all() and bad_step >= 3
    assert terminate.terminated_batch == bad_step % 8              # stopped at once: no batch after it
    assert h.epoch == list(range(bad_step // 8 + 1))               # and no further epoch ran
    step_before, state_before = snap.before[-1]
    assert len(snap.before) == len(losses) and tr.step == step_before == bad_step
    final = tr.state_dict()
    assert set(final) == set(state_before)
    for name, value in state_before.items():
        assert np.array_equal(final[name], value), name            # weights and slots, bit for bit
        assert np.isfinite(final[name]).all(), name
    # the kept state is the one that trained on: one more step from it repeats the bad loss
    again = tr.train_on_batch(*_batch(bad_step))
    assert not math.isfinite(again)


def test_without_terminate_on_nan_the_run_goes_on():
    """The control: the same run without the callback trains on through the Inf losses,
    so the test above sees the callback's effect and not the data's."""
    tr, snap, h = _diverging_run(optimizers.SGD(40.0, momentum=0.5), None)
    assert len(snap.losses) == 40 and h.epoch == [0, 1, 2, 3, 4]
    assert not np.isfinite(snap.losses).all()


def test_terminate_on_nan_can_raise_a_clear_error():
    terminate = callbacks.TerminateOnNaN(raise_error=True)
    with pytest.raises(Exception) as info:
        _diverging_run(optimizers.SGD(40.0, momentum=0.5), terminate)
    assert "loss is inf" in str(info.value).lower() and "batch" in str(info.value)


# ------------------------------------------------------------------ SIGKILL mid-write


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("fault-bundle") / "bundle"
    mlp_classifier(optimizer=optimizers.Adam(0.05)).save(str(path))
    return str(path)


def _run(args, timeout=120):
    proc = subprocess.run([sys.executable, WORKER] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc


def _kill_mid_write(args, marker, timeout=120):
    """Start the worker, wait until its stalled write is half done, SIGKILL it."""
    proc = subprocess.Popen([sys.executable, WORKER] + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    sigkill_at_marker(proc, marker, "write", timeout)
    with open(marker) as f:
        return int(f.read())            # the size the checkpoint would have had


# 40 samples in batches of 8: 5 steps an epoch, 20 in all. save_freq 3: the k-th save is
# after step 3k; "epoch": after epoch k (step 5k).
@pytest.mark.parametrize("save_freq,double,stall_at,saved_step", [
    (3, "0", 4, 9),              # killed while writing the step-12 checkpoint (mid-epoch 2)
    ("epoch", "0", 3, 10),       # killed while writing the end-of-epoch-3 checkpoint
    (3, "1", 4, 9),              # double_checkpoint: the latest was moved aside first
], ids=["mid-epoch", "epoch-end", "double-checkpoint"])
def test_sigkill_during_a_checkpoint_write_then_resume(tmp_path, bundle_path, save_freq, double, stall_at,
                                                       saved_step):
    ref, out = tmp_path / "ref.npz", tmp_path / "resumed.npz"
    backup, marker = tmp_path / "backup", tmp_path / "stalled"
    _run([bundle_path, ref, tmp_path / "ref-backup", save_freq, double, 0, "-"])

    full_size = _kill_mid_write([bundle_path, out, backup, save_freq, double, stall_at, marker], marker)
    names = os.listdir(backup)
    partial = [n for n in names if n.startswith(".tmp-")]
    assert len(partial) == 1 and os.path.getsize(backup / partial[0]) == full_size // 2
    # the half-written bytes never took a checkpoint's name: the last complete one is intact
    complete = backup / ("training_state.prev.ckpt" if double == "1" else "training_state.ckpt")
    assert complete.exists() and ("training_state.ckpt" not in names or double == "0")
    tensors, meta = read_checkpoint(complete)
    assert meta["step"] == saved_step and not out.exists()

    _run([bundle_path, out, backup, save_freq, double, 0, "-"])
    a, b = np.load(ref), np.load(out)
    assert int(a["step"]) == int(b["step"]) == 20
    assert float(a["lr"]) == float(b["lr"]) < 0.05                 # ReduceLROnPlateau's changes survived
    assert json.loads(str(a["epochs"])) == json.loads(str(b["epochs"])) == [0, 1, 2, 3]
    assert json.loads(str(a["history"])) == json.loads(str(b["history"]))
    weights = [k for k in a.files if k.startswith("w:")]
    assert weights and sorted(weights) == sorted(k for k in b.files if k.startswith("w:"))
    for k in weights:
        assert a[k].tobytes() == b[k].tobytes(), k                 # bit for bit
    # a finished run cleans up (Keras removes the backup folder; it may keep foreign files)
    assert not os.path.exists(backup) or not {"training_state.ckpt", "training_state.prev.ckpt"} & set(
        os.listdir(backup))


def test_a_finished_run_also_removes_the_half_written_temporary(tmp_path, bundle_path):
    """The killed write left a half-written '.tmp-*' beside the checkpoint; the resumed
    run that finishes must not leave it behind for ever."""
    out, backup, marker = tmp_path / "out.npz", tmp_path / "backup", tmp_path / "stalled"
    _kill_mid_write([bundle_path, out, backup, 3, "0", 2, marker], marker)
    assert any(n.startswith(".tmp-") for n in os.listdir(backup))
    _run([bundle_path, out, backup, 3, "0", 0, "-"])
    assert not os.path.exists(backup) or os.listdir(backup) == []
