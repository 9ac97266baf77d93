"""Node.js parity: examples/node/train.js (onnxruntime-node) trains a bundle on the same
batches as the Python Trainer and gives the same per-step losses (to 1e-5) and the same
final state; examples/node/infer.js runs an exported model to the same outputs as
trainer.predict.

Runs when `node` is on PATH and examples/node/node_modules holds onnxruntime-node (CI's
.ci/run installs it with `npm install --ignore-scripts`); skips with the reason otherwise.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
from symgrad.compiler.bundle import unpack_state
from symgrad.runtime.trainer import Trainer

NODE_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "node")
sys.path.insert(0, os.path.abspath(NODE_DIR))
from batches import write_batches, write_inputs  # noqa: E402


def _why_not():
    if shutil.which("node") is None:
        return "node is not on PATH: install Node.js >= 18 to run the Node.js parity tests"
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "onnxruntime-node")):
        return ("examples/node/node_modules has no onnxruntime-node: run "
                "'npm install --ignore-scripts' in examples/node to run the Node.js parity tests")
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


def _node(script, *args):
    out = subprocess.run(["node", os.path.join(NODE_DIR, script), *map(str, args)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.1),
    "momentum": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: optimizers.Adam(1e-2),
}


def _model(with_bn):
    hidden = [layers.Dense(12), layers.BatchNormalization(), layers.ReLU()] if with_bn \
        else [layers.Dense(12, activation="tanh")]
    return Sequential(hidden + [layers.Dense(3)], input_shape=(5,), seed=3)


@pytest.mark.parametrize("opt,with_bn", [("sgd", False), ("momentum", False), ("adam", False), ("adam", True)])
def test_node_training_loop_matches_python_trainer(tmp_path, opt, with_bn):
    program = compile_model(_model(with_bn), loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=OPTIMIZERS[opt](), metrics=["accuracy"], seed=3)
    program.save(tmp_path / "bundle")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)

    trainer = Trainer.load(tmp_path / "bundle", seed=0)
    epochs, lrs, steps, py_losses = [], [], [], []
    for e in range(3):
        trainer.learning_rate = trainer.learning_rate * (0.5 if e else 1.0)   # a schedule, as a callback would
        order = rng.permutation(len(x))
        batches = []
        for i in range(0, len(x), 16):                                        # 16, 16 and a last batch of 8
            idx = order[i:i + 16]
            batches.append({"x": x[idx], "y": y[idx]})
            lrs.append(trainer.learning_rate)
            steps.append(trainer.step + 1)
            py_losses.append(trainer.train_on_batch(x[idx], y[idx], return_dict=True)["loss"])
        epochs.append(batches)
    write_batches(tmp_path / "batches.json", epochs, learning_rates=lrs, steps=steps)

    out = _node("train.js", tmp_path / "bundle", tmp_path / "batches.json", "--quiet",
                "--save-state", tmp_path / "final.bin")
    node_losses = np.array(out["losses"])
    assert len(node_losses) == len(py_losses) == 9 and out["steps"] == 9
    np.testing.assert_allclose(node_losses, py_losses, rtol=0, atol=1e-5)
    assert py_losses[-1] < py_losses[0], "the loss did not go down: the comparison would be weak"
    # the per-epoch means that onEpochEnd received are the sample-weighted means of the steps
    for e in range(3):
        sizes = np.array([16, 16, 8])
        np.testing.assert_allclose(out["epochs"]["loss"][e], np.dot(py_losses[3 * e:3 * e + 3], sizes) / 40,
                                   rtol=1e-6)

    # and the state after the last step (weights, batch-norm statistics, optimizer slots)
    with open(tmp_path / "bundle" / "manifest.json", encoding="utf-8") as f:
        manifest = json.load(f)
    node_state = unpack_state(manifest, (tmp_path / "final.bin").read_bytes())
    py_state = trainer.state_dict()
    assert set(node_state) == set(py_state)
    if with_bn:
        assert any(e["name"].startswith("batch_normalization") for e in manifest["state"])
    for name, value in py_state.items():
        np.testing.assert_allclose(node_state[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_node_defaults_feed_the_manifest_learning_rate_and_running_step(tmp_path):
    """Without learning_rate/step in the batches file, train.js feeds the optimizer's
    configured rate and the 1-based step count, as the Python trainer does by default."""
    program = compile_model(_model(False), loss="mse", optimizer=optimizers.Adam(3e-2), seed=1)
    program.save(tmp_path / "bundle")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(24, 5)).astype(np.float32), rng.normal(size=(24, 3)).astype(np.float32)
    trainer = Trainer.load(tmp_path / "bundle")
    py = [trainer.train_on_batch(x[i:i + 8], y[i:i + 8]) for _ in range(2) for i in range(0, 24, 8)]
    batches = [{"x": x[i:i + 8], "y": y[i:i + 8]} for i in range(0, 24, 8)]
    write_batches(tmp_path / "b.json", [batches, batches])
    out = _node("train.js", tmp_path / "bundle", tmp_path / "b.json", "--quiet")
    np.testing.assert_allclose(out["losses"], py, rtol=0, atol=1e-5)


def test_node_inference_matches_predict(tmp_path):
    program = compile_model(_model(True), loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.Adam(1e-2), seed=2)
    trainer = Trainer(program, seed=2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 5)).astype(np.float32)
    trainer.fit(x, (x[:, 0] > 0).astype(np.int64), epochs=2, batch_size=8, verbose=0)
    trainer.export(tmp_path / "model.onnx", opset=13)
    write_inputs(tmp_path / "inputs.json", {"x": x[:6]})
    out = _node("infer.js", tmp_path / "model.onnx", tmp_path / "inputs.json")
    pred = trainer.predict(x[:6], verbose=0)
    got = np.array(out["outputs"]["y_pred"]["data"]).reshape(out["outputs"]["y_pred"]["dims"])
    np.testing.assert_allclose(got, pred, rtol=1e-5, atol=1e-6)
    assert out["argmax"] == np.argmax(pred, axis=1).tolist()


def test_node_train_reports_a_broken_bundle_in_one_line(tmp_path):
    (tmp_path / "bundle").mkdir()
    out = subprocess.run(["node", os.path.join(NODE_DIR, "train.js"), str(tmp_path / "bundle"), "x.json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "manifest.json is missing" in out.stderr


def test_node_trains_and_infers_a_two_input_two_output_model(tmp_path):
    """Integer token ids and a float input, two outputs: train.js reads every input from the
    manifest's inputs list, logs each output's loss, and reaches the Python trainer's state;
    infer.js runs the exported model (inputs and outputs under their graph names)."""
    from symgrad.compiler import Input, Model
    tokens, meta = Input((3,), dtype="int64", name="tokens"), Input((4,), name="meta")
    h = layers.Concatenate()([layers.Flatten()(layers.Embedding(7, 2)(tokens)), layers.Dense(5, activation="tanh")(meta)])
    model = Model([tokens, meta], {"topic": layers.Dense(3)(h), "score": layers.Dense(1)(h)}, seed=4)
    program = compile_model(model, loss={"topic": losses.get("sparse_categorical_crossentropy", from_logits=True),
                                         "score": "mse"}, loss_weights={"score": 0.5}, optimizer=optimizers.Adam(1e-2))
    program.save(tmp_path / "bundle")
    rng = np.random.default_rng(3)
    xt, xm = rng.integers(0, 7, (24, 3)), rng.normal(size=(24, 4)).astype(np.float32)
    y1, y2 = xt[:, 0] % 3, xm[:, :1] * 0.5
    trainer = Trainer.load(tmp_path / "bundle")
    py, batches = [], []
    for i in range(0, 24, 8):
        s = slice(i, i + 8)
        py.append(trainer.train_on_batch([xt[s], xm[s]], [y1[s], y2[s]], return_dict=True))
        batches.append({"x/tokens": xt[s], "x/meta": xm[s], "y/topic": y1[s], "y/score": y2[s]})
    write_batches(tmp_path / "b.json", [batches])
    out = _node("train.js", tmp_path / "bundle", tmp_path / "b.json", "--quiet", "--save-state", tmp_path / "s.bin")
    np.testing.assert_allclose(out["losses"], [p["loss"] for p in py], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["epochs"]["score_loss"][0], np.mean([p["score_loss"] for p in py]), rtol=1e-5)
    with open(tmp_path / "bundle" / "manifest.json", encoding="utf-8") as f:
        node_state = unpack_state(json.load(f), (tmp_path / "s.bin").read_bytes())
    for name, value in trainer.state_dict().items():
        np.testing.assert_allclose(node_state[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    trainer.export(tmp_path / "model.onnx")
    write_inputs(tmp_path / "inputs.json", {"x/tokens": xt[:5], "x/meta": xm[:5]})
    got = _node("infer.js", tmp_path / "model.onnx", tmp_path / "inputs.json")["outputs"]
    pred = trainer.predict([xt[:5], xm[:5]], verbose=0)
    for key in ("topic", "score"):
        arr = np.array(got[f"y_pred/{key}"]["data"]).reshape(got[f"y_pred/{key}"]["dims"])
        np.testing.assert_allclose(arr, pred[key], rtol=1e-5, atol=1e-6)
