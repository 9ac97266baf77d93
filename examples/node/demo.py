"""User story: deploy to Node.js, and train from Node.js.

Python compiles a small digits classifier into an artifact bundle, writes a fixed
sequence of batches, trains on them with the Python Trainer and exports model.onnx.
Node.js (onnxruntime-node) then
  - runs model.onnx on a few test digits           (node infer.js model.onnx inputs.json)
  - trains the same bundle on the same batches     (node train.js bundle batches.json)
and this script shows that the two loss curves agree step by step.

Setup once:  (cd examples/node && npm install --ignore-scripts)
Run:         python examples/node/demo.py [--out-dir DIR] [--smoke]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from batches import write_batches, write_inputs  # noqa: E402


def load_data(n):
    """scikit-learn's digits when installed (bundled, no download), else a synthetic stand-in."""
    try:
        from sklearn.datasets import load_digits
        d = load_digits()
        x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    except ImportError:
        rng = np.random.default_rng(0)
        y = rng.integers(0, 10, 600)
        x = (rng.random((600, 64)) * 0.5 + np.eye(10, 64)[y]).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    return x[order[:n]], y[order[:n]], x[order[-8:]], y[order[-8:]]


def prepare(out_dir, epochs=3, batch_size=32, n=512):
    """Write bundle/, batches.json, model.onnx and inputs.json to out_dir; train in Python
    on the same batches and return its per-step losses."""
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    from symgrad.runtime.trainer import Trainer

    x, y, x_test, _ = load_data(n)
    model = Sequential([layers.Dense(32, activation="relu"), layers.Dense(10)], input_shape=(64,), seed=0)
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.Adam(1e-2), metrics=["accuracy"], seed=0)
    bundle = os.path.join(out_dir, "bundle")
    program.save(bundle)

    # the batches in the order both trainers see them, with the learning rate and step
    # number the Python trainer feeds (a halving schedule after the first epoch)
    trainer = Trainer.load(bundle, seed=0)
    epochs_batches, lrs, steps, py_losses = [], [], [], []
    for e in range(epochs):
        trainer.learning_rate = 1e-2 if e == 0 else 5e-3
        batches = []
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            batches.append({"x": xb, "y": yb})
            lrs.append(trainer.learning_rate)
            steps.append(trainer.step + 1)
            py_losses.append(trainer.train_on_batch(xb, yb, return_dict=True)["loss"])
        epochs_batches.append(batches)
    write_batches(os.path.join(out_dir, "batches.json"), epochs_batches, learning_rates=lrs, steps=steps)
    trainer.export(os.path.join(out_dir, "model.onnx"))
    write_inputs(os.path.join(out_dir, "inputs.json"), {"x": x_test})
    return py_losses, trainer.predict(x_test, verbose=0)


def node_ready():
    """Why Node.js cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not on PATH (install Node.js >= 18)"
    if not os.path.isdir(os.path.join(HERE, "node_modules", "onnxruntime-node")):
        return "onnxruntime-node is not installed: run 'npm install --ignore-scripts' in examples/node"
    return None


def run_node(script, *args):
    out = subprocess.run(["node", os.path.join(HERE, script), *args], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"node {script} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", help="where the bundle and files go (default: a temp folder)")
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("SYMGRAD_SMOKE") == "1",
                        help="1 epoch on 128 samples (CI size)")
    args = parser.parse_args(argv)
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="symgrad-node-")
    epochs, n = (1, 128) if args.smoke else (3, 512)
    py_losses, py_pred = prepare(out_dir, epochs=epochs, n=n)
    print(f"wrote {out_dir}/bundle, batches.json, model.onnx, inputs.json; Python trained {len(py_losses)} steps, "
          f"loss {py_losses[0]:.4f} -> {py_losses[-1]:.4f}")
    why = node_ready()
    if why:
        print(f"skipping the Node.js part: {why}")
        return None
    inferred = run_node("infer.js", os.path.join(out_dir, "model.onnx"), os.path.join(out_dir, "inputs.json"))
    node_pred = np.array(inferred["outputs"]["y_pred"]["data"]).reshape(inferred["outputs"]["y_pred"]["dims"])
    print(f"node infer.js: predicted classes {inferred['argmax']}, max |y_pred - Python| = "
          f"{np.abs(node_pred - py_pred).max():.2e}")
    trained = run_node("train.js", os.path.join(out_dir, "bundle"), os.path.join(out_dir, "batches.json"), "--quiet")
    diff = np.abs(np.array(trained["losses"]) - np.array(py_losses)).max()
    print(f"node train.js: {len(trained['losses'])} steps, loss {trained['losses'][0]:.4f} -> "
          f"{trained['losses'][-1]:.4f}; max |loss - Python loss| per step = {diff:.2e}")
    assert diff < 1e-5, diff
    return diff


if __name__ == "__main__":
    main()
