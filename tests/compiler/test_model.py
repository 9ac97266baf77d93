"""Sequential and the functional API: the trace protocol (docs/internals.md section 2),
weights order and seeds, summary, branches (Add / Concatenate) against NumPy and finite
differences, and every opset 13..21."""
import numpy as np
import onnx
import pytest

from symgrad.compiler import Input, Model, ParameterError, Sequential, ShapeError, ir, layers
from symgrad.compiler.layers import RandomInput, Weight
from layer_harness import Compiled, check_layer, np_conv

rng = np.random.default_rng(0)


def _mlp(seed=0):
    return Sequential([layers.Dense(5, activation="relu"), layers.Dropout(0.5), layers.BatchNormalization(),
                       layers.Dense(3)], input_shape=(4,), seed=seed)


def test_trace_protocol():
    model = _mlp()
    x = model.input_value()
    assert (x.shape, x.dtype) == (("N", 4), "float")
    tr = model.trace(x, training=True)
    assert tr.output.shape == ("N", 3)
    assert all(isinstance(w, Weight) for w in tr.weights)
    assert [w.name for w in tr.weights] == [
        "dense/kernel", "dense/bias", "batch_normalization/gamma", "batch_normalization/beta",
        "batch_normalization/moving_mean", "batch_normalization/moving_variance", "dense_1/kernel", "dense_1/bias"]
    assert [w.trainable for w in tr.weights] == [True, True, True, True, False, False, True, True]
    for w in tr.weights:
        assert w.value.op == "param" and w.value.shape == w.shape == w.initial.shape
        assert w.initial.dtype == np.float32
    assert sorted(tr.updates) == ["batch_normalization/moving_mean", "batch_normalization/moving_variance"]
    assert all(tr.updates[k].shape == (5,) for k in tr.updates)
    assert len(tr.random_inputs) == 1 and isinstance(tr.random_inputs[0], RandomInput)
    r = tr.random_inputs[0]
    assert (r.name, r.shape, r.distribution, r.value.op) == ("dropout/noise", ("N", 5), "uniform", "input")
    inference = model.trace(x, training=False)
    assert inference.updates == {} and inference.random_inputs == []
    assert [w.value for w in inference.weights] == [w.value for w in tr.weights]  # same parameters


def test_weights_order_counts_and_seed():
    model = _mlp(seed=7)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(4, 5), (5,), (5,), (5,), (5,), (5,), (5, 3), (3,)]
    assert model.count_params() == 20 + 5 + 20 + 15 + 3
    again = _mlp(seed=7)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = _mlp(seed=8)
    assert not np.array_equal(model.get_weights()[0], other.get_weights()[0])
    model.initialize(8)
    np.testing.assert_array_equal(model.get_weights()[0], other.get_weights()[0])
    new = [np.full(w.shape, 0.5, np.float32) for w in model.weights]
    model.set_weights(new)
    assert all((w == 0.5).all() for w in model.get_weights())
    with pytest.raises(ParameterError, match="has 8 weights, got 1"):
        model.set_weights(new[:1])


def test_summary():
    model = Sequential([layers.Conv2D(8, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(10)], input_shape=(1, 8, 8))
    text = model.summary(print_fn=None)
    assert "conv2d (Conv2D)" in text and "(None, 8, 8, 8)" in text and "80" in text
    assert "max_pooling2d (MaxPooling2D)" in text and "(None, 8, 4, 4)" in text
    assert "(None, 128)" in text and "1290" in text
    assert f"Total params: {80 + 1290}" in text and "Non-trainable params: 0" in text
    assert model.output_shape == (10,) and model.input_shape == (1, 8, 8)


def test_layer_names_are_unique_within_a_model():
    model = Sequential([layers.Dense(3), layers.Dense(3, name="dense_1"), layers.Dense(2)], input_shape=(2,))
    assert [l.name for l in model.layers] == ["dense", "dense_1", "dense_2"]
    with pytest.raises(ParameterError, match="repeated: head"):
        Sequential([layers.Dense(3, name="head"), layers.Dense(3, name="head")], input_shape=(2,))
    assert model.get_layer("dense_2") is model.layers[2]


def test_residual_branch_with_add_and_concatenate():
    inp = Input((4,))
    h = layers.Dense(4, activation="tanh", name="a")(inp)
    skip = layers.Add()([inp, h])
    side = layers.Dense(2, name="b")(inp)
    both = layers.Concatenate()([skip, side])
    out = layers.Dense(3, name="head")(both)
    model = Model(inp, out, seed=1)
    assert [l.name for l in model.layers] == ["a", "add", "b", "concatenate", "head"]

    def reference(x, wa, ba, wb, bb, wh, bh):
        skip = x + np.tanh(x @ wa + ba)
        return np.concatenate([skip, x @ wb + bb], axis=-1) @ wh + bh

    check_layer(model, [rng.standard_normal((3, 4))], reference, opsets=(17, 13))


def test_two_inputs_and_a_shared_layer():
    a, b = Input((3,)), Input((3,))
    shared = layers.Dense(2, name="shared")
    out = layers.Subtract()([shared(a), shared(b)])
    model = Model([a, b], out, seed=0)
    assert model.layers == [shared, model.layers[1]] and len(model.weights) == 2
    assert model.input_shape == [(3,), (3,)]

    def reference(x, y, w, bias):
        return (x @ w + bias) - (y @ w + bias)

    check_layer(model, [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))], reference)


