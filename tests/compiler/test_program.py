"""compile_model: the five graphs, their manifest and bundle, against NumPy written here."""
import json
import os

import numpy as np
import onnx
import pytest

from symgrad.compiler import Loss, Sequential, layers, metrics, ops, optimizers
from symgrad.compiler.bundle import Bundle
from symgrad.compiler.errors import BundleError, OpsetError, ParameterError, UnknownNameError
from symgrad.compiler.loss import Y_PRED, Y_TRUE
from symgrad.compiler.program import compile_model

from oracle import central_fd, run, session

SIZES = [4, 5, 3]
N = 6


def mlp(sizes=SIZES, seed=0):
    """Dense-relu-Dense with small random biases (Keras starts them at zero)."""
    model = Sequential([layers.Dense(sizes[1], activation="relu"), layers.Dense(sizes[2])],
                       input_shape=(sizes[0],), seed=seed)
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.1, w.shape) for w in model.get_weights()])
    return model


def scce():
    return Loss(-ops.sum(ops.one_hot(Y_TRUE, Y_PRED) * ops.log_softmax(Y_PRED)), labels="sparse", name="scce")


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, SIZES[0]))
    y = rng.integers(0, SIZES[-1], size=N).astype(np.int64)
    return x, y


# ------------------------------------------------------------------ NumPy oracle

def forward(w, x):
    z1 = x @ w["dense/kernel"] + w["dense/bias"]
    h = np.maximum(z1, 0)
    return z1, h, h @ w["dense_1/kernel"] + w["dense_1/bias"]


def np_loss(w, x, y):
    _, _, logits = forward(w, x)
    lse = np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1)) + logits.max(-1)
    return np.mean(lse - logits[np.arange(len(y)), y])


def np_grads(w, x, y):
    """Backpropagation written out by hand: d/dlogits of the mean cross-entropy is
    (softmax - onehot) / N."""
    z1, h, logits = forward(w, x)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    d = (p - np.eye(logits.shape[1])[y]) / len(y)
    dh = d @ w["dense_1/kernel"].T
    dz1 = dh * (z1 > 0)
    return {"dense/kernel": x.T @ dz1, "dense/bias": dz1.sum(0),
            "dense_1/kernel": h.T @ d, "dense_1/bias": d.sum(0)}


def initial(program):
    return {k: v.astype(np.float64) for k, v in program.state.items()}


def feeds_for(program, kind, state, x, y, lr=0.1, step=1.0, extra=None):
    """Feed a graph by the manifest's input names alone."""
    dt = np.dtype(program.dtype)
    pool = {"x": x.astype(dt), "y": y, "learning_rate": np.array(lr, dt), "step": np.array(step, dt)}
    pool.update({k: v.astype(dt) for k, v in state.items()})
    pool.update(extra or {})
    return {name: pool[name] for name in program.manifest["graphs"][kind]["inputs"]}


# ------------------------------------------------------------------ tests

def test_hand_derived_oracle_matches_finite_differences(batch):
    x, y = batch
    w = {k: v for k, v in initial(compile_model(mlp(), scce(), "sgd", dtype="float64")).items()}
    g = np_grads(w, x, y)
    for name in w:
        def f(v, name=name):
            return np_loss({**w, name: v}, x, y)
        np.testing.assert_allclose(g[name], central_fd(f, w[name]), rtol=1e-6, atol=1e-8)


def test_gradients_graph_matches_numpy_backprop(batch):
    x, y = batch
    program = compile_model(mlp(), scce(), "sgd", dtype="float64")
    w = initial(program)
    out = run(program.graphs["gradients"], **feeds_for(program, "gradients", w, x, y))
    assert out["loss"] == pytest.approx(np_loss(w, x, y), rel=1e-12)
    for name, want in np_grads(w, x, y).items():
        np.testing.assert_allclose(out[f"grad/{name}"], want, rtol=1e-10, atol=1e-12)


