"""TerminateOnNaN: stop at the first batch whose loss is NaN or Inf, keeping the last
good state (the parameters before that batch's update: the ping-pong buffers still
hold them, so the rollback costs nothing)."""
import math

from .base import Callback


class TerminateOnNaN(Callback):
    def __init__(self, raise_error=False, keep_last_good=True):
        super().__init__()
        self.raise_error = raise_error
        self.keep_last_good = keep_last_good
        self.terminated_batch = None

    def on_train_begin(self, logs=None):
        self.terminated_batch = None

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(loss):
            return
        if self.keep_last_good:
            self.trainer.revert_last_step()
        self.terminated_batch = batch
        if self.raise_error:
            raise RuntimeError(f"loss is {loss} at batch {batch}; training terminated")
        print(f"Batch {batch}: invalid loss {loss}, terminating training")
        self.trainer.stop_training = True
