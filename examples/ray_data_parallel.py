"""User story: train on several workers with Ray, data-parallel, with the callbacks,
checkpoints and export of the single-process Trainer.

``RayTrainer`` starts one Ray actor per worker. Each step splits the global batch
(``batch_size``) across the workers; their gradients (and batch-norm statistics) are
averaged so that the step is the global batch's step. The callbacks run here, on the
driver: early stopping, a fault-tolerance backup (restart the script after a crash and it
resumes where the backup was written), a checkpoint of the best model.

Run:  python examples/ray_data_parallel.py [--workers 2] [--address ADDR] [--out-dir DIR] [--smoke]
      (--address: an existing Ray cluster, e.g. "auto" or "ray://head:10001"; default: a
      local cluster started and stopped by the trainer; RAY_ADDRESS in the environment works too)
"""
import argparse
import os
import tempfile

import numpy as np
import onnxruntime as ort

from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
from symgrad.runtime import callbacks


def make_data(n, seed=0):
    """Three classes in 10 features: a noisy linear rule (the same data for any run)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] - x[:, 4] > 1)
    return x, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--address", help="an existing Ray cluster to use (default: start a local one)")
    parser.add_argument("--out-dir", help="where the exported models go (default: a temp folder)")
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("SYMGRAD_SMOKE") == "1",
                        help="fewer samples and epochs (CI size)")
    args = parser.parse_args(argv)
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="symgrad-ray-")
    from symgrad.runtime.distributed import RayTrainer      # needs pip install "symgrad[ray]"
    init_kwargs = None
    if args.address:
        import ray
        ray.init(address=args.address)
    else:
        init_kwargs = {"object_store_memory": 200 * 2**20}   # a small local cluster is plenty here

    x, y = make_data(1200 if args.smoke else 6000)
    xv, yv = make_data(300 if args.smoke else 1000, seed=1)
    model = Sequential([layers.Dense(64, activation="relu"), layers.BatchNormalization(momentum=0.9), layers.Dropout(0.2),
                        layers.Dense(3)], input_shape=(10,), seed=0)
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.Adam(1e-2), metrics=["accuracy"], seed=0)

    with RayTrainer(program, num_workers=args.workers, seed=0, init_kwargs=init_kwargs) as trainer:
        best = os.path.join(out_dir, "best.onnx")
        history = trainer.fit(x, y, epochs=3 if args.smoke else 20, batch_size=128, validation_data=(xv, yv),
                              verbose=0, callbacks=[
                                  callbacks.EarlyStopping(monitor="val_loss", patience=3),
                                  callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True),
                                  callbacks.BackupAndRestore(os.path.join(out_dir, "backup"))])
        for epoch, (loss, acc) in enumerate(zip(history.history["loss"], history.history["val_accuracy"])):
            print(f"epoch {epoch + 1}: loss {loss:.4f}, val_accuracy {acc:.4f}")
        val_loss, val_acc = trainer.evaluate(xv, yv, verbose=0)
        final = os.path.join(out_dir, "model.onnx")
        trainer.export(final)
        y_pred = trainer.predict(xv, verbose=0)
        print(f"{args.workers} workers, {trainer.step} steps; evaluate: val_loss {val_loss:.4f}, "
              f"val_accuracy {val_acc:.4f}")

    # the exported model is a plain ONNX model: any onnxruntime serves it
    session = ort.InferenceSession(final, providers=["CPUExecutionProvider"])
    (served,) = session.run(None, {"x": xv})
    print(f"exported {final}: max |onnxruntime - predict| = {np.abs(served - y_pred).max():.2e}")
    return final


if __name__ == "__main__":
    main()