def test_sgd_momentum_steps_match_numpy(batch):
    x, y = batch
    opt = optimizers.SGD(0.5, momentum=0.9)
    program = compile_model(mlp(), scce(), opt, dtype="float64")
    state = initial(program)
    w = {k: state[k] for k in np_grads(state, x, y)}
    velocity = {k: np.zeros_like(v) for k, v in w.items()}
    for step in (1, 2, 3):
        out = run(program.graphs["train_step"], **feeds_for(program, "train_step", state, x, y, lr=0.5, step=step))
        assert out["loss"] == pytest.approx(np_loss(w, x, y), rel=1e-12)
        g = np_grads(w, x, y)
        for k in w:                       # Keras SGD: v = mu v - lr g; w += v
            velocity[k] = 0.9 * velocity[k] - 0.5 * g[k]
            w[k] = w[k] + velocity[k]
            np.testing.assert_allclose(out[f"next/{k}"], w[k], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(out[f"next/sgd/momentum/{k}"], velocity[k], rtol=1e-10, atol=1e-12)
        state = {k: out[f"next/{k}"] for k in state}       # every state tensor is fed back


def test_adam_step_matches_numpy_float32(batch):
    x, y = batch
    program = compile_model(mlp(), scce(), optimizers.Adam(0.01), dtype="float32")
    state = {k: v.astype(np.float64) for k, v in program.state.items()}
    w = {k: state[k] for k in np_grads(state, x, y)}
    out = run(program.graphs["train_step"], **feeds_for(program, "train_step", state, x, y, lr=0.01, step=1))
    g = np_grads(w, x, y)
    for k in w:
        m, v = 0.1 * g[k], 0.001 * g[k] ** 2
        alpha = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
        np.testing.assert_allclose(out[f"next/{k}"], w[k] - alpha * m / (np.sqrt(v) + 1e-7), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[f"next/adam/m/{k}"], m, rtol=1e-5, atol=1e-7)


def test_train_step_equals_gradients_then_update(batch):
    x, y = batch
    program = compile_model(mlp(), scce(), optimizers.RMSprop(0.01, momentum=0.5, centered=True),
                            metrics=["accuracy"], dtype="float64")
    state = initial(program)
    state = {k: v + 0.01 for k, v in state.items()}       # non-trivial slots
    whole = run(program.graphs["train_step"], **feeds_for(program, "train_step", state, x, y, lr=0.01, step=4))
    grads = run(program.graphs["gradients"], **feeds_for(program, "gradients", state, x, y))
    upd = run(program.graphs["update"], **feeds_for(program, "update", state, x, y, lr=0.01, step=4,
                                                      extra={k: v for k, v in grads.items() if k.startswith("grad/")}))
    assert whole["loss"] == pytest.approx(grads["loss"], rel=1e-14)
    assert whole["metric/accuracy"] == grads["metric/accuracy"]
    for name, value in upd.items():
        np.testing.assert_allclose(whole[name], value, rtol=1e-12, atol=1e-14)
    assert set(upd) == {k for k in whole if k.startswith("next/")}


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_every_graph_passes_checker_and_loads(opset):
    program = compile_model(mlp(), scce(), optimizers.Adam(), metrics=["accuracy", "sparse_top_k_categorical_accuracy"],
                            opset=opset)
    for kind, model in program.graphs.items():
        sess = session(model)                 # full checker + standard domain + loads in onnxruntime
        assert model.opset_import[0].version == opset
        assert [i.name for i in sess.get_inputs()] == program.manifest["graphs"][kind]["inputs"]
        assert [o.name for o in sess.get_outputs()] == program.manifest["graphs"][kind]["outputs"]


def test_inference_model_bakes_weights_at_every_opset(batch):
    x, _ = batch
    program = compile_model(mlp(), scce(), "sgd")
    rng = np.random.default_rng(0)
    weights = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in program.state.items()}
    want = forward({k: v.astype(np.float64) for k, v in weights.items()}, x)[2]
    for opset in range(13, 22):
        model = program.inference_model(weights, opset=opset)
        assert [i.name for i in model.graph.input] == ["x"]
        np.testing.assert_allclose(run(model, x=x.astype(np.float32))["y_pred"], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ParameterError, match="dense/kernel"):
        program.inference_model({"dense/bias": weights["dense/bias"]})
    with pytest.raises(OpsetError):
        program.inference_model(weights, opset=12)


