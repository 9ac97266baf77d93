"""from_onnx end to end: a small CNN imports, its inference equals the original model's,
its float64 gradients equal finite differences of the original, and it trains."""
import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from symgrad.compiler import UnsupportedOpError, from_onnx, losses, optimizers
from symgrad.compiler.errors import ParameterError, ShapeError, UnknownNameError
from symgrad.compiler.gradcheck import Runner
from symgrad.compiler.onnx_import import OnnxModel
from symgrad.runtime import Trainer

from onnx_builders import TensorProto, helper, model, small_cnn
from oracle import run


def _data(n=12, seed=1, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, 6, 6)).astype(np.float32)
    return x, rng.integers(0, classes, size=n).astype(np.int64)


def _standard_and_checked(program):
    for kind, m in program.graphs.items():
        onnx.checker.check_model(m, full_check=True)
        assert {n.domain for n in m.graph.node} <= {"", "ai.onnx"}, kind


def test_weights_keep_the_exporter_names_and_tied_weights_are_one_param():
    om = OnnxModel(small_cnn())
    names = [w.name for w in om.weights]
    assert names == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                     "conv2.weight", "fc.weight", "fc.bias"]
    frozen = {w.name for w in om.weights if not w.trainable}
    assert frozen == {"bn1.running_mean", "bn1.running_var"}   # statistics, not parameters
    assert om.output_shape == (3,) and om.input_shape == (2, 6, 6)


def test_inference_graph_equals_the_original_model():
    m = small_cnn()
    program = from_onnx(m, loss="sparse_categorical_crossentropy", optimizer="sgd")
    _standard_and_checked(program)
    x, _ = _data()
    want = run(m, x=x)["logits"]
    got = run(program.inference_model(), x=x)["y_pred"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_float64_gradients_equal_finite_differences_of_the_original():
    m = small_cnn(dtype=np.float64)
    program = from_onnx(m, loss="mse", optimizer="sgd", dtype="float64")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 2, 6, 6))
    y = rng.normal(size=(3, 3))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    feeds = {"x": x, "y": y, **{k: inits[k] for k in program.manifest["graphs"]["gradients"]["inputs"]
                                if k in inits}}
    got = Runner(program.graphs["gradients"])(feeds)
    ref = ReferenceEvaluator(m)

    def loss(name, value):
        weights = dict(inits, **{name: value})
        pred = ref.run(None, {"x": x, **weights})[0]
        return float(np.mean((pred - y) ** 2))

    picked = rng.permutation(8)
    for name in ("conv1.weight", "bn1.weight", "conv2.weight", "fc.weight", "fc.bias"):
        base = inits[name]
        fd = []
        for i in range(min(6, base.size)):
            k = picked[i] % base.size
            plus, minus = base.copy().reshape(-1), base.copy().reshape(-1)
            plus[k] += 1e-6
            minus[k] -= 1e-6
            fd.append((loss(name, plus.reshape(base.shape)) - loss(name, minus.reshape(base.shape))) / 2e-6)
            np.testing.assert_allclose(got[f"grad/{name}"].reshape(-1)[k], fd[-1], rtol=1e-5, atol=1e-8,
                                       err_msg=f"grad of {name}[{k}]")
    assert float(got["loss"]) == pytest.approx(loss("fc.bias", inits["fc.bias"]), rel=1e-12)


def test_a_small_cnn_trains_with_falling_loss_and_frozen_weights_stay():
    program = from_onnx(small_cnn(), loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                        optimizer=optimizers.Adam(0.01), frozen=["conv1.weight"], metrics=["accuracy"])
    x, y = _data(24)
    trainer = Trainer(program)
    before = dict(zip(trainer.weight_names, trainer.get_weights()))
    history = [trainer.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(15)]
    assert history[-1] < 0.7 * history[0]
    after = dict(zip(trainer.weight_names, trainer.get_weights()))
    np.testing.assert_array_equal(after["conv1.weight"], before["conv1.weight"])
    np.testing.assert_array_equal(after["bn1.running_mean"], before["bn1.running_mean"])
    assert not np.allclose(after["conv2.weight"], before["conv2.weight"])


def test_batchnorm_train_option_updates_running_statistics_as_state():
    program = from_onnx(small_cnn(), loss="sparse_categorical_crossentropy", optimizer="sgd", batchnorm="train")
    assert [s["name"] for s in program.manifest["state"]] == ["bn1.running_mean", "bn1.running_var"]
    _standard_and_checked(program)
    x, y = _data()
    trainer = Trainer(program)
    trainer.train_on_batch(x, y)
    m = small_cnn()
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    conv = ReferenceEvaluator(helper.make_model(helper.make_graph(
        [m.graph.node[0]], "c", [m.graph.input[0]], [helper.make_tensor_value_info("c1", TensorProto.FLOAT, None)],
        [t for t in m.graph.initializer if t.name.startswith("conv1")]),
        opset_imports=[helper.make_opsetid("", 17)]))
    c1 = conv.run(None, {"x": x})[0]
    state = trainer.state_dict()
    want = 0.9 * inits["bn1.running_mean"] + 0.1 * c1.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(state["bn1.running_mean"], want, rtol=1e-5, atol=1e-6)
    want = 0.9 * inits["bn1.running_var"] + 0.1 * c1.var(axis=(0, 2, 3))      # biased, as ONNX's spec
    np.testing.assert_allclose(state["bn1.running_var"], want, rtol=1e-5, atol=1e-6)


