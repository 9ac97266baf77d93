"""``symgrad demo``: the whole job on an embedded default.

Compile an MLP, train it on scikit-learn's digits (bundled with scikit-learn, nothing is
downloaded) with a progress bar, print the test accuracy, export ``model.onnx`` and,
when matplotlib is installed, draw the training curve. Seconds on two cores.
"""
import functools
import os
import time

import numpy as np

from symgrad.compiler.atomic import write_with
from symgrad.compiler.errors import SymgradError


class DemoError(SymgradError):
    """The demo cannot run here (a missing optional package)."""


def load_digits_split(seed=0, test_fraction=0.2):
    """Digits as float32 in [0, 1] and int64 labels, split train/test by a fixed permutation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DemoError("the demo trains on scikit-learn's digits: pip install \"symgrad[demo]\" "
                        "(or pip install scikit-learn)") from None
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def build_program(seed=0, hidden=64, learning_rate=3e-3):
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    model = Sequential([layers.Dense(hidden, activation="relu"), layers.Dense(10)], input_shape=(64,))
    return compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                         optimizer=optimizers.Adam(learning_rate), metrics=["accuracy"], seed=seed)


def plot_history(history, path):
    """A two-panel PNG (loss, accuracy) of the history; returns the path or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    h = history.history
    epochs = np.arange(1, len(h["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "test")):
            if prefix + key in h:
                ax.plot(epochs, h[prefix + key], marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("symgrad demo: MLP on scikit-learn digits")
    fig.tight_layout()
    write_with(path, functools.partial(fig.savefig, dpi=100, format="png"))   # never a half-written PNG
    plt.close(fig)
    return path


def onnx_accuracy(path, x, y):
    """Accuracy of the exported model, run on its own in onnxruntime."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    return float(np.mean(np.argmax(logits, axis=1) == y))


def run_demo(out_dir=".", epochs=15, batch_size=32, plot=True, progress=True, seed=0):
    from symgrad.runtime.trainer import Trainer
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    print(f"digits: {len(x_train)} training and {len(x_test)} test images of 8x8 pixels, 10 classes")
    program = build_program(seed)
    print(f"compiled Dense(64, relu) -> Dense(10), sparse categorical cross-entropy, Adam "
          f"({time.perf_counter() - start:.1f} s)")
    trainer = Trainer(program, provider="cpu", seed=seed)
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                          validation_data=(x_test, y_test), verbose=1 if progress else 0)
    results = trainer.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
    accuracy = results["accuracy"]
    print(f"test accuracy: {accuracy:.4f} (test loss {results['loss']:.4f})")

    os.makedirs(out_dir, exist_ok=True)
    model_path = os.path.join(out_dir, "model.onnx")
    trainer.export(model_path)
    exported = onnx_accuracy(model_path, x_test, y_test)
    print(f"exported {model_path}; its accuracy in a fresh onnxruntime session: {exported:.4f}")
    if plot:
        png = plot_history(history, os.path.join(out_dir, "training_curve.png"))
        print(f"training curve: {png}" if png else "training curve skipped: pip install matplotlib for it")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return {"accuracy": accuracy, "exported_accuracy": exported, "history": history.history,
            "model": model_path}