def test_eval_loss_and_metrics_match_numpy(batch):
    x, y = batch
    program = compile_model(mlp(), scce(), "sgd", dtype="float64",
                            metrics=["accuracy", "sparse_top_k_categorical_accuracy",
                                     metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
    w = initial(program)
    out = run(program.graphs["eval"], **feeds_for(program, "eval", w, x, y))
    logits = forward(w, x)[2]
    assert out["loss"] == pytest.approx(np_loss(w, x, y), rel=1e-12)
    assert out["metric/accuracy"] == pytest.approx(np.mean(np.argmax(logits, -1) == y))
    assert out["metric/sparse_top_k_categorical_accuracy"] == 1.0          # k=5 >= 3 classes
    second = -np.sort(-logits, -1)[:, 1]
    assert out["metric/top2"] == pytest.approx(np.mean(logits[np.arange(N), y] >= second))
    assert program.manifest["metrics"] == ["accuracy", "sparse_top_k_categorical_accuracy", "top2"]


def test_dense_labels_with_sample_weight_and_regression_metrics():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(N, SIZES[0])), rng.normal(size=(N, SIZES[-1]))
    sw = rng.uniform(size=N)
    loss = Loss(ops.mean((Y_PRED - Y_TRUE) ** 2, axis=-1), name="mse")
    program = compile_model(mlp(), loss, "sgd", metrics=["mae", "mse"], dtype="float64",
                            sample_weight=True)
    assert program.manifest["data"]["sample_weight"] == {"name": "sample_weight", "shape": ["N"], "dtype": "float64"}
    w = initial(program)
    out = run(program.graphs["eval"], **feeds_for(program, "eval", w, x, y, extra={"sample_weight": sw}))
    pred = forward(w, x)[2]
    per = np.mean((pred - y) ** 2, -1)
    assert out["loss"] == pytest.approx(np.sum(sw * per) / N, rel=1e-12)    # Keras sum_over_batch_size
    assert out["metric/mae"] == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-12)   # unweighted, as Keras
    assert out["metric/mse"] == pytest.approx(np.mean(per), rel=1e-12)


def test_training_from_the_manifest_alone_reduces_the_loss(batch, tmp_path):
    x, y = batch
    compile_model(mlp(), scce(), optimizers.Adam(0.05), metrics=["accuracy"]).save(tmp_path / "b")
    bundle = Bundle.load(tmp_path / "b")          # from here on: no program object, no sympy
    m = bundle.manifest
    graph = m["graphs"]["train_step"]
    sess = session(onnx.load_from_string(bundle.graphs["train_step"]))
    state = dict(bundle.state)
    losses = []
    for step in range(1, 81):
        pool = {"x": x.astype(np.float32), "y": y, m["hyper"]["learning_rate"]: np.array(0.05, np.float32),
                m["hyper"]["step"]: np.array(step, np.float32), **state}
        outs = dict(zip(graph["outputs"], sess.run(None, {k: pool[k] for k in graph["inputs"]})))
        losses.append(float(outs["loss"]))
        state.update({graph["feeds"][k]: v for k, v in outs.items() if k in graph["feeds"]})
    assert losses[-1] < 0.2 * losses[0]
    assert outs["metric/accuracy"] == 1.0


