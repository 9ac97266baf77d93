"""Values out of range, and expressions that mean something other than what they say:
constants that overflow the graph's dtype (refused per dtype at compile time), data
beyond float32's range (refused after the cast, not turned into NaN weights),
class_weight keys that are no class index, and the parser's keyword arguments."""
import tracemalloc

import numpy as np
import onnx
import pytest
import sympy

from symgrad.compiler import Loss
from symgrad.compiler.errors import DataError, ExpressionError, ExpressionSyntaxError, ParameterError
from symgrad.compiler.loss import Y_PRED
from symgrad.runtime import Trainer
from oracle import run
from reliability_kit import classification_data, expect_error, mlp_classifier


# ---------------------------------------------------------------- constants beyond the dtype

@pytest.mark.parametrize("text, params, dtype", [
    ("1e300*y_pred", None, "float32"),
    ("exp(1000)*y_pred", None, "float32"),
    ("exp(1000)*y_pred", None, "float64"),
    ("y_pred**(10**100)", None, "float32"),
    ("q*y_pred", {"q": 1e300}, "float32"),
])
def test_a_constant_that_overflows_the_dtype_is_refused(text, params, dtype):
    loss = Loss.from_expression(text, params=params)
    expect_error(lambda: loss.to_onnx(dtype=dtype), ExpressionError, "does not fit", dtype)


def test_the_same_constant_fits_a_float64_graph():
    model = Loss.from_expression("1e300*y_pred", reduction="sum").to_onnx(dtype="float64")
    y = np.array([[1e-300, 2e-300]])
    out = run(model, y_pred=y)
    np.testing.assert_allclose(out["loss"], 1e300 * y.sum())
    np.testing.assert_allclose(out["grad_y_pred"], np.full(y.shape, 1e300))


# ---------------------------------------------------------------- data beyond float32

@pytest.fixture(scope="module")
def weighted():
    return Trainer(mlp_classifier(sample_weight=True))


@pytest.fixture(scope="module")
def regression():
    from symgrad.compiler import Sequential, compile_model, layers
    model = Sequential([layers.Dense(1)], input_shape=(4,))
    return Trainer(compile_model(model, "mse", "sgd", seed=0, sample_weight=True))


def test_x_beyond_float32_is_refused_not_trained_into_nan(weighted):
    x, y = classification_data()
    x = x.astype(np.float64)
    x[3, 1] = 1e300
    expect_error(lambda: weighted.fit(x, y, epochs=1, verbose=0), DataError, "x", "1e+300", "float32")
    assert all(np.isfinite(w).all() for w in weighted.get_weights())


def test_y_beyond_float32_is_refused(regression):
    x = np.ones((8, 4))
    y = np.ones((8, 1))
    y[2, 0] = -1e200
    expect_error(lambda: regression.fit(x, y, epochs=1, verbose=0), DataError, "y", "float32")
    assert all(np.isfinite(w).all() for w in regression.get_weights())


def test_sample_weight_beyond_float32_is_refused(weighted):
    x, y = classification_data()
    w = np.ones(len(x))
    w[0] = 1e39
    expect_error(lambda: weighted.fit(x, y, sample_weight=w, epochs=1, verbose=0), DataError,
                 "sample_weight", "float32")


# ---------------------------------------------------------------- class_weight

@pytest.mark.parametrize("key", [0.5, "a", -1, 3, 300_000_000, True])
def test_a_class_weight_key_that_is_no_class_index_is_refused(weighted, key):
    x, y = classification_data()
    tracemalloc.start()
    try:
        expect_error(lambda: weighted.fit(x, y, class_weight={key: 2.0}, epochs=1, verbose=0), ParameterError,
                     "class_weight", "0 to 2")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"refusing the key allocated {peak / 2**20:.0f} MB"


def test_class_weights_equal_the_same_sample_weights():
    # reference: the per-sample weights a NumPy lookup gives; both runs start from the same state
    program = mlp_classifier(sample_weight=True)
    x, y = classification_data()
    table = np.array([1.0, 0.0, 3.0])
    by_class, by_sample = Trainer(program), Trainer(program)
    by_class.fit(x, y, class_weight={0: 1.0, 1: 0.0, 2: 3.0}, epochs=2, batch_size=8, shuffle=False, verbose=0)
    by_sample.fit(x, y, sample_weight=table[y], epochs=2, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(by_class.get_weights(), by_sample.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- parser semantics

@pytest.mark.parametrize("text, fragments", [
    ("sum(y_pred, axis=(1, y_pred))", ("axis=y_pred", "integer")),
    ("sum(y_pred, axis=1.5)", ("axis=1.5", "integer")),
    ("mean(y_pred, axis=y_true)", ("axis=y_true", "integer")),
    ("norm(y_pred, ord=y_pred)", ("ord", "positive number")),
    ("norm(y_pred, ord=-1)", ("ord", "positive number")),
    ("Piecewise((y_pred, y_pred > 0))", ("otherwise", "True")),
    ("Piecewise((y_pred, y_pred > 0), (y_true, y_pred < 0))", ("otherwise", "True")),
])
def test_a_bad_keyword_or_piecewise_is_refused(text, fragments):
    expect_error(lambda: Loss.from_expression(text), ExpressionSyntaxError, *fragments)


def test_a_sympy_piecewise_without_fallback_is_refused():
    expect_error(lambda: Loss(sympy.Piecewise((Y_PRED, Y_PRED > 0))), ExpressionError, "otherwise")


def test_an_integral_axis_is_still_accepted():
    model = Loss.from_expression("sum((y_pred - y_true)**2, axis=(1,))", reduction="mean").to_onnx(shape=(None, 3))
    assert isinstance(model, onnx.ModelProto)
    yt, yp = np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)
    np.testing.assert_allclose(run(model, y_true=yt, y_pred=yp)["loss"], 3.0)


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["1e400", "-1e400"])
def test_a_parameter_beyond_float_range_is_refused(value):
    expect_error(lambda: Loss.from_expression("q*y_pred", params={"q": value}), ParameterError, "'q'", "1.8e308")


@pytest.mark.parametrize("name", ["y_pred", "y_true"])
def test_a_parameter_named_like_an_input_is_refused(name):
    expect_error(lambda: Loss.from_expression("(y_pred - y_true)**2", params={name: 3}), ParameterError,
                 repr(name), "input of the loss")
