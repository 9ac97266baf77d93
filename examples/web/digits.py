"""The browser test's story: scikit-learn's bundled digits (8x8 images, no download), a
small MLP, a few batches, and Python's own per-step losses on them.

write_story(folder, optimizer) writes folder/bundle (the compiled program) and
folder/data/batches.json (+ blob, with the learning rate and step of each batch), and
returns Python's per-step losses, its final state and its predictions on the first batch.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "node"))
from batches import write_batches  # noqa: E402

OPTIMIZERS = ("sgd", "adam")


def write_story(folder, optimizer, epochs=2, batch_size=32, samples=192):
    from sklearn.datasets import load_digits
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    from symgrad.runtime import Trainer

    digits = load_digits()
    x = (digits.data[:samples] / 16.0).astype(np.float32)
    y = digits.target[:samples].astype(np.int64)
    opt = {"sgd": lambda: optimizers.SGD(0.5), "adam": lambda: optimizers.Adam(1e-2)}[optimizer]()
    model = Sequential([layers.Dense(32, activation="relu"), layers.Dense(10)], input_shape=(64,), seed=0)
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=opt, metrics=["accuracy"], seed=0)
    program.save(os.path.join(folder, "bundle"))
    trainer = Trainer.load(os.path.join(folder, "bundle"), intra_op_num_threads=1)
    rng = np.random.default_rng(0)
    batches, losses_, lrs, steps = [], [], [], []
    for _ in range(epochs):
        order = rng.permutation(samples)
        epoch = []
        for i in range(0, samples, batch_size):
            idx = order[i:i + batch_size]
            epoch.append({"x": x[idx], "y": y[idx]})
            lrs.append(trainer.learning_rate)
            steps.append(trainer.step + 1)
            losses_.append(trainer.train_on_batch(x[idx], y[idx], return_dict=True)["loss"])
        batches.append(epoch)
    os.makedirs(os.path.join(folder, "data"), exist_ok=True)
    write_batches(os.path.join(folder, "data", "batches.json"), batches, learning_rates=lrs, steps=steps)
    return {"losses": losses_, "state": trainer.state_dict(),
            "prediction": trainer.predict(batches[0][0]["x"], verbose=0)}
