"""trainer.export: the inference graph with the trained weights, at every opset 13..21.

Each exported file passes the full ONNX checker, uses the standard domain only, takes
``x`` as its only input, and its output equals ``trainer.predict`` in two independent
runtimes: onnxruntime and onnx's reference evaluator (pure NumPy). Both a trainer that
holds the compiler's Program (native re-emission at the target opset) and one loaded
from a bundle folder without the compiler (onnx's version converter) are covered.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
from symgrad.compiler.errors import OpsetError
from symgrad.runtime.trainer import Trainer

OPSETS = list(range(13, 22))


def _conv_model():
    # ops whose ONNX signature changed between opsets 13 and 21: reductions (axes as an
    # input from 18), pooling, normalisation, softmax, reshape
    return Sequential([layers.Reshape((1, 8, 8)), layers.Conv2D(4, 3, activation="relu"),
                       layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Flatten(),
                       layers.Dense(16, activation="tanh"), layers.Dropout(0.2), layers.LayerNormalization(),
                       layers.Dense(10), layers.Softmax()], input_shape=(64,), seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained conv net (weights and batch-norm statistics moved away from their initial
    values), as a Trainer with its Program and as a Trainer loaded from the saved bundle."""
    program = compile_model(_conv_model(), loss=losses.get("sparse_categorical_crossentropy"),
                            optimizer=optimizers.Adam(1e-2), metrics=["accuracy"], seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 64)).astype(np.float32), rng.integers(0, 10, 64)
    trainer = Trainer(program, seed=0)
    before = trainer.predict(x[:4], verbose=0)
    trainer.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.abs(trainer.predict(x[:4], verbose=0) - before).max() > 1e-3, "training did not move the weights"
    path = tmp_path_factory.mktemp("export") / "bundle"
    trainer.save(path)
    return {"program": trainer, "loaded": Trainer.load(path)}, rng.random((7, 64)).astype(np.float32)


@pytest.mark.parametrize("source", ["program", "loaded"])
@pytest.mark.parametrize("opset", OPSETS)
def test_export_equals_predict_in_two_runtimes(trained, tmp_path, source, opset):
    trainers, x = trained
    trainer = trainers[source]
    expected = trainer.predict(x, verbose=0)
    path = tmp_path / f"model_{opset}.onnx"
    trainer.export(path, opset=opset)
    model = onnx.load(path)

    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")] == [("", opset)]
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert model.ir_version == helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    assert [i.name for i in model.graph.input] == ["x"], "weights must be baked in, not inputs"

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (by_ort,) = session.run(["y_pred"], {"x": x})
    (by_ref,) = ReferenceEvaluator(model).run(["y_pred"], {"x": x})
    assert by_ort.shape == by_ref.shape == expected.shape == (7, 10)
    np.testing.assert_allclose(by_ort, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_ref, expected, rtol=1e-4, atol=1e-6)
    # the softmax head: every row is a distribution (a check that is not circular)
    np.testing.assert_allclose(by_ref.sum(axis=1), 1.0, rtol=1e-5)


def test_export_default_opset_is_the_bundles(trained, tmp_path):
    trainers, x = trained
    trainers["loaded"].export(tmp_path / "m.onnx")
    model = onnx.load(tmp_path / "m.onnx")
    assert model.opset_import[0].version == trainers["loaded"].manifest["opset"] == 17


def test_export_tracks_the_current_weights(tmp_path):
    """An export after more training differs from one before, and each equals the numbers
    a NumPy forward pass of that moment's weights gives (an oracle outside onnx)."""
    model = Sequential([layers.Dense(5, activation="relu"), layers.Dense(2)], input_shape=(3,), seed=1)
    program = compile_model(model, loss="mse", optimizer=optimizers.SGD(0.1), seed=1)
    trainer = Trainer(program, seed=1)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 3)).astype(np.float32), rng.normal(size=(32, 2)).astype(np.float32)

    def numpy_forward(w, xs):
        k0, b0, k1, b1 = (np.asarray(a, np.float64) for a in w)
        return np.maximum(xs @ k0 + b0, 0) @ k1 + b1

    outs = []
    for epochs in (0, 3):
        if epochs:
            trainer.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
        trainer.export(tmp_path / "m.onnx", opset=15)
        (out,) = ReferenceEvaluator(str(tmp_path / "m.onnx")).run(None, {"x": x})
        np.testing.assert_allclose(out, numpy_forward(trainer.get_weights(), x), rtol=1e-5, atol=1e-5)
        outs.append(out)
    assert np.abs(outs[0] - outs[1]).max() > 1e-3


@pytest.mark.parametrize("opset", [12, 22, "17", 17.0, True])
def test_export_rejects_unsupported_opsets(trained, tmp_path, opset):
    trainers, _ = trained
    with pytest.raises(OpsetError, match="13"):
        trainers["loaded"].export(tmp_path / "bad.onnx", opset=opset)
    assert not (tmp_path / "bad.onnx").exists()
