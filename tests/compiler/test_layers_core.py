"""Dense, every activation, Dropout, Flatten, Reshape, Embedding: forward against NumPy,
gradients against float64 central differences of the NumPy reference."""
import math

import numpy as np
import pytest

from symgrad.compiler import layers, ParameterError, ShapeError, UnknownNameError
from layer_harness import Compiled, check_layer

rng = np.random.default_rng(0)
_erf = np.vectorize(math.erf)
SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0, x)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


REFERENCES = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
    "sigmoid": _sigmoid,
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "tanh": np.tanh,
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "hard_silu": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "softmax": _softmax,
    "log_softmax": lambda x: x - x.max(axis=-1, keepdims=True) - np.log(
        np.exp(x - x.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True)),
    "exponential": np.exp,
}


def test_every_activation_has_a_reference_here():
    assert set(REFERENCES) >= set(layers.activations.names()) - {"hard_swish"}
    for name in ("relu", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "sigmoid", "tanh", "softmax",
                 "log_softmax", "softplus", "softsign", "mish", "hard_sigmoid", "relu6"):
        assert name in layers.activations.names()


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_forward_and_gradient(name):
    x = rng.standard_normal((3, 5)) * 3
    check_layer(layers.Activation(name), [x], REFERENCES[name])


@pytest.mark.parametrize("name", sorted(set(REFERENCES) - {"exponential"}))
def test_activation_stays_finite_in_float32_at_extreme_inputs(name):
    x = np.array([[-1e4, -100.0, -30.0, -1e-3, 0.5, 30.0, 100.0, 1e4]])
    c = Compiled(layers.Activation(name), [x], dtype="float32")
    got = c.run([x], G=np.ones_like(x))
    assert np.isfinite(got["y"]).all(), got["y"]
    assert np.isfinite(got["grad/x0"]).all(), got["grad/x0"]
    with np.errstate(over="ignore"):
        want = REFERENCES[name](x)
    np.testing.assert_allclose(got["y"], want, rtol=1e-5, atol=1e-6)


def test_activation_options_and_leaky_relu_layer_default():
    x = rng.standard_normal((2, 4))
    check_layer(layers.Activation("leaky_relu", negative_slope=0.1), [x], lambda x: np.where(x > 0, x, 0.1 * x))
    check_layer(layers.LeakyReLU(), [x], lambda x: np.where(x > 0, x, 0.3 * x))
    check_layer(layers.Activation("elu", alpha=0.5), [x], lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)))
    check_layer(layers.Softmax(axis=1), [x], _softmax)
    with pytest.raises(ParameterError, match="no option 'alpha'"):
        layers.Activation("relu", alpha=1.0)
    with pytest.raises(UnknownNameError, match="Did you mean 'relu'"):
        layers.Activation("relux")


@pytest.mark.parametrize("activation, shape, use_bias", [
    (None, (4, 3), True), ("relu", (4, 3), True), ("softmax", (2, 5), False), ("tanh", (2, 3, 4), True)])
def test_dense(activation, shape, use_bias):
    layer = layers.Dense(3, activation=activation, use_bias=use_bias)
    x = rng.standard_normal(shape)
    act = REFERENCES[activation or "linear"]

    def reference(x, w, b=0.0):
        return act(x @ w + b)

    check_layer(layer, [x], reference, opsets=(17, 13, 21))
    assert layer.kernel_initializer is not None and layer.get_weights()[0].shape == (shape[-1], 3)


def test_dense_glorot_uniform_scale():
    layer = layers.Dense(300)
    Compiled(layer, [np.zeros((1, 200))])
    w = layer.get_weights()[0]
    limit = np.sqrt(6 / (200 + 300))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    assert abs(w.std() - limit / np.sqrt(3)) < 0.01 * limit
    assert not layer.get_weights()[1].any()


def test_dropout_training_uses_the_fed_noise_and_inference_is_identity():
    layer = layers.Dropout(0.25)
    x = rng.standard_normal((4, 6))
    u = rng.uniform(size=x.shape)
    check_layer(layer, [x], lambda x: np.where(u >= 0.25, x / 0.75, 0.0), training=True,
                noise={"dropout/noise": u})
    inference = Compiled(layer, [x], training=False)
    assert inference.trace.random_inputs == []
    np.testing.assert_array_equal(inference.run([x])["y"], x)
    assert [(r.name, r.shape) for r in Compiled(layer, [x], training=True).trace.random_inputs] == \
        [("dropout/noise", ("N", 6))]
    with pytest.raises(ParameterError, match=r"'rate' must be a number in \[0, 1\)"):
        layers.Dropout(1.0)


def test_flatten_and_reshape():
    x = rng.standard_normal((2, 3, 2, 2))
    check_layer(layers.Flatten(), [x], lambda x: x.reshape(len(x), -1))
    check_layer(layers.Reshape((4, -1)), [x], lambda x: x.reshape(len(x), 4, 3))
    with pytest.raises(ParameterError, match="target_shape"):
        layers.Reshape((0, 3))
    from symgrad.compiler import Sequential
    with pytest.raises(ShapeError, match="12 elements per sample"):
        Sequential([layers.Reshape((5, 2))], input_shape=(3, 4))


@pytest.mark.parametrize("opsets", [(13,), (17, 21)])
def test_embedding_backward_is_a_scatter_add(opsets):
    layer = layers.Embedding(6, 3)
    ids = np.array([[0, 5, 5, 2], [2, 2, 1, 0]])
    got = check_layer(layer, [ids], lambda ids, table: table[ids], opsets=opsets)
    table = layer.get_weights()[0]
    assert got["y"].shape == (2, 4, 3)
    assert layer.input_dtype == "int64"
    np.testing.assert_allclose(got["y"][1, 0], table[2], rtol=1e-6)


def test_embedding_gradient_counts_repeats():
    layer = layers.Embedding(4, 2)
    ids = np.array([[1, 1, 3]])
    got = Compiled(layer, [ids]).run([ids], G=np.ones((1, 3, 2)))
    np.testing.assert_array_equal(got["grad/embedding/embeddings"], [[0, 0], [2, 2], [0, 0], [1, 1]])


def test_bad_layer_arguments():
    with pytest.raises(ParameterError, match="Dense: parameter 'units' must be an integer >= 1, got 0"):
        layers.Dense(0)
    with pytest.raises(ParameterError, match="'units'"):
        layers.Dense(2.5)
    with pytest.raises(ParameterError, match="unknown argument"):
        layers.Dense(3, activaton="relu")
    with pytest.raises(UnknownNameError, match="initializer"):
        layers.Dense(3, kernel_initializer="glorot")
    with pytest.raises(ParameterError, match="'input_dim'"):
        layers.Embedding(0, 3)
    with pytest.raises(ParameterError, match="'name'"):
        layers.Dense(3, name="has space")