def test_bundle_round_trip_with_checksums(tmp_path):
    program = compile_model(mlp(), scce(), optimizers.Adam(), metrics=["acc"])
    path = program.save(tmp_path / "bundle")
    variants = ["train_step_weighted", "eval_weighted"]        # for weighted batches, no recompiling
    assert sorted(os.listdir(path)) == sorted(["manifest.json", "state.bin"]
                                              + [f"{k}.onnx" for k in list(program.graphs) + variants])
    loaded = Bundle.load(path)
    m = loaded.manifest
    assert m["format"] == "symgrad-bundle" and m["opset"] == 17 and m["dtype"] == "float32"
    assert m["data"]["x"] == {"name": "x", "shape": ["N", 4], "dtype": "float32"}
    assert m["data"]["y"] == {"name": "y", "shape": ["N"], "dtype": "int64"}
    assert [p["name"] for p in m["params"]] == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    assert m["params"][0]["layer"] == "dense" and m["params"][0]["trainable"] is True
    assert [s["name"] for s in m["slots"]][:2] == ["adam/m/dense/kernel", "adam/v/dense/kernel"]
    assert m["optimizer"] == {"name": "adam", "config": program.optimizer.get_config()}
    assert m["graphs"]["train_step"]["feeds"]["next/adam/v/dense_1/bias"] == "adam/v/dense_1/bias"
    assert m["graphs"]["gradients"]["feeds"] == {}                    # no model state in this MLP
    assert m["graphs"]["eval"]["outputs"] == ["loss", "metric/acc"]
    assert m["graphs"]["inference"]["outputs"] == ["y_pred"]
    all_graphs = dict(program.graphs, **program._weighted_variants())
    for kind, data in loaded.graphs.items():
        assert data == all_graphs[kind].SerializeToString()
        assert m["checksums"][f"{kind}.onnx"].startswith("sha256:")
    for name, arr in program.state.items():
        np.testing.assert_array_equal(loaded.state[name], arr)
        assert loaded.state[name].dtype == np.float32
    # every feed pairs an output with an input of the same graph, and every state tensor is fed
    for kind in ("train_step", "update"):
        g = m["graphs"][kind]
        assert set(g["feeds"].values()) <= set(g["inputs"]) and set(g["feeds"]) <= set(g["outputs"])
    assert set(m["graphs"]["train_step"]["feeds"].values()) == {e["name"] for e in m["params"] + m["slots"]}
    with open(os.path.join(path, "manifest.json")) as f:
        assert json.load(f)["checksums"] == m["checksums"]
    # a corrupted graph is caught by its checksum
    with open(os.path.join(path, "update.onnx"), "r+b") as f:
        f.seek(20)
        byte = f.read(1)
        f.seek(20)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="update.onnx is corrupt"):
        Bundle.load(path)


def test_train_step_is_lean():
    program = compile_model(mlp((784, 256, 10)), scce(), "sgd")
    ops_used = [n.op_type for n in program.graphs["train_step"].graph.node]
    assert "Identity" not in ops_used           # outputs take their producers' names
    assert "Transpose" not in ops_used          # absorbed into Gemm
    assert ops_used.count("Shape") == 1         # only the batch size is computed at run time
    # SGD: exactly one Mul and one Sub per parameter after the gradients
    names = [n.output[0] for n in program.graphs["train_step"].graph.node]
    assert sum(n.startswith("next/") for n in names) == 4


def test_compile_errors_are_clear():
    model = mlp()
    with pytest.raises(ParameterError, match="reduction='none'"):
        compile_model(model, Loss((Y_PRED - Y_TRUE) ** 2, reduction="none"), "sgd")
    with pytest.raises(UnknownNameError):
        compile_model(model, "not_a_loss", "sgd")
    with pytest.raises(UnknownNameError, match="'sgd'"):
        compile_model(model, scce(), "sgdd")
    with pytest.raises(OpsetError, match="12"):
        compile_model(model, scce(), "sgd", opset=12)
    with pytest.raises(ParameterError, match="integer class labels|shaped like"):
        compile_model(model, scce(), "sgd", metrics=["mae"])


def test_loss_by_catalogue_name(batch):
    x, y = batch
    program = compile_model(mlp(), "sparse_categorical_crossentropy", "sgd", metrics=["accuracy"],
                            dtype="float64")
    assert program.manifest["loss"]["labels"] == "sparse"
    w = initial(program)
    out = run(program.graphs["eval"], **feeds_for(program, "eval", w, x, y))
    logits = forward(w, x)[2]
    assert np.isfinite(out["loss"])
    assert out["metric/accuracy"] == pytest.approx(np.mean(np.argmax(logits, -1) == y))


