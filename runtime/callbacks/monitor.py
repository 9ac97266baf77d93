"""MonitorCallback: the shared "is this an improvement?" logic of EarlyStopping,
ReduceLROnPlateau and ModelCheckpoint (Keras ``MonitorCallback``)."""
import operator
import warnings

from symgrad.compiler.errors import ParameterError

from .base import Callback

_UP = ("acc", "auc", "precision", "recall", "f1", "r2", "iou")
_DOWN = ("loss", "error", "mse", "mae", "rmse", "mape", "msle", "crossentropy", "hinge", "divergence", "huber")


def direction(monitor, trainer=None):
    """'max' or 'min' for a monitored log key in mode='auto', or None when unknown."""
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if trainer is not None and hasattr(trainer, "metric_direction"):
        found = trainer.metric_direction(name)
        if found:
            return found
    low = name.lower()
    if low == "loss" or any(k in low for k in _DOWN):
        return "min"
    if any(k in low for k in _UP):
        return "max"
    return None


class MonitorCallback(Callback):
    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ParameterError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(monitor, str):
            raise ParameterError(f"{type(self).__name__}: monitor must be a log key such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.mode = mode
        self.baseline = baseline
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        mode = self.mode
        if mode == "auto":
            mode = direction(self.monitor, self.trainer)
            if mode is None:
                raise ParameterError(f"{type(self).__name__}: cannot tell whether {self.monitor!r} should go up or "
                                     "down; pass mode='min' or mode='max'")
        self.monitor_op = operator.lt if mode == "min" else operator.gt
        self._delta = -self.min_delta if mode == "min" else self.min_delta

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        return self.monitor_op(value - self._delta, reference)

    def get_monitor_value(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__}: the monitored value {self.monitor!r} is not in the logs "
                          f"(available: {', '.join(sorted(logs or {})) or 'none'}); skipping", stacklevel=3)
        return value
