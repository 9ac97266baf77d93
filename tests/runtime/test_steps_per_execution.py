"""compile_model(..., steps_per_execution=K): K steps per onnxruntime run.

The oracle is the same program trained one step per run: the weights, the per-batch
losses and the optimizer state must be equal bit for bit, for SGD and Adam, with batch
normalization and dropout (whose noise the K-step run must draw in the same order)."""
import numpy as np
import onnx
import pytest

from symgrad.compiler import ParameterError, Sequential, compile_model, layers, losses, optimizers
from symgrad.runtime import Trainer, callbacks


def _program(optimizer, k, seed=3):
    model = Sequential([layers.Dense(12, activation="relu"), layers.BatchNormalization(), layers.Dropout(0.25),
                        layers.Dense(3)], input_shape=(5,))
    return compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                         optimizer=optimizer, metrics=["accuracy"], seed=seed, steps_per_execution=k)


def _data(n=70, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append((batch, dict(logs)))


@pytest.fixture(params=["unrolled", "loop"])
def loop_form(request, monkeypatch):
    """Both forms of the train_loop graph: the K steps written out, and an ONNX Loop."""
    from symgrad.compiler import steps_loop
    monkeypatch.setattr(steps_loop, "UNROLL_MAX_NODES", 1 << 30 if request.param == "unrolled" else 0)
    return request.param


@pytest.mark.parametrize("optimizer", [lambda: optimizers.SGD(0.1, momentum=0.9), lambda: optimizers.Adam(0.01)])
def test_k_steps_per_run_equal_k_single_runs_bit_for_bit(optimizer, loop_form):
    x, y = _data()
    runs = {}
    for k in (1, 4):
        trainer = Trainer(_program(optimizer(), k), seed=7)
        history = trainer.fit(x, y, epochs=3, batch_size=8, verbose=0)
        runs[k] = (trainer, history)
    (t1, h1), (t4, h4) = runs[1], runs[4]
    assert "train_loop" in t4.bundle.graphs and t4._loop_steps() == 4
    loop_graph = onnx.load_from_string(t4.bundle.graphs["train_loop"]).graph
    assert ("Loop" in {n.op_type for n in loop_graph.node}) == (loop_form == "loop")
    assert t4.step == t1.step == 3 * 9
    for a, b in zip(t1.get_weights(), t4.get_weights()):
        np.testing.assert_array_equal(a, b)
    for name in t1._store.pairs:                  # optimizer slots and batch-norm statistics too
        np.testing.assert_array_equal(t1._store.get(name), t4._store.get(name))
    assert h1.history == h4.history               # epoch means of identical per-batch values


def test_batch_hooks_run_once_per_execution_with_its_running_means():
    x, y = _data(n=70)         # 8 full batches of 8 and one of 6: executions of 4, 4, then 1
    logs = {}
    for k in (1, 4):
        rec = Recorder()
        Trainer(_program(optimizers.SGD(0.05), k), seed=1).fit(x, y, epochs=1, batch_size=8, verbose=0,
                                                               callbacks=[rec])
        logs[k] = rec.batches
    assert [b for b, _ in logs[4]] == [3, 7, 8]
    by_batch = dict(logs[1])
    for b, entry in logs[4]:
        assert entry == by_batch[b]               # Keras's running mean up to that batch


def test_train_loop_graph_is_standard_onnx_and_k_must_be_a_positive_integer(loop_form):
    program = _program(optimizers.Adam(0.01), 3)
    loop = program.graphs["train_loop"]
    onnx.checker.check_model(loop, full_check=True)
    ops = {n.op_type for n in loop.graph.node}
    assert ops == {"Loop"} if loop_form == "loop" else ("Loop" not in ops and len(loop.graph.node) >= 3 * len(
        program.graphs["train_step"].graph.node))
    assert all(o.domain in ("", "ai.onnx") for o in loop.opset_import)
    spec = program.manifest["graphs"]["train_loop"]
    assert spec["steps"] == 3 and spec["feeds"] == program.manifest["graphs"]["train_step"]["feeds"]
    x_in = next(i for i in loop.graph.input if i.name == "x")
    assert x_in.type.tensor_type.shape.dim[0].dim_value == 3
    assert "train_loop" not in _program(optimizers.Adam(0.01), 1).graphs
    for bad in (0, -2, 1.5, True, "4"):
        with pytest.raises(ParameterError, match="steps_per_execution"):
            _program(optimizers.SGD(0.1), bad)


def test_a_saved_bundle_keeps_its_train_loop(tmp_path, loop_form):
    x, y = _data()
    program = _program(optimizers.SGD(0.1), 2)
    program.save(tmp_path / "b")
    loaded = Trainer.load(tmp_path / "b", seed=2)
    direct = Trainer(program, seed=2)
    assert loaded._loop_steps() == 2
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    direct.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(loaded.get_weights(), direct.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_train_step_with_a_subgraph_is_refused_in_either_form(loop_form):
    """Renaming a step's nodes would not follow the outer names a subgraph reads."""
    from onnx import TensorProto, helper
    from symgrad.compiler.steps_loop import train_loop
    vi = helper.make_tensor_value_info
    branch = helper.make_graph([helper.make_node("Identity", ["w"], ["out"])], "branch", [], [vi("out", TensorProto.FLOAT, [])])
    g = helper.make_graph([helper.make_node("If", ["c"], ["next/w"], then_branch=branch, else_branch=branch)], "step",
                          [vi("c", TensorProto.BOOL, []), vi("w", TensorProto.FLOAT, []), vi("step", TensorProto.FLOAT, [])],
                          [vi("next/w", TensorProto.FLOAT, [])])
    with pytest.raises(ParameterError, match="subgraph"):
        train_loop(helper.make_model(g), 2, {"next/w": "w"})
