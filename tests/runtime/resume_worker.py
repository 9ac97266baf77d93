"""Subprocess worker for the SIGKILL resume test: trains with BackupAndRestore and, if
asked, kills itself with SIGKILL after a given batch; writes the final state to an .npz.

    python resume_worker.py OUT.npz BACKUP_DIR SAVE_FREQ KILL_EPOCH KILL_BATCH [program]
"""
import json
import os
import signal
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handmade import make_bundle, toy_data  # noqa: E402
from symgrad.runtime import Trainer, callbacks  # noqa: E402


class KillAt(callbacks.Callback):
    """Kills the process after batch ``batch`` of epoch ``epoch``; records the first batch
    this process trains (to tell a resumed run from one that started over)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.first = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.first is None:
            self.first = (self.epoch, batch)

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def bundle(kind):
    if kind == "program":      # a real compiled model: batch-norm state, dropout noise, Adam slots
        from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
        model = Sequential([layers.Dense(16, activation="relu"), layers.BatchNormalization(), layers.Dropout(0.3),
                            layers.Dense(3)], input_shape=(4,))
        return compile_model(model, losses.get("sparse_categorical_crossentropy", from_logits=True),
                             optimizers.Adam(0.01), metrics=["accuracy"], seed=0).bundle()
    return make_bundle(optimizer="adam", dropout=0.3, learning_rate=0.02, seed=0)


def main():
    out, backup_dir, save_freq, kill_epoch, kill_batch = sys.argv[1:6]
    kind = sys.argv[6] if len(sys.argv) > 6 else "handmade"
    save_freq = save_freq if save_freq == "epoch" else int(save_freq)
    x, y = toy_data(200, seed=5)
    tr = Trainer(bundle(kind), seed=123, intra_op_num_threads=1)
    killer = KillAt(int(kill_epoch), int(kill_batch))
    cbs = [callbacks.ReduceLROnPlateau(monitor="loss", mode="min", patience=1, factor=0.7, min_delta=0.05),
           callbacks.EarlyStopping(monitor="val_loss", patience=50, restore_best_weights=True), killer]
    if backup_dir != "-":
        cbs.append(callbacks.BackupAndRestore(backup_dir, save_freq=save_freq, delete_checkpoint=False))
    h = tr.fit(x, y, epochs=6, batch_size=16, shuffle=True, validation_data=(x[:50], y[:50]), verbose=0,
               callbacks=cbs)
    state = tr.state_dict()
    np.savez(out, first=np.array(killer.first), step=tr.step, lr=tr.learning_rate, history=json.dumps(h.history), epochs=json.dumps(h.epoch),
             **{"w:" + k: v for k, v in state.items()})


if __name__ == "__main__":
    main()