def test_trainable_list_and_expression_loss():
    program = from_onnx(small_cnn(), loss="mean((y_pred - y_true)**2)", optimizer="sgd", trainable=["fc.weight"])
    assert [p["name"] for p in program.manifest["params"] if p["trainable"]] == ["fc.weight"]


def test_an_unsupported_op_names_the_node_and_writes_nothing(tmp_path):
    m = model([helper.make_node("Relu", ["x"], ["r"], name="act"),
               helper.make_node("Det", ["r"], ["d"], name="the_det")],
              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 3])],
              [helper.make_tensor_value_info("d", TensorProto.FLOAT, ["N"])], {})
    with pytest.raises(UnsupportedOpError) as info:
        from_onnx(m, loss="mse", optimizer="sgd")
    text = str(info.value)
    assert "'Det'" in text and "'the_det'" in text and "#1" in text and "docs/ops.md" in text
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_raise_symgrad_errors():
    m = small_cnn()
    with pytest.raises(UnknownNameError, match="conv1.wieght"):
        from_onnx(m, loss="mse", optimizer="sgd", frozen=["conv1.wieght"])
    with pytest.raises(UnknownNameError, match="Known: logits"):
        from_onnx(m, loss="mse", optimizer="sgd", output="probs")
    with pytest.raises(ParameterError, match="batchnorm"):
        from_onnx(m, loss="mse", optimizer="sgd", batchnorm="yes")
    two = model([helper.make_node("Add", ["a", "b"], ["c"])],
                [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 2]) for n in "ab"],
                [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 2])], {})
    with pytest.raises(ParameterError, match="one data input"):
        from_onnx(two, loss="mse", optimizer="sgd")
    dyn = model([helper.make_node("Relu", ["a"], ["c"])],
                [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", "T"])],
                [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", "T"])], {})
    with pytest.raises(ShapeError, match="input_shape"):
        from_onnx(dyn, loss="mse", optimizer="sgd")
    assert from_onnx(dyn, loss="mse", optimizer="sgd", input_shape=(4,)).manifest["data"]["x"]["shape"] == ["N", 4]


def test_shape_arithmetic_folds_with_a_dynamic_batch():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters write flatten."""
    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero_axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["y"]),
    ]
    rng = np.random.default_rng(0)
    m = model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
              {"zero": np.array(0, np.int64), "zero_axes": i64(0), "minus_one": i64(-1),
               "w": rng.normal(size=(6, 4)).astype(np.float32)})
    program = from_onnx(m, loss="mse", optimizer="sgd")
    x = rng.normal(size=(5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(run(program.inference_model(), x=x)["y_pred"], run(m, x=x)["y"], rtol=1e-5)
    assert [w.name for w in program.weights] == ["w"]


def test_old_opsets_are_converted():
    """Opset 9 Softmax means 2-D coercion at axis 1; the converter keeps its meaning."""
    rng = np.random.default_rng(0)
    m = model([helper.make_node("Softmax", ["x"], ["y"], axis=1)],
              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3])], {}, opset=9)
    program = from_onnx(m, loss="mse", optimizer="sgd")
    x = rng.normal(size=(4, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(run(program.inference_model(), x=x)["y_pred"], run(m, x=x)["y"], rtol=1e-5)


def test_batchnorm_train_option_normalises_with_batch_statistics():
    """The train step's loss equals the original model run with BatchNormalization in
    training mode (onnx.reference, training_mode=1: batch mean and biased variance)."""
    m = small_cnn()
    program = from_onnx(m, loss=losses.get("sparse_categorical_crossentropy", from_logits=True), optimizer="sgd",
                        batchnorm="train")
    x, y = _data()
    loss = Trainer(program).train_on_batch(x, y, return_dict=True)["loss"]
    train_mode = onnx.ModelProto()
    train_mode.CopyFrom(m)
    bn = next(n for n in train_mode.graph.node if n.op_type == "BatchNormalization")
    bn.attribute.append(helper.make_attribute("training_mode", 1))
    bn.output.extend(["bn_mean", "bn_var"])
    logits = ReferenceEvaluator(train_mode).run(["logits"], {"x": x})[0].astype(np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-logp[np.arange(len(y)), y].mean(), rel=1e-5)
