"""Training-state checkpoints and BackupAndRestore: atomic, checksummed, exact resume
(including a SIGKILL in a subprocess)."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from handmade import make_bundle, toy_data
from symgrad.compiler.errors import BundleError, DataError
from symgrad.runtime import Trainer, callbacks, checkpoint

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resume_worker.py")


def test_checkpoint_round_trip(tmp_path):
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array(7, np.int64),
               "c": np.zeros((0, 4), np.float64)}
    meta = {"step": 3, "lr": 0.1 + 1e-17, "big": 2 ** 100, "inf": float("inf")}
    path = tmp_path / "s.ckpt"
    checkpoint.write_checkpoint(path, tensors, meta)
    got, gmeta = checkpoint.read_checkpoint(path)
    assert gmeta == meta
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "empty"])
def test_corrupt_checkpoints_are_refused(tmp_path, damage):
    path = tmp_path / "s.ckpt"
    checkpoint.write_checkpoint(path, {"a": np.ones(100, np.float32)}, {"x": 1})
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "truncate":
        data = data[:-40]
    elif damage == "magic":
        data[:4] = b"NOPE"
    else:
        data = b""
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="s.ckpt"):
        checkpoint.read_checkpoint(path)


def test_newer_version_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "VERSION", 99)
    checkpoint.write_checkpoint(tmp_path / "new.ckpt", {}, {})
    monkeypatch.setattr(checkpoint, "VERSION", 1)
    with pytest.raises(BundleError, match="upgrade symgrad"):
        checkpoint.read_checkpoint(tmp_path / "new.ckpt")
    with pytest.raises(BundleError, match="no checkpoint"):
        checkpoint.read_checkpoint(tmp_path / "missing.ckpt")


def test_a_failed_write_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "s.ckpt"
    checkpoint.write_checkpoint(path, {"a": np.zeros(3)}, {"v": "old"})

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        checkpoint.write_checkpoint(path, {"a": np.ones(3)}, {"v": "new"})
    monkeypatch.undo()
    assert checkpoint.read_checkpoint(path)[1] == {"v": "old"}
    assert os.listdir(tmp_path) == ["s.ckpt"]


def test_trainer_checkpoint_restores_everything(tmp_path, toy):
    x, y = toy
    b = make_bundle(optimizer="adam", dropout=0.2)
    a = Trainer(b, seed=1)
    a.fit(x, y, epochs=2, batch_size=8, verbose=0)
    a.learning_rate = 0.0123
    a.save_checkpoint(tmp_path / "t.ckpt")
    c = Trainer(b, seed=99)
    c.load_checkpoint(tmp_path / "t.ckpt")
    assert c.step == a.step and c.learning_rate == 0.0123
    assert all(np.array_equal(c.state_dict()[k], v) for k, v in a.state_dict().items())
    a.fit(x, y, epochs=1, batch_size=8, verbose=0)
    c.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert all(np.array_equal(c.state_dict()[k], v) for k, v in a.state_dict().items())
    with pytest.raises(BundleError, match="different program"):
        Trainer(make_bundle(optimizer="sgd")).load_checkpoint(tmp_path / "t.ckpt")


class Crash(callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


class First(callbacks.Callback):
    first = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.first is None:
            self.first = (self.epoch, batch)


def _train(tmp_path, save_freq, crash=None, split=False, iterable=False):
    x, y = toy_data(100, seed=2)
    tr = Trainer(make_bundle(optimizer="momentum", dropout=0.3, learning_rate=0.05), seed=5)
    cbs = [callbacks.ReduceLROnPlateau(monitor="loss", mode="min", patience=0, factor=0.9, min_delta=1.0),
           callbacks.BackupAndRestore(tmp_path / "backup", save_freq=save_freq, double_checkpoint=True)]
    first = First()
    cbs.append(first)
    if crash:
        cbs.append(Crash(*crash))
    if split:
        cbs.append(callbacks.LambdaCallback(on_after_backward=lambda b, logs: None))
    data = ([(x[i:i + 16], y[i:i + 16]) for i in range(0, 100, 16)],) if iterable else (x, y)
    kw = {} if iterable else {"batch_size": 16, "shuffle": True}
    h = tr.fit(*data, epochs=4, verbose=0, callbacks=cbs, validation_data=(x, y), **kw)
    tr.first = first.first
    return tr, h


# 100 samples in batches of 16: 7 batches per epoch. `resume` is the first batch the
# resumed run trains (a run that started over would give the same numbers).
@pytest.mark.parametrize("save_freq, crash, split, iterable, resume", [
    ("epoch", (2, 3), False, False, (2, 0)),
    (5, (2, 3), False, False, (2, 1)),        # saves after batches 5, 10, 15: epoch 2 with 1 batch done
    (7, (2, 2), True, False, (2, 0)),         # saved after the last batch of epoch 1, before its end
    (3, (2, 1), False, True, (2, 1)),         # an iterable of batches; saved after batch 15
])
def test_backup_and_restore_resumes_exactly(tmp_path, save_freq, crash, split, iterable, resume):
    ref, href = _train(tmp_path / "ref", save_freq, split=split, iterable=iterable)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "run", save_freq, crash=crash, split=split, iterable=iterable)
    assert os.path.exists(tmp_path / "run" / "backup" / "training_state.ckpt")
    tr, h = _train(tmp_path / "run", save_freq, split=split, iterable=iterable)
    assert tr.first == resume and ref.first == (0, 0)
    assert tr.step == ref.step and tr.learning_rate == ref.learning_rate
    for k, v in ref.state_dict().items():
        assert np.array_equal(tr.state_dict()[k], v), k
    assert h.history == href.history and h.epoch == href.epoch          # History is part of the saved state
    assert not os.path.exists(tmp_path / "run" / "backup")               # deleted after a finished run


def test_finished_runs_delete_only_their_own_files(tmp_path):
    x, y = toy_data(20)
    (tmp_path / "keep.txt").write_text("mine")
    Trainer(make_bundle()).fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.BackupAndRestore(tmp_path)])
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_mid_epoch_resume_needs_the_same_data(tmp_path):
    x, y = toy_data(100, seed=2)
    tr = Trainer(make_bundle(), seed=5)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(x, y, epochs=2, batch_size=16, verbose=0,
               callbacks=[callbacks.BackupAndRestore(tmp_path, save_freq=2), Crash(0, 3)])
    with pytest.raises(DataError, match="same data"):
        Trainer(make_bundle(), seed=5).fit(x, y, epochs=2, batch_size=10, verbose=0,
                                           callbacks=[callbacks.BackupAndRestore(tmp_path, save_freq=2)])


def test_double_checkpoint_falls_back_to_the_previous_one(tmp_path):
    x, y = toy_data(40)
    with pytest.raises(KeyboardInterrupt):
        Trainer(make_bundle(), seed=5).fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[
            callbacks.BackupAndRestore(tmp_path, double_checkpoint=True), Crash(2, 0)])
    latest = tmp_path / "training_state.ckpt"
    latest.write_bytes(latest.read_bytes()[:-5])                          # damaged
    bar = callbacks.BackupAndRestore(tmp_path, double_checkpoint=True, delete_checkpoint=False)
    begun = []
    rec = callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: begun.append(e))
    with pytest.warns(UserWarning, match="previous checkpoint"):
        h = Trainer(make_bundle(), seed=5).fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[rec, bar])
    # the previous checkpoint is the one of epoch 0: the run resumes at epoch 1
    assert bar.restored_from.endswith("training_state.prev.ckpt") and begun == [1, 2] and h.epoch == [0, 1, 2]


def _worker(args, expect_kill=False):
    proc = subprocess.run([sys.executable, WORKER] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=240)
    if expect_kill:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow
# 200 samples in batches of 16: 13 batches per epoch. Killed after (epoch, batch) `kill`, the
# run resumes at `resume`: the start of epoch 3, or (every 7 batches, last save after batch
# 35 = 2 * 13 + 9) epoch 2 with 9 batches done.
@pytest.mark.parametrize("save_freq, kill, resume, kind", [("epoch", (3, 5), (3, 0), "handmade"),
                                                           (7, (2, 9), (2, 9), "handmade"),
                                                           (7, (2, 9), (2, 9), "program")])
def test_sigkill_then_resume_is_bit_for_bit_equal(tmp_path, save_freq, kill, resume, kind):
    ref, out = tmp_path / "ref.npz", tmp_path / "resumed.npz"
    backup = tmp_path / "backup"
    _worker([ref, "-", save_freq, -1, -1, kind])
    _worker([out, backup, save_freq, kill[0], kill[1], kind], expect_kill=True)
    assert os.path.exists(backup / "training_state.ckpt") and not out.exists()
    _worker([out, backup, save_freq, -1, -1, kind])
    a, b = np.load(ref), np.load(out)
    assert tuple(a["first"]) == (0, 0) and tuple(b["first"]) == resume
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        if k.startswith("w:"):
            assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
    assert int(a["step"]) == int(b["step"]) and float(a["lr"]) == float(b["lr"]) < 0.02
    assert json.loads(str(a["history"])) == json.loads(str(b["history"]))
