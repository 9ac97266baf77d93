"""ProgbarLogger: a tqdm bar per epoch at verbose=1 (plain lines when tqdm is missing),
one line per epoch at verbose=2. Added by ``fit``/``evaluate``/``predict`` when
verbose != 0."""
import sys
import time

from .base import Callback

try:
    from tqdm.auto import tqdm
except ImportError:  # tqdm is optional ([progress] extra)
    tqdm = None


def _format(logs):
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in logs.items())


class ProgbarLogger(Callback):
    def __init__(self):
        super().__init__()
        self._bar = None

    @property
    def _verbose(self):
        return self.params.get("verbose", 1)

    @property
    def _mode(self):
        return self.params.get("mode", "train")

    def active_hooks(self):
        mode = self._mode
        hooks = {"on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end"} if mode == "train" else \
            {f"on_{mode}_begin", f"on_{mode}_end"}
        if self._verbose == 1 and tqdm is not None:
            hooks.add("on_train_batch_end" if mode == "train" else f"on_{mode}_batch_end")
        return hooks

    def _open(self, desc):
        self._t0 = time.perf_counter()
        self._last = 0.0
        if self._verbose == 1 and tqdm is not None:
            self._bar = tqdm(total=self.params.get("steps"), desc=desc, unit="step", leave=True, dynamic_ncols=True)

    def _close(self, logs, prefix):
        elapsed = time.perf_counter() - self._t0
        if self._bar is not None:
            if logs:
                self._bar.set_postfix_str(_format(logs), refresh=False)
            self._bar.close()
            self._bar = None
        else:
            print(f"{prefix} - {elapsed:.2f}s" + (f" - {_format(logs)}" if logs else ""), file=sys.stdout, flush=True)

    def _advance(self, logs):
        self._bar.update(1)
        now = time.perf_counter()
        if logs and now - self._last > 0.2:      # formatting the postfix every step would cost more than the step
            self._last = now
            self._bar.set_postfix_str(_format(logs), refresh=False)

    def on_train_begin(self, logs=None):
        self._epochs = self.params.get("epochs")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._open(f"Epoch {epoch + 1}/{self._epochs}")

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._advance(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._close(logs, f"Epoch {epoch + 1}/{self._epochs}")

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_test_begin(self, logs=None):
        self._open("Evaluate")

    def on_test_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._advance(logs)

    def on_test_end(self, logs=None):
        self._close(logs, "Evaluate")

    def on_predict_begin(self, logs=None):
        self._open("Predict")

    def on_predict_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._advance(None)

    def on_predict_end(self, logs=None):
        self._close(None, "Predict")
