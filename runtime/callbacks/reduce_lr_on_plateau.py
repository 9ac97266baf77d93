"""ReduceLROnPlateau: multiply the learning rate by ``factor`` when a monitored value
has not improved for ``patience`` epochs (Keras semantics: absolute ``min_delta``,
``cooldown``, ``min_lr``; writes ``logs['learning_rate']``)."""
import numpy as np

from symgrad.compiler.errors import ParameterError

from .monitor import MonitorCallback


class ReduceLROnPlateau(MonitorCallback):
    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, None, min_delta)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ParameterError(f"ReduceLROnPlateau: factor must be a number in (0, 1), got {factor!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ParameterError(f"ReduceLROnPlateau: {name} must be an integer >= 0, got {value!r}")
        if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or min_lr < 0:
            raise ParameterError(f"ReduceLROnPlateau: min_lr must be a number >= 0, got {min_lr!r}")
        self.factor = float(factor)
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = float(min_lr)
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.cooldown_counter = 0
        self.wait = 0
        self.best = None

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = self.trainer.learning_rate
        current = self.get_monitor_value(logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old = self.trainer.learning_rate
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    self.trainer.learning_rate = new
                    if self.verbose > 0:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def state_dict(self):
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter, "best": self.best}

    def load_state_dict(self, state):
        self.wait, self.cooldown_counter, self.best = state["wait"], state["cooldown_counter"], state["best"]
