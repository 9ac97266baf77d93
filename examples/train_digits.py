"""Train an MLP on scikit-learn's bundled 8x8 digits (no download) and export it to ONNX.

    python examples/train_digits.py [--epochs 30] [--out digits.onnx]

Compiles a Keras-style Sequential model to ONNX training graphs, trains them with
onnxruntime (Adam with an exponentially decaying learning rate set by a callback),
reports the test accuracy and checks the exported inference model in a plain
onnxruntime session. A few seconds on a laptop CPU, most of it compiling.
"""
import argparse
import os
import tempfile
import time

import numpy as np


def load_digits_split(seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target.astype(np.int64), test_size=0.25,
                                                        random_state=seed, stratify=digits.target)
    mean, scale = x_train.mean(0), x_train.std(0) + 1.0      # standardise with training statistics only
    return ((x_train - mean) / scale).astype(np.float32), ((x_test - mean) / scale).astype(np.float32), y_train, y_test


def build_program(seed=0):
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    model = Sequential([layers.Dense(256, activation="relu"), layers.Dropout(0.2), layers.Dense(10)],
                       input_shape=(64,))
    return compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                         optimizer=optimizers.Adam(2e-3), metrics=["accuracy"], seed=seed)


def train(epochs=30, seed=0, verbose=0, out=None):
    """Returns (test accuracy, History, Trainer)."""
    from symgrad.runtime import Trainer, callbacks
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    trainer = Trainer(build_program(seed), seed=seed)
    decay = callbacks.LearningRateScheduler(lambda epoch, lr: 2e-3 * 0.9 ** epoch)
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=verbose, callbacks=[decay])
    logits = trainer.predict(x_test, verbose=0)
    accuracy = float(np.mean(logits.argmax(1) == y_test))
    if out:
        trainer.export(out)
    return accuracy, history, trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="where to write the ONNX model (default: a temporary file)")
    args = parser.parse_args()
    out = args.out or os.path.join(tempfile.mkdtemp(), "digits.onnx")
    t0 = time.perf_counter()
    accuracy, history, _ = train(args.epochs, args.seed, verbose=2, out=out)
    print(f"test accuracy {accuracy:.4f} after {len(history.epoch)} epochs, {time.perf_counter() - t0:.1f}s")
    import onnxruntime as ort
    _, x_test, _, y_test = load_digits_split(args.seed)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    onnx_acc = float(np.mean(session.run(None, {"x": x_test})[0].argmax(1) == y_test))
    print(f"exported {out}: accuracy in a plain onnxruntime session {onnx_acc:.4f}")


if __name__ == "__main__":
    main()
