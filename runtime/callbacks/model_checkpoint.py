"""ModelCheckpoint: an ONNX inference model (trained weights baked in) per epoch or
every ``save_freq`` batches. ``filepath`` may hold ``{epoch:02d}`` and log keys such as
``{val_loss:.4f}``; with ``save_best_only`` only improvements of ``monitor`` are saved."""
import os
import warnings

from symgrad.compiler.errors import ParameterError

from .monitor import MonitorCallback


class ModelCheckpoint(MonitorCallback):
    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto",
                 save_freq="epoch", initial_value_threshold=None, opset=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath = os.fspath(filepath)
        if not self.filepath.endswith(".onnx"):
            raise ParameterError(f"ModelCheckpoint: filepath must end in '.onnx' (it writes ONNX inference models), "
                                 f"got {self.filepath!r}; for the full training state use BackupAndRestore")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ParameterError(f"ModelCheckpoint: save_freq must be 'epoch' or an integer >= 1 (batches), got {save_freq!r}")
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_freq = save_freq
        self.opset = opset
        self.saved = []
        self._since_save = 0
        self._epoch = 0

    def active_hooks(self):
        hooks = {"on_epoch_begin", "on_epoch_end", "on_train_begin"}
        if self.save_freq != "epoch":
            hooks.add("on_train_batch_end")
        return hooks

    def on_train_begin(self, logs=None):
        self.saved = []
        self._since_save = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._since_save += 1
        if self._since_save >= self.save_freq:
            self._since_save = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None and self.save_best_only:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs):
        fields = dict(logs or {})
        fields["epoch"] = epoch + 1
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise ParameterError(f"ModelCheckpoint: cannot fill in filepath {self.filepath!r} ({exc!r}); available "
                                 f"fields: {', '.join(sorted(fields))}") from None

    def _save(self, epoch, batch, logs):
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            if self.monitor_op is None:
                self._set_monitor_op()
            current = (logs or {}).get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: can save the best model only with {self.monitor!r} in the logs "
                              f"(available: {', '.join(sorted(logs or {}))}); saving anyway", stacklevel=2)
            elif self._is_improvement(current, self.best):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to {current:.5f}, saving to {path}")
                self.best = current
            else:
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        self.trainer.export(path, opset=self.opset)
        self.saved.append(path)

    def state_dict(self):
        return {"best": self.best, "since_save": self._since_save}

    def load_state_dict(self, state):
        self.best, self._since_save = state["best"], state["since_save"]
