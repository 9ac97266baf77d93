"""The graph tidy passes change how a graph is written, never what it computes: every
program graph is compared with its untidied emission on random feeds."""
import numpy as np
import pytest

from symgrad.compiler import Loss, Sequential, layers, ops, optimizers
from symgrad.compiler import program as program_mod
from symgrad.compiler.emit import OnnxBuilder, check, make_model
from symgrad.compiler.loss import Y_PRED, Y_TRUE
from symgrad.compiler.tidy import name_outputs, tidy

from oracle import run

N = 5


def scce():
    return Loss(-ops.sum(ops.one_hot(Y_TRUE, Y_PRED) * ops.log_softmax(Y_PRED)), labels="sparse", name="scce")


def models():
    yield (Sequential([layers.Dense(6, activation="relu"), layers.Dense(3)], input_shape=(4,), seed=0),
           optimizers.Adam(0.01, global_clipnorm=1.0), ["accuracy", "sparse_top_k_categorical_accuracy"])
    yield (Sequential([layers.Dense(6), layers.BatchNormalization(), layers.Dropout(0.3), layers.Dense(3)],
                      input_shape=(4,), seed=1), optimizers.SGD(0.1, momentum=0.9), ["acc"])
    yield (Sequential([layers.Embedding(7, 3), layers.Flatten(), layers.Dense(3)], input_shape=(4,), seed=2),
           optimizers.RMSprop(centered=True), [])
    yield (Sequential([layers.Dense(6, activation="relu"), layers.Dense(3)], input_shape=(4,), seed=3),
           optimizers.SGD(0.1), [])


def feeds(model_proto, rng):
    out = {}
    for i in model_proto.graph.input:
        t = i.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else N for d in t.shape.dim]
        if t.elem_type == 7:
            out[i.name] = rng.integers(0, 3, size=shape).astype(np.int64)
        elif i.name == "step":
            out[i.name] = np.array(3.0)
        else:
            out[i.name] = rng.uniform(0.1, 1.0, size=shape)      # positive: valid variances and slots
    return out


@pytest.mark.parametrize("index", range(4))
def test_tidy_preserves_every_output(index, monkeypatch):
    model, opt, metrics = list(models())[index]
    tidied = program_mod.compile_model(model, scce(), opt, metrics=metrics, dtype="float64")
    monkeypatch.setattr(program_mod, "tidy", lambda m: m)
    raw = program_mod.compile_model(model, scce(), opt, metrics=metrics, dtype="float64")
    rng = np.random.default_rng(index)
    for kind in tidied.graphs:
        a, b = tidied.graphs[kind], raw.graphs[kind]
        assert len(a.graph.node) <= len(b.graph.node)
        f = feeds(b, rng)
        got, want = run(a, **f), run(b, **f)
        assert list(got) == list(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-14, err_msg=f"{kind}: {name}")
    assert len(tidied.graphs["train_step"].graph.node) < len(raw.graphs["train_step"].graph.node)


def test_name_outputs_renames_producers_and_aliases_the_rest():
    b = OnnxBuilder(17, "float32")
    for name in ("x", "a", "b", "c"):
        b.reserve(name)
    t = b.node("Neg", ["x"], hint="t")
    name_outputs(b, [(t, "a"), (t, "b"), ("x", "c")], {"x"})
    assert [(n.op_type, list(n.output)) for n in b.nodes] == [("Neg", ["a"]), ("Identity", ["b"]),
                                                              ("Identity", ["c"])]
    model = check(tidy(make_model(b, [("x", (2,))], [("a", (2,)), ("b", (2,)), ("c", (2,))], "g")))
    out = run(model, x=np.array([1.0, -2.0], np.float32))
    np.testing.assert_array_equal(out["b"], [-1.0, 2.0])
    np.testing.assert_array_equal(out["c"], [1.0, -2.0])


def test_batch_size_is_computed_once():
    # batch norm and the loss each ask for N; the tidied graph computes it once
    model = Sequential([layers.Dense(6), layers.BatchNormalization(), layers.Dense(3)], input_shape=(4,), seed=0)
    program = program_mod.compile_model(model, scce(), "sgd")
    kinds = [n.op_type for n in program.graphs["train_step"].graph.node]
    assert kinds.count("Shape") == 1 and "ReduceProd" not in kinds


@pytest.mark.parametrize("accumulate", [False, True])
def test_sgd_update_folds_into_the_weight_gradient_gemm(accumulate, monkeypatch):
    """W - lr * (x^T g) becomes Gemm(x, g * (-lr)) + W, or Gemm(x, g * (-lr), C=W): no
    weight-sized Mul or Sub is left, and the step equals a NumPy SGD step."""
    from symgrad.compiler import tidy_gemm
    monkeypatch.setattr(tidy_gemm, "ACCUMULATE_IN_GEMM", accumulate)
    model = Sequential([layers.Dense(6, activation="relu"), layers.Dense(3)], input_shape=(4,), seed=3)
    program = program_mod.compile_model(model, scce(), optimizers.SGD(0.1), dtype="float64")
    graph = program.graphs["train_step"].graph
    producers = {o: n for n in graph.node for o in n.output}
    for name in ("next/dense/kernel", "next/dense_1/kernel"):
        node = producers[name]
        if accumulate:
            assert node.op_type == "Gemm" and len(node.input) == 3 and node.input[2] == name[len("next/"):]
        else:
            assert node.op_type == "Add" and name[len("next/"):] in node.input
            assert {producers[i].op_type for i in node.input if i in producers} == {"Gemm"}
    assert not any(n.op_type in ("Sub", "Mul") and list(n.output)[0].startswith("next/") and "kernel" in n.output[0]
                   for n in graph.node)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    w = dict(zip(["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"], (np.asarray(a, np.float64) for a in model.get_weights())))
    out = run(program.graphs["train_step"], x=x, y=y, learning_rate=np.array(0.1), step=np.array(1.0), **w)
    z = x @ w["dense/kernel"] + w["dense/bias"]          # NumPy reference: forward, softmax CE, backward
    h = np.maximum(z, 0)
    logits = h @ w["dense_1/kernel"] + w["dense_1/bias"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = (p - np.eye(3)[y]) / len(x)
    dz = (d @ w["dense_1/kernel"].T) * (z > 0)
    np.testing.assert_allclose(out["next/dense_1/kernel"], w["dense_1/kernel"] - 0.1 * h.T @ d, rtol=1e-12)
    np.testing.assert_allclose(out["next/dense/kernel"], w["dense/kernel"] - 0.1 * x.T @ dz, rtol=1e-12)
