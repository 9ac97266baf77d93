"""Training state travels between Node.js and Python both ways, in one checkpoint format.

Node.js (examples/node/train.js, onnxruntime-node) writes runtime/checkpoint.py's format
(checksummed); Python's Trainer.load_checkpoint restores it exactly, predicts what Node's
exported model predicts, and resumes training bit for bit where Python itself, trained
the same steps, continues. The reverse: Node resumes from a Python checkpoint and goes on
with Python's per-step losses.
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
from symgrad.compiler.bundle import unpack_state
from symgrad.compiler.errors import BundleError
from symgrad.runtime.trainer import Trainer

from needs import require

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "node")
sys.path.insert(0, NODE_DIR)
from batches import write_batches, write_inputs  # noqa: E402
from test_node import _why_not  # noqa: E402


def _node(script, *args):
    out = subprocess.run(["node", os.path.join(NODE_DIR, script), *map(str, args)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    """A bundle, two runs of batches, Python's uninterrupted run over both, and Node's run
    over the first with its checkpoint, state and exported model."""
    require(_why_not())
    tmp = tmp_path_factory.mktemp("roundtrip")
    model = Sequential([layers.Dense(16, activation="relu"), layers.BatchNormalization(), layers.Dense(10)],
                       input_shape=(64,), seed=4)
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.Adam(1e-2), metrics=["accuracy"], seed=4)
    program.save(tmp / "bundle")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(96, 64)).astype(np.float32)
    y = (x[:, :10].argmax(1)).astype(np.int64)
    first = [{"x": x[i:i + 16], "y": y[i:i + 16]} for i in range(0, 48, 16)]
    second = [{"x": x[i:i + 16], "y": y[i:i + 16]} for i in range(48, 96, 16)]
    write_batches(tmp / "first.json", [first])
    write_batches(tmp / "second.json", [second])

    python = Trainer.load(tmp / "bundle", intra_op_num_threads=1)
    py_first = [python.train_on_batch(b["x"], b["y"], return_dict=True)["loss"] for b in first]
    python.save_checkpoint(tmp / "python.ckpt")
    py_state_mid = python.state_dict()
    py_second = [python.train_on_batch(b["x"], b["y"], return_dict=True)["loss"] for b in second]

    node = _node("train.js", tmp / "bundle", tmp / "first.json", "--quiet", "--checkpoint", tmp / "node.ckpt",
                 "--export", tmp / "node.onnx", "--save-state", tmp / "node.bin")
    with open(tmp / "bundle" / "manifest.json", encoding="utf-8") as f:
        manifest = json.load(f)
    node_state = unpack_state(manifest, (tmp / "node.bin").read_bytes())
    return dict(tmp=tmp, x=x, first=first, second=second, py_first=py_first, py_second=py_second,
                py_state_mid=py_state_mid, python_final=python.state_dict(), node=node, node_state=node_state)


def test_node_checkpoint_restores_exactly_in_python(story):
    trainer = Trainer.load(story["tmp"] / "bundle")
    trainer.load_checkpoint(story["tmp"] / "node.ckpt")
    assert trainer.step == 3
    assert trainer.learning_rate == pytest.approx(1e-2)
    state = trainer.state_dict()
    assert set(state) == set(story["node_state"])
    for name, value in story["node_state"].items():
        np.testing.assert_array_equal(state[name], value, err_msg=name)
    np.testing.assert_allclose(story["node"]["losses"], story["py_first"], rtol=0, atol=1e-5)


def test_python_predicts_what_the_node_exported_model_predicts(story):
    tmp = story["tmp"]
    model = onnx.load(tmp / "node.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["x"]
    assert {p.key: p.value for p in model.metadata_props}["symgrad.step"] == "3"
    trainer = Trainer.load(tmp / "bundle")
    trainer.load_checkpoint(tmp / "node.ckpt")
    x = story["x"][:12]
    pred = trainer.predict(x, verbose=0)
    write_inputs(tmp / "inputs.json", {"x": x})
    node_pred = _node("infer.js", tmp / "node.onnx", tmp / "inputs.json")["outputs"]["y_pred"]
    np.testing.assert_array_equal(np.array(node_pred["data"], np.float32).reshape(node_pred["dims"]), pred)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], pred)


def test_python_resumes_a_node_checkpoint_bit_for_bit(story):
    """Node's three steps leave exactly Python's state, so resuming from Node's checkpoint
    continues exactly as Python's own run does."""
    for name, value in story["py_state_mid"].items():
        np.testing.assert_array_equal(story["node_state"][name], value, err_msg=name)
    trainer = Trainer.load(story["tmp"] / "bundle", intra_op_num_threads=1)
    trainer.load_checkpoint(story["tmp"] / "node.ckpt")
    losses_ = [trainer.train_on_batch(b["x"], b["y"], return_dict=True)["loss"] for b in story["second"]]
    assert losses_ == story["py_second"]
    for name, value in story["python_final"].items():
        np.testing.assert_array_equal(trainer.state_dict()[name], value, err_msg=name)


def test_node_resumes_a_python_checkpoint(story):
    tmp = story["tmp"]
    out = _node("train.js", tmp / "bundle", tmp / "second.json", "--quiet", "--resume", tmp / "python.ckpt",
                "--save-state", tmp / "resumed.bin")
    assert out["steps"] == 6
    np.testing.assert_allclose(out["losses"], story["py_second"], rtol=0, atol=1e-5)
    with open(tmp / "bundle" / "manifest.json", encoding="utf-8") as f:
        resumed = unpack_state(json.load(f), (tmp / "resumed.bin").read_bytes())
    for name, value in story["python_final"].items():
        np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_damaged_node_checkpoint_is_refused_in_python(story):
    tmp = story["tmp"]
    data = bytearray((tmp / "node.ckpt").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp / "bad.ckpt").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum mismatch"):
        Trainer.load(tmp / "bundle").load_checkpoint(tmp / "bad.ckpt")
    out = subprocess.run(["node", os.path.join(NODE_DIR, "train.js"), tmp / "bundle", tmp / "second.json",
                          "--resume", tmp / "bad.ckpt"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "checksum mismatch" in out.stderr


def test_node_reads_a_python_checkpoint_with_infinite_callback_state(story):
    """Python's json writes a callback's best = inf as a bare Infinity; Node still resumes."""
    from symgrad.runtime import checkpoint
    tmp = story["tmp"]
    tensors, meta = checkpoint.read_checkpoint(tmp / "python.ckpt")
    meta["callbacks"] = {"EarlyStopping#0": {"best": float("inf"), "wait": 0, "worst": float("-inf"),
                                             "nan": float("nan")}}
    checkpoint.write_checkpoint(tmp / "inf.ckpt", tensors, meta)
    assert b"Infinity" in (tmp / "inf.ckpt").read_bytes()
    out = _node("train.js", tmp / "bundle", tmp / "second.json", "--quiet", "--resume", tmp / "inf.ckpt")
    np.testing.assert_allclose(out["losses"], story["py_second"], rtol=0, atol=1e-5)
