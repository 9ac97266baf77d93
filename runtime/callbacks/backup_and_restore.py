"""BackupAndRestore: fault tolerance. The full training state (parameters, model state,
optimizer slots, step, learning rate, RNG state, position in the fit loop and the state
of the other callbacks) is saved atomically; a run restarted after a crash or a
SIGKILL resumes from it and continues exactly as the uninterrupted run would have.

It runs after every other callback (``run_last``), so what it saves includes their
end-of-epoch actions (a learning-rate reduction, say)."""
import contextlib
import os
import warnings

from symgrad.compiler.atomic import discard_temporaries
from symgrad.compiler.errors import BundleError, ParameterError
from symgrad.compiler.locks import FolderLock

from .. import checkpoint
from .base import Callback

LATEST = "training_state.ckpt"
PREVIOUS = "training_state.prev.ckpt"


class BackupAndRestore(Callback):
    """``save_freq``: "epoch" or every that many batches (then a resumed run continues in the
    middle of the epoch, same order and noise). ``double_checkpoint``: keep the previous
    checkpoint and fall back to it if the latest is damaged. ``delete_checkpoint``: remove
    the checkpoint files (only ours) when training finishes, and the folder if that
    leaves it empty.

    One run at a time per folder: the callback locks ``backup_dir`` (an ``flock`` on
    ``backup_dir/.symgrad-lock``) for the whole fit, and a second process given the same
    folder is refused with a FolderInUseError naming it, instead of the two runs
    overwriting (or resuming from) each other's checkpoints. The kernel drops the lock
    when a process dies, so a crashed run never blocks the next one."""

    run_last = True

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ParameterError("BackupAndRestore: backup_dir must be a folder path")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ParameterError(f"BackupAndRestore: save_freq must be 'epoch' or an integer >= 1 (batches), "
                                 f"got {save_freq!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._since_save = 0
        self.restored_from = None
        self._lock = FolderLock(self.backup_dir, "BackupAndRestore")

    @property
    def path(self):
        return os.path.join(self.backup_dir, LATEST)

    def active_hooks(self):
        hooks = {"on_train_begin", "on_train_end"}
        hooks.add("on_epoch_end" if self.save_freq == "epoch" else "on_train_batch_end")
        return hooks

    def _others(self):
        return [cb for cb in (self.trainer._callbacks or []) if cb is not self]

    def on_train_begin(self, logs=None):
        self._since_save = 0
        self.restored_from = None
        self._lock.acquire()
        candidates = [self.path] + ([os.path.join(self.backup_dir, PREVIOUS)] if self.double_checkpoint else [])
        for path in candidates:
            if not os.path.exists(path):
                continue
            try:
                tensors, meta = checkpoint.read_checkpoint(path)
            except BundleError as exc:
                if path == candidates[-1]:
                    raise
                warnings.warn(f"BackupAndRestore: {exc}; trying the previous checkpoint", stacklevel=2)
                continue
            self.trainer._resume_from(tensors, meta, self._others(), source=f"checkpoint {path!r}")
            self.restored_from = path
            return

    def _save(self, position):
        tensors, meta = checkpoint.capture(self.trainer, position, self._others())
        if self.double_checkpoint and os.path.exists(self.path):
            os.replace(self.path, os.path.join(self.backup_dir, PREVIOUS))
        checkpoint.write_checkpoint(self.path, tensors, meta)

    def on_train_batch_end(self, batch, logs=None):
        self._since_save += 1
        if self._since_save >= self.save_freq:
            self._since_save = 0
            self._save(self.trainer._progress.position())

    def on_epoch_end(self, epoch, logs=None):
        self._save({"epoch": epoch + 1, "batch": 0})

    def _fit_finished(self):
        """Called by the fit loop however the fit ended (an exception included)."""
        self._lock.release()

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        if not os.path.isdir(self.backup_dir):
            return
        for name in (LATEST, PREVIOUS):
            # only our files (backup_dir may hold other things), and the temporaries that a
            # write killed half-way left behind
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.backup_dir, name))
            discard_temporaries(os.path.join(self.backup_dir, name))
        self._lock.release(remove=True)
        with contextlib.suppress(OSError):
            os.rmdir(self.backup_dir)       # like Keras, the folder goes too, but only when nothing else is in it
