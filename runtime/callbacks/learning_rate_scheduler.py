"""LearningRateScheduler: ``lr = schedule(epoch, lr)`` (or the old ``schedule(epoch)``)
at the start of each epoch; logs ``learning_rate`` at its end (Keras semantics)."""
import inspect
import math
import numbers

from symgrad.compiler.errors import ParameterError

from .base import Callback


class LearningRateScheduler(Callback):
    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ParameterError(f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        try:
            params = inspect.signature(schedule).parameters.values()
            positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            self._two_args = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
        except (TypeError, ValueError):
            self._two_args = True

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch, self.trainer.learning_rate) if self._two_args else self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(float(lr)) or lr < 0:
            raise ParameterError(f"LearningRateScheduler: the schedule must return a finite float >= 0, "
                                 f"got {lr!r} at epoch {epoch}")
        self.trainer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.trainer.learning_rate
