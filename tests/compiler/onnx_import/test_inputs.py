"""What the importer accepts: external-data weights (read safely), Constant nodes as
weights, a weight shared by several nodes (its gradient is the sum), Dropout's seeded
noise in training, and the refusals."""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from symgrad.compiler import SymgradError, from_onnx, optimizers
from symgrad.compiler.gradcheck import Runner
from symgrad.compiler.onnx_import import OnnxModel
from symgrad.runtime import Trainer

from onnx_builders import model, small_cnn


def test_external_data_weights_load_from_the_model_folder(tmp_path):
    m = small_cnn()
    want = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    path = tmp_path / "cnn.onnx"
    onnx.save(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="cnn.data",
              size_threshold=0)
    assert (tmp_path / "cnn.data").is_file()
    imported = OnnxModel(str(path))
    for w in imported.weights:
        np.testing.assert_array_equal(w.initial, want[w.name])


def test_external_data_outside_the_folder_is_refused(tmp_path):
    m = small_cnn()
    inner = tmp_path / "inner"
    inner.mkdir()
    onnx.save(m, str(inner / "cnn.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="cnn.data", size_threshold=0)
    loaded = onnx.load(str(inner / "cnn.onnx"), load_external_data=False)
    for t in loaded.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../secret.data"
    (tmp_path / "secret.data").write_bytes((inner / "cnn.data").read_bytes())
    onnx.save(loaded, str(inner / "evil.onnx"))
    with pytest.raises(SymgradError, match="outside"):
        from_onnx(str(inner / "evil.onnx"), loss="mse", optimizer="sgd")


def test_non_standard_domains_and_garbage_are_refused(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(SymgradError, match="is not an ONNX model"):
        from_onnx(str(bad), loss="mse", optimizer="sgd")
    m = model([helper.make_node("Relu", ["x"], ["y"])], [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                       ["N", 2])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], {})
    m.graph.node[0].domain = "com.microsoft"
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(SymgradError, match="com.microsoft"):
        from_onnx(m, loss="mse", optimizer="sgd")


def _shared_weight_model(dtype=np.float64):
    """y = x W + relu(x) W: one initializer read by two MatMuls."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2)).astype(dtype)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("MatMul", ["r", "W"], ["b"]), helper.make_node("Add", ["a", "b"], ["y"])]
    return model(nodes, [helper.make_tensor_value_info("x", elem, ["N", 3])],
                 [helper.make_tensor_value_info("y", elem, ["N", 2])], {"W": w}), w


def test_a_weight_shared_by_two_nodes_gets_the_sum_of_its_gradients():
    m, w = _shared_weight_model()
    program = from_onnx(m, loss="mse", optimizer="sgd", dtype="float64")
    assert [p["name"] for p in program.manifest["params"]] == ["W"]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    got = Runner(program.graphs["gradients"])({"x": x, "y": y, "W": w})["grad/W"]
    # the sum of both uses' gradients, written out: d/dW mean((xW + relu(x)W - y)^2)
    pred = x @ w + np.maximum(x, 0) @ w
    g = 2 * (pred - y) / pred.size
    np.testing.assert_allclose(got, x.T @ g + np.maximum(x, 0).T @ g, rtol=1e-10)


def test_constant_nodes_become_weights_when_asked():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(w)),
             helper.make_node("MatMul", ["x", "W"], ["y"])]
    m = model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], {})
    assert OnnxModel(m).weights == []                     # by default a constant stays one
    as_weights = from_onnx(m, loss="mse", optimizer="sgd", constants_as_weights=True)
    assert [p["name"] for p in as_weights.manifest["params"]] == ["W"]
    by_name = from_onnx(m, loss="mse", optimizer="sgd", trainable=["W"])
    np.testing.assert_array_equal(by_name.state["W"], w)


def test_dropout_feeds_seeded_noise_in_training_and_is_off_in_eval():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Dropout", ["x", "ratio"], ["d"]), helper.make_node("MatMul", ["d", "W"], ["y"])]
    m = model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
              {"ratio": np.array(0.5, np.float32), "W": rng.normal(size=(6, 2)).astype(np.float32)})
    program = from_onnx(m, loss="mse", optimizer=optimizers.SGD(0.0))
    assert [r["name"] for r in program.manifest["random_inputs"]] == ["d/noise"]
    x = np.ones((64, 6), np.float32)
    y = np.zeros((64, 2), np.float32)
    a, b = Trainer(program, seed=3), Trainer(program, seed=3)
    la, lb = a.train_on_batch(x, y, return_dict=True)["loss"], b.train_on_batch(x, y, return_dict=True)["loss"]
    assert la == lb                                        # same seed, same noise
    clean = a.evaluate(x, y, verbose=0)
    clean = clean["loss"] if isinstance(clean, dict) else clean
    assert la != pytest.approx(clean)
    want = np.mean((x @ numpy_helper.to_array(m.graph.initializer[1])) ** 2)
    assert clean == pytest.approx(want, rel=1e-5)


def test_opset_outside_7_to_21_is_refused():
    m, _ = _shared_weight_model(np.float32)
    m.opset_import[0].version = 6
    with pytest.raises(SymgradError, match="opsets 7 to 21"):
        from_onnx(m, loss="mse", optimizer="sgd")


__all__ = ["os"]
