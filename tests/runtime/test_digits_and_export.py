"""End to end with real compile_model programs: the digits MLP (>= 97% test accuracy) and
export of the trained inference model at every opset."""
import importlib.util
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from handmade import make_bundle, toy_data
from symgrad.compiler.errors import OpsetError
from symgrad.runtime import Trainer

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "train_digits.py")


def load_example():
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("digits") / "digits.onnx")
    example = load_example()
    accuracy, history, trainer = example.train(seed=0, out=out)
    return example, accuracy, history, trainer, out


def test_digits_mlp_reaches_97_percent(digits_run):
    example, accuracy, history, trainer, out = digits_run
    assert accuracy >= 0.97
    assert history.history["loss"][-1] < history.history["loss"][0] / 10
    assert history.history["learning_rate"][-1] == pytest.approx(2e-3 * 0.9 ** 29)
    _, x_test, _, y_test = example.load_digits_split(0)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": x_test})[0]
    np.testing.assert_allclose(logits, trainer.predict(x_test, verbose=0), rtol=1e-5, atol=1e-5)
    assert np.mean(logits.argmax(1) == y_test) == accuracy


@pytest.mark.parametrize("opset", [13, 15, 17, 19, 21])
def test_export_at_every_opset_from_a_program(digits_run, tmp_path, opset):
    example, _, _, trainer, _ = digits_run
    _, x_test, _, _ = example.load_digits_split(0)
    path = tmp_path / f"m{opset}.onnx"
    trainer.export(path, opset=opset)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert next(o.version for o in model.opset_import if o.domain == "") == opset
    assert [i.name for i in model.graph.input] == ["x"]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x_test})[0]
    np.testing.assert_allclose(got, trainer.predict(x_test, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [None, 13, 16, 21])
def test_export_from_a_bare_bundle(tmp_path, opset):
    x, y = toy_data(30)
    tr = Trainer(make_bundle())
    tr.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    tr.export(path, opset=opset)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert next(o.version for o in model.opset_import if o.domain == "") == (opset or 17)
    assert {i.name for i in model.graph.input} == {"x"} and os.listdir(tmp_path) == ["m.onnx"]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, tr.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_export_rejects_bad_opsets(tmp_path):
    tr = Trainer(make_bundle())
    for opset in (12, 22, "17", 17.0):
        with pytest.raises(OpsetError, match="accepted: integers 13 to 21"):
            tr.export(tmp_path / "m.onnx", opset=opset)
    assert not os.listdir(tmp_path)
