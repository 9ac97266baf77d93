"""History: the per-epoch logs, returned by ``fit`` (Keras ``history.history[key]``)."""
from .base import Callback


class History(Callback):
    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.trainer is not None:
            self.trainer.history = self

    def state_dict(self):
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state):
        self.epoch = list(state["epoch"])
        self.history = {k: list(v) for k, v in state["history"].items()}

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"
