"""compile_model(..., portable=True): training graphs without SoftmaxCrossEntropyLoss (or any
other op in compiler/portable.py's list) that compute what the default graphs compute."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers, portable as portable_mod
from symgrad.compiler.errors import ParameterError
from symgrad.compiler.portable import AVOIDED_OPS


@pytest.fixture
def fused_if_faster(monkeypatch):
    """As if a measurement had found the fused op faster: the default graphs then use it."""
    monkeypatch.setattr(portable_mod, "FUSED_CE_IS_FASTER", True)


def _program(portable):
    model = Sequential([layers.Dense(6, activation="tanh"), layers.Dense(4)], input_shape=(3,), seed=0)
    return compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                         optimizer=optimizers.SGD(0.1), metrics=["accuracy"], seed=0, portable=portable)


def _run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {i.name: feeds[i.name] for i in sess.get_inputs()})))


def _fused(program):
    return {k for k, g in program.graphs.items() if "SoftmaxCrossEntropyLoss" in {n.op_type for n in g.graph.node}}


def test_the_default_uses_the_fused_op_only_where_measured_faster(fused_if_faster):
    assert _fused(_program(False)) == {"train_step", "gradients", "eval"}
    assert _fused(_program(True)) == set()


def test_today_no_graph_emits_the_fused_op():
    """benchmarks/fused_ce.py found it slower in onnxruntime's CPU provider (portable.py)."""
    assert portable_mod.FUSED_CE_IS_FASTER is False
    assert _fused(_program(False)) == set()


def test_portable_graphs_avoid_the_listed_ops_and_pass_the_checker(fused_if_faster):
    default, portable = _program(False), _program(True)
    assert _fused(default), "the default graphs hold no fused op: this test would show nothing"
    for kind, g in portable.graphs.items():
        onnx.checker.check_model(g, full_check=True)
        assert not {n.op_type for n in g.graph.node} & set(AVOIDED_OPS), kind
        assert all(o.domain in ("", "ai.onnx") for o in g.opset_import)


def test_portable_loss_and_gradients_equal_a_numpy_reference(fused_if_faster):
    default, portable = _program(False), _program(True)
    rng = np.random.default_rng(0)
    feeds = {k: v.astype(np.float32) for k, v in default.state.items()}
    feeds.update(x=rng.normal(size=(5, 3)).astype(np.float32), y=np.array([0, 3, 1, 1, 2], np.int64))
    w1, b1, w2, b2 = (feeds[n].astype(np.float64) for n in ("dense/kernel", "dense/bias", "dense_1/kernel",
                                                               "dense_1/bias"))
    h = np.tanh(feeds["x"] @ w1 + b1)
    z = h @ w2 + b2
    logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    want_loss = -logp[np.arange(5), feeds["y"]].mean()
    p = np.exp(logp)
    p[np.arange(5), feeds["y"]] -= 1
    want_grad_b2 = p.mean(0)
    for program in (default, portable):
        out = _run(program.graphs["gradients"], feeds)
        np.testing.assert_allclose(out["loss"], want_loss, rtol=1e-5)
        np.testing.assert_allclose(out["grad/dense_1/bias"], want_grad_b2, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(_run(program.graphs["eval"], feeds)["loss"], want_loss, rtol=1e-5)


def test_portable_must_be_a_bool():
    with pytest.raises(ParameterError, match="portable must be True or False"):
        compile_model(Sequential([layers.Dense(2)], input_shape=(3,)), loss="mse", optimizer="sgd", portable="yes")
