"""A small transformer classifies scikit-learn's bundled 8x8 digits (no download), each
image read as a sequence of 8 rows of 8 pixels.

    python examples/transformer_classifier.py [--epochs 40] [--smoke]

Rows -> Dense(32) + a learned PositionEmbedding -> one transformer block
(MultiHeadAttention with 4 heads, residual + LayerNormalization, a ReLU feed-forward,
residual + LayerNormalization) -> Flatten -> Dense(10). symgrad derives the backward
pass of the whole block and trains it with onnxruntime; the script prints the test
accuracy and checks that the exported ONNX model predicts the same classes.
Full size (40 epochs) reaches about 0.97 test accuracy (README); --smoke (or
SYMGRAD_SMOKE=1) runs 2 epochs, as CI does.
"""
import argparse
import os
import tempfile
import time

import numpy as np


def load_sequences(seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)                  # (n, 8 rows, 8 pixels) in [0, 1]
    return train_test_split(x, digits.target.astype(np.int64), test_size=0.25, random_state=seed,
                            stratify=digits.target)


def build_model(width=32, heads=4, seed=0):
    from symgrad.compiler import Input, Model, layers
    rows = Input((8, 8), name="rows")
    h = layers.Dense(width, name="embed")(rows)
    h = layers.Add()([h, layers.PositionEmbedding(8, name="position")(h)])
    attended = layers.MultiHeadAttention(num_heads=heads, key_dim=width // heads, name="attention")(h, h)
    h = layers.LayerNormalization(name="norm_1")(layers.Add()([h, attended]))
    ff = layers.Dense(width, name="ff_out")(layers.Dense(2 * width, activation="relu", name="ff_in")(h))
    h = layers.LayerNormalization(name="norm_2")(layers.Add()([h, ff]))
    logits = layers.Dense(10, name="digit")(layers.Flatten()(h))
    return Model(rows, logits, seed=seed)


def train(epochs, seed=0, verbose=0):
    """Returns (test accuracy, History, Trainer, test data)."""
    from symgrad.compiler import compile_model, losses, optimizers
    from symgrad.runtime import Trainer
    x_train, x_test, y_train, y_test = load_sequences(seed)
    program = compile_model(build_model(seed=seed), loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.Adam(3e-3), metrics=["accuracy"])
    trainer = Trainer(program, seed=seed)
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=verbose,
                          validation_data=(x_test, y_test))
    accuracy = float(np.mean(trainer.predict(x_test, verbose=0).argmax(1) == y_test))
    return accuracy, history, trainer, (x_test, y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="2 epochs (what CI runs)")
    args = parser.parse_args()
    epochs = 2 if args.smoke or os.environ.get("SYMGRAD_SMOKE") == "1" else args.epochs
    t0 = time.perf_counter()
    accuracy, history, trainer, (x_test, y_test) = train(epochs, args.seed, verbose=2)
    print(f"test accuracy {accuracy:.4f} after {len(history.epoch)} epochs, {time.perf_counter() - t0:.1f}s")
    out = os.path.join(tempfile.mkdtemp(), "transformer.onnx")
    trainer.export(out)
    import onnxruntime as ort
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    onnx_acc = float(np.mean(session.run(None, {"x": x_test})[0].argmax(1) == y_test))
    print(f"exported {out}: accuracy in a plain onnxruntime session {onnx_acc:.4f}")


if __name__ == "__main__":
    main()