def test_cnn_branches_on_channels():
    inp = Input((2, 5, 5))
    left = layers.Conv2D(3, 3, padding="same", name="left", use_bias=False)(inp)
    right = layers.Conv2D(1, 1, name="right", use_bias=False)(inp)
    out = layers.Flatten()(layers.Concatenate(axis=1)([left, right]))
    model = Model(inp, out, seed=2)
    assert model.output_shape == (100,)

    def reference(x, wl, wr):
        y = np.concatenate([np_conv(x, wl, pads=(1, 1, 1, 1)), np_conv(x, wr)], axis=1)
        return y.reshape(len(x), -1)

    check_layer(model, [rng.standard_normal((2, 2, 5, 5))], reference)


def test_embedding_model_takes_int64():
    model = Sequential([layers.Embedding(10, 4), layers.Flatten(), layers.Dense(2)], input_shape=(6,), seed=0)
    assert model.input_dtype == "int64" and model.input_value().dtype == "int64"
    assert model.output_shape == (2,)
    ids = np.array([[1, 2, 3, 4, 5, 9], [0, 0, 9, 9, 1, 1]])
    check_layer(model, [ids], lambda ids, table, w, b: table[ids].reshape(2, -1) @ w + b)


@pytest.mark.parametrize("opset", range(13, 22))
def test_every_opset_emits_a_checked_cnn_training_graph(opset):
    model = Sequential([layers.Conv2D(3, 3, padding="same", activation="relu"), layers.BatchNormalization(),
                        layers.MaxPooling2D(2), layers.AveragePooling2D(2, strides=1, padding="same"),
                        layers.Dropout(0.2), layers.Flatten(), layers.Dense(4, activation="softmax")],
                       input_shape=(1, 4, 4), seed=0)
    x = rng.standard_normal((2, 1, 4, 4))
    noise = {"dropout/noise": rng.uniform(size=(2, 3, 2, 2))}
    c = Compiled(model, [x], training=True, dtype="float32", opset=opset)
    onnx.checker.check_model(c.model, full_check=True)
    assert c.model.opset_import[0].version == opset
    assert {o.domain for o in c.model.opset_import} == {""}
    got = c.run([x], noise=noise)
    ref = Compiled(model, [x], training=True, dtype="float32", opset=17).run([x], noise=noise)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6)
        assert np.isfinite(got[k]).all()


def test_config_round_trip():
    model = Sequential([layers.Conv2D(2, 3, name="c"), layers.Flatten(), layers.Dense(3, activation="softmax")],
                       input_shape=(1, 5, 5), seed=0)
    clone = Sequential.from_config(model.get_config())
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    clone.set_weights(model.get_weights())
    x = rng.standard_normal((2, 1, 5, 5))
    np.testing.assert_allclose(Compiled(clone, [x]).run([x])["y"], Compiled(model, [x]).run([x])["y"], rtol=1e-12)


def test_sequential_add():
    model = Sequential([layers.Dense(3)], input_shape=(2,))
    model.add(layers.Dense(1))
    assert model.output_shape == (1,) and [l.name for l in model.layers] == ["dense", "dense_1"]


def test_mistakes():
    with pytest.raises(ParameterError, match="needs input_shape"):
        Sequential([layers.Dense(2)])
    assert Sequential([layers.Dense(2, input_shape=(3,))]).input_shape == (3,)
    with pytest.raises(ParameterError, match="takes Layer instances"):
        Sequential(["dense"], input_shape=(2,))
    with pytest.raises(ParameterError, match="functional API"):
        Sequential([layers.Add()], input_shape=(2,))
    with pytest.raises(ParameterError, match="Input"):
        layers.Dense(2)(np.zeros((1, 2)))
    model = Sequential([layers.Dense(2)], input_shape=(3,))
    with pytest.raises(ShapeError, match=r"expects an input of shape \('N', 3\)"):
        model.trace(ir.input_value("x", ("N", 4)))
    with pytest.raises(ShapeError, match="do not broadcast"):
        layers.Add()([Input((3,)), Input((4,))])
    with pytest.raises(ShapeError, match="differ off that axis"):
        layers.Concatenate(axis=1)([Input((2, 3)), Input((2, 4))])
    other = Input((3,))
    with pytest.raises(ParameterError, match="not in inputs"):
        Model(Input((3,)), layers.Dense(2)(other))
    with pytest.raises(ShapeError, match="without the batch"):
        Input((0, 3))
