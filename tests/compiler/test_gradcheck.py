"""symgrad.compiler.gradcheck: passes correct gradients (layers, models, losses) and
catches a wrong explicit backward with a message naming the tensor, the worst element
and both values."""
import re

import numpy as np
import pytest
import sympy

from symgrad.compiler import (GradcheckError, Layer, Loss, ParameterError, Sequential, ShapeError, gradcheck, layers,
                              ops)

rng = np.random.default_rng(0)


class Scale(Layer):
    """y = a * x, with an explicit backward that can be made wrong."""

    dx_factor, da_factor = 1, 1

    def build(self, input_shape):
        self.a = self.add_weight("a", (input_shape[-1],), initializer=2.0)

    def call(self, x):
        return self.a * x

    def backward(self, x, y, g):
        return self.dx_factor * g * self.a, {"a": self.da_factor * ops.sum(g * x, axis=0)}


def _numbers(message):
    m = re.search(r"compiled (\S+) vs finite differences (\S+) ", message)
    return float(m.group(1)), float(m.group(2))


def test_passes_builtin_layers_and_reports_tiny_errors():
    cases = [(layers.Dense(3, activation="selu"), rng.standard_normal((2, 4))),
             (layers.Conv2D(4, 3, strides=2, padding="same", groups=2), rng.standard_normal((2, 2, 5, 5))),
             (layers.Conv1D(2, 3, padding="causal", dilation_rate=2), rng.standard_normal((2, 3, 7))),
             (layers.MaxPooling2D(3, strides=2, padding="same"), rng.permutation(50).reshape(1, 2, 5, 5) / 3.0),
             (layers.BatchNormalization(), rng.standard_normal((4, 3, 2, 2))),
             (layers.LayerNormalization(), rng.standard_normal((3, 5))),
             (layers.Embedding(5, 3), np.array([[1, 2, 2], [0, 4, 1]])),
             (layers.Dropout(0.4), rng.standard_normal((3, 4))),
             # exact gelu: float64 graphs lower Erf to double-precision arithmetic (lowering.py)
             (layers.Activation("gelu"), 3 * rng.standard_normal((3, 4)))]
    for layer, x in cases:
        report = gradcheck(layer, x)
        assert report and max(report.values()) < 1e-7, (layer, report)
    assert set(gradcheck(layers.Dense(2), rng.standard_normal((2, 3)))) == {"x", "dense/kernel", "dense/bias"}


def test_passes_a_correct_explicit_backward_and_a_model():
    assert set(gradcheck(Scale(), rng.standard_normal((3, 4)))) == {"x", "scale/a"}
    model = Sequential([layers.Dense(3, activation="tanh"), Scale(), layers.Dense(2)], input_shape=(4,), seed=0)
    report = gradcheck(model)
    assert set(report) == {"x", "dense/kernel", "dense/bias", "scale/a", "dense_1/kernel", "dense_1/bias"}


def test_wrong_input_gradient_is_caught_with_a_clear_message():
    class WrongDx(Scale):
        dx_factor = 3

    x = rng.standard_normal((3, 4))
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongDx(name="wrong_dx"), x)
    msg = str(info.value)
    assert "layer 'wrong_dx'" in msg and "with respect to 'x'" in msg and "worst element (" in msg
    assert "explicit backward()" in msg
    compiled, numerical = _numbers(msg)
    assert compiled == pytest.approx(3 * numerical, rel=1e-6)


def test_wrong_weight_gradient_is_caught_and_named():
    class WrongDa(Scale):
        da_factor = -1

    with pytest.raises(GradcheckError, match="with respect to 'wrong_da/a'") as info:
        gradcheck(WrongDa(), rng.standard_normal((3, 2)))
    compiled, numerical = _numbers(str(info.value))
    assert compiled == pytest.approx(-numerical, rel=1e-6)


def test_a_backward_with_a_subtle_error_is_caught():
    class AlmostTanh(Layer):
        def call(self, x):
            return sympy.tanh(x)

        def backward(self, x, y, g):
            return g * (1 - y ** 2) * (1 + sympy.Rational(1, 1000))  # 0.1 % off

    with pytest.raises(GradcheckError, match="'x'"):
        gradcheck(AlmostTanh(), rng.standard_normal((2, 3)))


def test_losses():
    report = gradcheck(Loss.from_expression("log(cosh(y_pred - y_true))"))
    assert set(report) == {"y_pred"} and report["y_pred"] < 1e-8
    sparse = Loss(-ops.sum(ops.one_hot(sympy.Symbol("y_true", real=True), sympy.Symbol("y_pred", real=True))
                           * ops.log_softmax(sympy.Symbol("y_pred", real=True)), axis=-1), labels="sparse",
                  name="sparse_ce")
    y_pred = rng.standard_normal((4, 3))
    assert gradcheck(sparse, (np.array([0, 2, 1, 2]), y_pred))["y_pred"] < 1e-8
    triplet = Loss.from_expression("Max(sum((y_pred - positive)**2) - sum((y_pred - negative)**2) + 1, 0)",
                                   inputs=["positive", "negative"], name="triplet")
    assert set(gradcheck(triplet, {"y_pred": rng.standard_normal((3, 4))})) == {"y_pred", "positive", "negative"}


def test_weights_override_and_sampling():
    layer = layers.Dense(40)
    x = rng.standard_normal((2, 30))
    report = gradcheck(layer, x, max_elements=10)
    assert report["dense/kernel"] < 1e-8
    w, b = rng.standard_normal((30, 40)), rng.standard_normal(40)
    assert gradcheck(layer, x, weights=[w, b], max_elements=5)


def test_bad_arguments():
    with pytest.raises(ParameterError, match="'eps' must be a positive number"):
        gradcheck(layers.Dense(2), np.zeros((1, 2)), eps=0)
    with pytest.raises(ParameterError, match="expects a Layer, a Model or a Loss"):
        gradcheck(lambda x: x)
    with pytest.raises(ParameterError, match="not built; pass inputs="):
        gradcheck(layers.Dense(2))
    with pytest.raises(ParameterError, match="integer inputs"):
        gradcheck(Sequential([layers.Embedding(3, 2)], input_shape=(4,)))
    with pytest.raises(ShapeError, match="'dense/kernel' has shape \\(2, 2\\), got an array of shape \\(3, 2\\)"):
        gradcheck(layers.Dense(2), np.zeros((1, 2)), weights=[np.zeros((3, 2)), np.zeros(2)])
    with pytest.raises(ParameterError, match="2 weights expected"):
        gradcheck(layers.Dense(2), np.zeros((1, 2)), weights=[np.zeros((2, 2))])


def test_random_weights_by_default_catch_a_factor_hidden_by_ones():
    class DropsA(Layer):
        """y = a * x whose backward forgets the factor a: right only where a == 1."""

        def build(self, input_shape):
            self.a = self.add_weight("a", (input_shape[-1],), initializer=1.0)

        def call(self, x):
            return self.a * x

        def backward(self, x, y, g):
            return g, {"a": ops.sum(g * x, axis=0)}

    x = rng.standard_normal((3, 4))
    assert gradcheck(DropsA(), x, weights="initial")          # hidden at the initial ones
    with pytest.raises(GradcheckError, match="with respect to 'x'"):
        gradcheck(DropsA(), x)                                 # random weights: caught
    with pytest.raises(ParameterError, match="'random', 'initial'"):
        gradcheck(DropsA(), x, weights="ones")
