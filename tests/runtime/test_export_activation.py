"""trainer.export(path, output_activation=...): the deployed model returns probabilities."""
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
from symgrad.compiler.errors import ParameterError
from symgrad.runtime import Trainer


@pytest.fixture(scope="module")
def trainer():
    model = Sequential([layers.Dense(8, activation="tanh"), layers.Dense(4)], input_shape=(3,), seed=0)
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.SGD(0.1), seed=0)
    t = Trainer(program, seed=0)
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    t.fit(x, (x[:, 0] > 0).astype(np.int64), epochs=1, batch_size=8, verbose=0)
    return t


def _run(path, x):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return model, sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("opset", [None, 13])
def test_softmax_and_sigmoid_follow_the_logits(trainer, tmp_path, opset):
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    logits = trainer.predict(x, verbose=0).astype(np.float64)
    trainer.export(tmp_path / "p.onnx", opset=opset, output_activation="softmax")
    model, probs = _run(tmp_path / "p.onnx", x)
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert [o.name for o in model.graph.output] == ["y_pred"]
    assert {p.key: p.value for p in model.metadata_props}["symgrad.output_activation"] == "softmax"
    trainer.export(tmp_path / "s.onnx", opset=opset, output_activation="sigmoid")
    np.testing.assert_allclose(_run(tmp_path / "s.onnx", x)[1], 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-7)
    trainer.export(tmp_path / "plain.onnx", opset=opset)
    np.testing.assert_allclose(_run(tmp_path / "plain.onnx", x)[1], logits, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bad", ["Softmax", "relu", 3, ""])
def test_an_unknown_activation_is_refused_by_name(trainer, tmp_path, bad):
    with pytest.raises(ParameterError, match="output_activation .* accepted: None, 'softmax', 'sigmoid'"):
        trainer.export(tmp_path / "m.onnx", output_activation=bad)
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_output_activation(trainer, tmp_path):
    trainer.save(tmp_path / "bundle")
    out = subprocess.run([sys.executable, "-m", "symgrad.runtime.cli", "export", str(tmp_path / "bundle"), "-o",
                          str(tmp_path / "m.onnx"), "--output-activation", "softmax"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(_run(tmp_path / "m.onnx", x)[1].sum(1), 1.0, rtol=1e-6)
