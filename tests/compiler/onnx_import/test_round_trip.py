"""Round trip: symgrad's own exported inference model, imported back with from_onnx
and trained, gives the same losses as the program it came from."""
import numpy as np
import pytest

from symgrad.compiler import Sequential, compile_model, from_onnx, layers, optimizers
from symgrad.runtime import Trainer


def _mlp():
    return Sequential([layers.Dense(16, activation="tanh"), layers.Dense(8, activation="relu"), layers.Dense(3)],
                      input_shape=(5,), seed=1)


def _cnn():
    return Sequential([layers.Conv2D(4, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
                       layers.Conv2D(6, 3), layers.GlobalAveragePooling2D(), layers.Dense(3)],
                      input_shape=(2, 8, 8), seed=2)


@pytest.mark.parametrize("build,shape", [(_mlp, (5,)), (_cnn, (2, 8, 8))], ids=["mlp", "cnn"])
def test_exported_model_imported_back_trains_identically(build, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16,) + shape).astype(np.float32)
    y = rng.integers(0, 3, size=16).astype(np.int64)
    loss = "sparse_categorical_crossentropy"
    original = compile_model(build(), loss=loss, optimizer=optimizers.Adam(0.01))
    exported = original.inference_model()
    names = [w.name for w in original.weights]
    assert sorted(t.name for t in exported.graph.initializer if t.name in names) == sorted(names)

    imported = from_onnx(exported, loss=loss, optimizer=optimizers.Adam(0.01))
    assert sorted(w.name for w in imported.weights) == sorted(names)   # the same names, as Netron shows them
    a, b = Trainer(original), Trainer(imported)
    for step in range(5):
        la = a.train_on_batch(x[step::4], y[step::4], return_dict=True)["loss"]
        lb = b.train_on_batch(x[step::4], y[step::4], return_dict=True)["loss"]
        assert lb == pytest.approx(la, rel=1e-5, abs=1e-6), f"step {step}"
    wa, wb = a.state_dict(), b.state_dict()
    for n in names:
        np.testing.assert_allclose(wb[n], wa[n], rtol=1e-4, atol=1e-5)
