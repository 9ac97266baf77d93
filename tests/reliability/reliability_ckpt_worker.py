"""Subprocess worker for the "SIGKILL in the middle of a checkpoint write" tests.

    python reliability_ckpt_worker.py BUNDLE OUT.npz BACKUP_DIR SAVE_FREQ DOUBLE STALL_AT MARKER

Trains the bundle at BUNDLE with BackupAndRestore(BACKUP_DIR) for a fixed schedule and
writes the final state and history to OUT.npz. With STALL_AT = k > 0, the k-th file
this process writes (a checkpoint: nothing else is written) stalls half-way: half the
bytes reach the temporary file, then the worker touches MARKER and sleeps, so that the
test kills it with SIGKILL in the middle of the write. Runtime only: no sympy.
"""
import json
import os
import sys
import time

import numpy as np


def stall_the_kth_write(k, marker):
    """Patch os.fdopen (what compiler/atomic.py writes through) so that the k-th file
    opened for writing stops after half of its bytes."""
    real_fdopen = os.fdopen
    count = [0]

    class Stalling:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            os.fsync(self.f.fileno())
            with open(marker + ".part", "w") as m:     # the marker appears complete or not at all
                m.write(str(len(data)))
            os.replace(marker + ".part", marker)
            time.sleep(300)             # the parent kills us here

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        if "w" in mode:
            count[0] += 1
            if count[0] == k:
                return Stalling(f)
        return f

    os.fdopen = fdopen


def data(n=40, features=4, classes=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype(np.float32)
    return x, (np.abs(x[:, 0] * 2).astype(np.int64) % classes)


def main():
    bundle, out, backup_dir, save_freq, double, stall_at, marker = sys.argv[1:8]
    if int(stall_at) > 0:
        stall_the_kth_write(int(stall_at), marker)
    from symgrad.runtime import Trainer, callbacks
    save_freq = save_freq if save_freq == "epoch" else int(save_freq)
    x, y = data()
    tr = Trainer(bundle, seed=7, intra_op_num_threads=1)
    cbs = [callbacks.ReduceLROnPlateau(monitor="loss", mode="min", patience=0, factor=0.5, min_delta=10.0),
           callbacks.BackupAndRestore(backup_dir, save_freq=save_freq, double_checkpoint=double == "1")]
    h = tr.fit(x, y, epochs=4, batch_size=8, shuffle=True, validation_data=(x[:16], y[:16]), verbose=0,
               callbacks=cbs)
    np.savez(out, step=tr.step, lr=tr.learning_rate, history=json.dumps(h.history), epochs=json.dumps(h.epoch),
             **{"w:" + k: v for k, v in tr.state_dict().items()})


if __name__ == "__main__":
    main()
