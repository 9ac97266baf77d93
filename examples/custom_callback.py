"""User story: a custom callback that tracks the loss of every batch and saves the model
at the end of every epoch.

A callback subclasses ``symgrad.runtime.callbacks.Callback`` and overrides the Keras
hooks it needs (TF.js spellings such as ``onEpochEnd`` work too). ``self.trainer`` is
the Trainer, so a hook can export the model, change the learning rate or stop training.

Batch logs hold running means over the epoch, as in Keras; the callback turns them
back into each batch's own loss (mean_b * seen_b - mean_{b-1} * seen_{b-1}) / size_b.

Run:  python examples/custom_callback.py [--out-dir DIR] [--smoke]
"""
import argparse
import os
import tempfile

import numpy as np
import onnxruntime as ort

from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
from symgrad.runtime import Trainer, callbacks


class BatchLossTracker(callbacks.Callback):
    """Records every batch's loss, and exports the model to ``out_dir`` after each epoch."""

    def __init__(self, out_dir, n_samples):
        super().__init__()
        self.out_dir, self.n_samples = out_dir, n_samples
        self.batch_losses = []        # one list per epoch
        self.saved = []

    def on_epoch_begin(self, epoch, logs=None):
        self.batch_losses.append([])
        self._seen, self._total = 0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        size = min(self.params["batch_size"], self.n_samples - self._seen)
        total = logs["loss"] * (self._seen + size)           # logs["loss"]: running mean
        self.batch_losses[-1].append((total - self._total) / size)
        self._seen, self._total = self._seen + size, total

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.out_dir, f"model_epoch_{epoch + 1:02d}.onnx")
        self.trainer.export(path)
        self.saved.append(path)
        losses_ = self.batch_losses[-1]
        print(f"epoch {epoch + 1}: {len(losses_)} batches, batch loss {losses_[0]:.4f} -> {losses_[-1]:.4f} "
              f"(epoch mean {logs['loss']:.4f}); saved {os.path.basename(path)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", help="where the per-epoch models go (default: a temp folder)")
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("SYMGRAD_SMOKE") == "1",
                        help="2 epochs (CI size)")
    args = parser.parse_args(argv)
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="symgrad-callback-")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)).astype(np.float32)                     # 500 = 7 batches of 64 + 52
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)
    model = Sequential([layers.Dense(32, activation="relu"), layers.Dense(3)], input_shape=(8,), seed=0)
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.Adam(1e-2), metrics=["accuracy"], seed=0)
    trainer = Trainer(program, seed=0)
    tracker = BatchLossTracker(out_dir, len(x))
    first_batch = trainer.test_on_batch(x[:64], y[:64], return_dict=True)["loss"]   # before any update
    history = trainer.fit(x, y, epochs=2 if args.smoke else 5, batch_size=64, callbacks=[tracker], verbose=0,
                          shuffle=False)

    # the first tracked loss is the untrained model's loss on the first 64 samples
    assert abs(tracker.batch_losses[0][0] - first_batch) < 1e-5, (tracker.batch_losses[0][0], first_batch)

    # the tracked batch losses reproduce the epoch means the trainer reports
    sizes = np.array([64] * 7 + [52])
    for per_batch, mean in zip(tracker.batch_losses, history.history["loss"]):
        assert abs(np.dot(per_batch, sizes) / sizes.sum() - mean) < 1e-5
    # the last saved model is the trained model
    session = ort.InferenceSession(tracker.saved[-1], providers=["CPUExecutionProvider"])
    (y_pred,) = session.run(None, {"x": x[:16]})
    assert np.allclose(y_pred, trainer.predict(x[:16], verbose=0), atol=1e-5)
    print(f"{sum(map(len, tracker.batch_losses))} batch losses tracked; {len(tracker.saved)} models in {out_dir}")
    return tracker


if __name__ == "__main__":
    main()
