"""The throughput benchmark's hand-fused train steps compute the same step as the
compiled programs (otherwise its fit/fused ratio would compare different work)."""
import importlib.util
import os

import numpy as np
import onnxruntime as ort
import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "train_throughput.py")


def load_bench():
    spec = importlib.util.spec_from_file_location("train_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, optimizer", [("mlp784-256-10", "sgd"), ("mlp784-256-10", "adam"),
                                             ("cnn8-pool-10", "sgd")])
def test_fused_step_equals_the_compiled_step(name, optimizer):
    tt = load_bench()
    raw, state = tt.fused_graph(name, optimizer, seed=3)
    trainer = tt.symgrad_trainer(name, optimizer, threads=1)
    order = ["K", "kb", "W", "b"] if name.startswith("cnn") else ["W0", "b0", "W1", "b1"]
    trainer.set_weights([state[k] for k in order])
    trainer.learning_rate = 0.05
    rng = np.random.default_rng(0)
    x = rng.random((16, *tt.input_shape(name)), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    loss = trainer.train_on_batch(x, y)
    sess = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    feeds = {"x": x, "y": y, "learning_rate": np.array(0.05, np.float32), "step": np.array(1, np.float32), **state}
    feeds = {k: v for k, v in feeds.items() if k in {i.name for i in sess.get_inputs()}}
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    assert out["loss"] == pytest.approx(loss, rel=1e-5)
    # Adam's first step moves every weight by about +-lr whatever the gradient's size, so
    # float32 noise in near-zero gradients shows: compare to a thousandth of the step
    atol = 1e-3 * 0.05 if optimizer == "adam" else 1e-6
    for got, key in zip(trainer.get_weights(), order):
        np.testing.assert_allclose(got, out[f"next/{key}"], rtol=1e-4, atol=atol, err_msg=key)
        assert not np.array_equal(got, state[key])
    assert tt.flops_per_step(name, 64) > 0