def test_model_state_and_random_inputs_flow_through_the_manifest():
    model = Sequential([layers.Dense(5), layers.BatchNormalization(), layers.Dropout(0.5), layers.Dense(3)],
                       input_shape=(4,), seed=0)
    program = compile_model(model, scce(), "sgd", dtype="float64")
    m = program.manifest
    stats = ["batch_normalization/moving_mean", "batch_normalization/moving_variance"]
    assert [e["name"] for e in m["state"]] == stats
    assert "batch_normalization/gamma" in [e["name"] for e in m["params"]]
    assert m["random_inputs"] == [{"name": "dropout/noise", "shape": ["N", 5], "dtype": "float64",
                                   "distribution": "uniform"}]
    for kind in ("train_step", "gradients"):
        assert "dropout/noise" in m["graphs"][kind]["inputs"]
    for kind in ("eval", "inference", "update"):
        assert "dropout/noise" not in m["graphs"][kind]["inputs"]
    assert m["graphs"]["gradients"]["feeds"] == {f"next/{n}": n for n in stats}
    assert {f"next/{n}" for n in stats} <= set(m["graphs"]["train_step"]["feeds"])
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(N, 4)), rng.integers(0, 3, size=N).astype(np.int64)
    state = initial(program)
    outs = {}
    for level in (0.1, 0.9):
        noise = {"dropout/noise": np.full((N, 5), level)}
        whole = run(program.graphs["train_step"], **feeds_for(program, "train_step", state, x, y, extra=noise))
        split = run(program.graphs["gradients"], **feeds_for(program, "gradients", state, x, y, extra=noise))
        for n in stats:
            np.testing.assert_allclose(whole[f"next/{n}"], split[f"next/{n}"], rtol=1e-12)
            assert not np.allclose(whole[f"next/{n}"], state[n])        # the statistics moved
        outs[level] = whole["loss"]
    assert outs[0.1] != outs[0.9]                                       # the noise input is live


def test_seed_makes_the_initial_state_reproducible():
    def state(seed):
        model = Sequential([layers.Dense(5, activation="relu"), layers.Dense(3)], input_shape=(4,))
        return compile_model(model, scce(), "adam", seed=seed).state
    a, b, c = state(3), state(3), state(4)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["dense/kernel"], c["dense/kernel"])


def test_integer_inputs_for_embeddings():
    model = Sequential([layers.Embedding(10, 4), layers.Flatten(), layers.Dense(3)], input_shape=(5,), seed=0)
    program = compile_model(model, scce(), "sgd")
    assert program.manifest["data"]["x"] == {"name": "x", "shape": ["N", 5], "dtype": "int64"}
    x = np.random.default_rng(0).integers(0, 10, size=(N, 5)).astype(np.int64)
    out = run(program.graphs["inference"], x=x, **{k: v for k, v in program.state.items()})
    assert out["y_pred"].shape == (N, 3)


def test_issue_example_with_a_custom_scalar_weight_saves_and_loads(tmp_path):
    from symgrad.compiler import Layer, losses

    class Swish(Layer):
        def build(self, input_shape):
            self.beta = self.add_weight("beta", shape=(), initializer="ones")

        def call(self, x):
            return x * ops.sigmoid(self.beta * x)

    model = Sequential([layers.Conv2D(8, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(32), Swish(), layers.Dense(10)], input_shape=(1, 8, 8))
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.Adam(1e-3), metrics=["accuracy"])
    loaded = Bundle.load(program.save(tmp_path / "bundle"))
    beta = [e for e in loaded.manifest["params"] if e["name"] == "swish/beta"]
    assert beta == [{"name": "swish/beta", "shape": [], "dtype": "float32", "trainable": True, "layer": "swish",
                     "offset": beta[0]["offset"], "nbytes": 4}]
    assert loaded.state["swish/beta"].shape == () and loaded.state["swish/beta"] == 1.0
    assert loaded.state["adam/m/swish/beta"].shape == ()
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
    out = run(program.graphs["train_step"], x=x, y=np.array([1, 7]), learning_rate=np.array(1e-3, np.float32),
              step=np.array(1, np.float32), **program.state)
    assert out["next/swish/beta"].shape == () and out["next/swish/beta"] != 1.0     # the custom weight trains


def test_graph_size_benchmark_smoke(capsys):
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "graph_size.py")
    spec = importlib.util.spec_from_file_location("graph_size", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick"]) == 0                     # runs both graphs and checks they agree
    table = capsys.readouterr().out
    assert "sgd" in table and "adam" in table
    sizes = (32, 16, 10)
    program = bench.our_program(sizes, "adam")
    hand, _ = bench.hand_train_step(sizes, "adam")
    assert len(program.graphs["train_step"].graph.node) <= bench.GOAL * len(hand.graph.node)
