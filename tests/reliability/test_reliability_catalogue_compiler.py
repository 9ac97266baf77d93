"""The bad-input catalogue, compiler side: expressions, loss names and parameters, layer
arguments and shapes, opsets and dtypes, compile_model arguments.

Each case is one mistake a user makes; the error must be a symgrad error of the given
class, name the bad value and say what is accepted (see reliability_kit.expect_error).
"""
import pytest
import sympy

from symgrad.compiler import (ExpressionError, ExpressionSyntaxError, Input, Layer, Loss, MissingPredictionError,
                              NonDifferentiableError, OpsetError, ParameterError, Sequential, ShapeError,
                              UnknownNameError, UnknownSymbolError, UnsupportedFunctionError, compile_model, layers,
                              losses, optimizers)
from reliability_kit import expect_error


def expr(text, **kwargs):
    return lambda: Loss.from_expression(text, **kwargs)


def emitted(text, **kwargs):
    return lambda: Loss.from_expression(text).to_onnx(**kwargs)


def mlp(*extra):
    return Sequential([layers.Dense(4, activation="tanh"), *extra, layers.Dense(3)], input_shape=(5,))


def compiled(model=None, loss="mse", optimizer="sgd", **kwargs):
    """compile_model, with the loss built only when the case runs (a callable loss)."""
    return lambda: compile_model(model if model is not None else mlp(), loss() if callable(loss) else loss,
                                 optimizer, **kwargs)


def seq(make_layers, shape):
    return lambda: Sequential(make_layers(), input_shape=shape)


EXPRESSIONS = [
    ("syntax", expr("(y_pred - y_true"), ExpressionSyntaxError, ["syntax error", "'(y_pred - y_true'"]),
    ("unknown-symbol", expr("y_pred - ytrue"), UnknownSymbolError, ["'ytrue'", "accepted symbols", "y_true"]),
    ("unsupported-function", expr("gamma(y_pred)"), UnsupportedFunctionError,
     ["'gamma'", "accepted functions", "logsumexp"]),
    ("dunder-call", expr("__import__('os')"), UnsupportedFunctionError, ["'__import__'", "accepted functions"]),
    ("attribute", expr("y_pred.real"), ExpressionSyntaxError, ["Attribute", "accepted"]),
    ("no-y_pred", expr("(y_true - 1)**2"), MissingPredictionError, ["(y_true - 1)**2", "y_pred"]),
    ("parameter-without-value", expr("Abs(y_pred - y_true) * delta"), UnknownSymbolError, ["'delta'", "params="]),
    ("comparison-as-loss", expr("y_pred > y_true"), NonDifferentiableError, ["y_pred > y_true", "where(cond"]),
    ("comparison-as-number", expr("(y_pred > y_true) * y_pred"), NonDifferentiableError,
     ["y_pred > y_true", "where(cond, a, b)"]),
    ("zero-gradient-sign", emitted("sign(y_pred - y_true)"), NonDifferentiableError,
     ["sign(y_pred - y_true)", "zero gradient", "tanh(k*u)"]),
    ("zero-gradient-step", emitted("Heaviside(y_pred - 0.5) * y_true"), NonDifferentiableError,
     ["Heaviside", "zero gradient", "sigmoid(k*u)"]),
    ("imaginary-constant", expr("log(-1) * y_pred"), ExpressionError, ["I*pi*y_pred", "real"]),
    ("division-by-zero", expr("y_pred / 0"), ExpressionError, ["zoo", "finite"]),
    ("overflowing-literal", expr("y_pred * 1e400"), ExpressionSyntaxError, ["1e400", "finite"]),
    ("overflowing-power", expr("y_pred * 10**10**10"), ExpressionSyntaxError, ["10**10000000000", "too large"]),
    ("not-a-string", lambda: Loss.from_expression(["y_pred"]), ExpressionError, ["['y_pred']", "string"]),
    ("not-an-expression", lambda: Loss(None), ExpressionError, ["None", "accepted"]),
    ("axis-out-of-range", emitted("sum((y_pred - y_true)**2, axis=5)"), ShapeError, ["axis 5", "-2..1"]),
    ("bad-axis-type", expr("sum(y_pred, axis=y_true)"), ExpressionSyntaxError, ["y_true", "integer"]),
    ("wrong-arity", expr("exp(y_pred, y_true)"), ExpressionSyntaxError, ["exp()", "1 argument"]),
]

LOSSES = [
    ("unknown-loss", lambda: losses.get("hubber"), UnknownNameError, ["'hubber'", "'huber'"]),
    ("loss-name-type", lambda: losses.get(5), ParameterError, ["5", "string"]),
    ("negative-delta", lambda: losses.get("huber", delta=-1), ParameterError, ["'delta'", "> 0", "-1"]),
    ("misspelt-parameter", lambda: losses.get("huber", delt=1.0), ParameterError, ["'delt'", "delta=1.0"]),
    ("text-parameter", lambda: losses.get("huber", delta="big"), ParameterError, ["'big'", "number"]),
    ("nan-parameter", lambda: Loss("Abs(y_pred - y_true) * delta", params={"delta": float("nan")}),
     ParameterError, ["nan", "finite"]),
    ("unknown-reduction", lambda: losses.get("huber", reduction="avg"), ParameterError,
     ["'avg'", "'sum_over_batch_size'"]),
    ("gradient-of-label", lambda: losses.get("mse").gradient_expression("y_true"), ParameterError,
     ["'y_true'", "y_pred"]),
    ("shape-not-a-tuple", lambda: losses.get("mse").to_onnx(shape="abc"), ParameterError, ["'abc'", "tuple"]),
    ("negative-shape", lambda: losses.get("mse").to_onnx(shape=(None, -3)), ParameterError,
     ["-3", "positive integer"]),
]

OPSETS = [
    ("opset-too-old", lambda: losses.get("huber").to_onnx(opset=12), OpsetError, ["12", "13 to 21"]),
    ("opset-too-new", lambda: losses.get("huber").to_onnx(opset=99), OpsetError, ["99", "13 to 21"]),
    ("opset-as-text", lambda: losses.get("huber").to_onnx(opset="17"), OpsetError, ["'17'", "integers"]),
    ("unsupported-dtype", lambda: losses.get("huber").to_onnx(dtype="float16"), OpsetError,
     ["'float16'", "float32, float64"]),
    ("compile-opset", compiled(opset=11), OpsetError, ["11", "13 to 21"]),
    ("compile-dtype", compiled(dtype="int8"), OpsetError, ["'int8'", "float32, float64"]),
]

LAYERS = [
    ("dense-zero-units", lambda: layers.Dense(0), ParameterError, ["'units'", ">= 1", "0"]),
    ("dense-fractional-units", lambda: layers.Dense(2.5), ParameterError, ["2.5", "integer"]),
    ("unknown-activation", lambda: layers.Dense(3, activation="rellu"), UnknownNameError, ["'rellu'", "'relu'"]),
    ("unknown-initializer", lambda: layers.Dense(3, kernel_initializer="gloro"), UnknownNameError,
     ["'gloro'", "glorot_uniform"]),
    ("unknown-layer-argument", lambda: layers.Dense(3, unit=4), ParameterError, ["unit", "units"]),
    ("dropout-rate-one", lambda: layers.Dropout(1.0), ParameterError, ["'rate'", "[0, 1)", "1.0"]),
    ("conv-zero-kernel", lambda: layers.Conv2D(4, 0), ParameterError, ["'kernel_size'", ">= 1", "0"]),
    ("conv-padding", lambda: layers.Conv2D(4, 3, padding="full"), ParameterError, ["'full'", "'valid', 'same'"]),
    ("conv-on-vectors", seq(lambda: [layers.Conv2D(4, 3)], (16,)), ShapeError,
     ["(None, 16)", "(batch, channels, height, width)"]),
    ("kernel-larger-than-input", seq(lambda: [layers.Conv2D(4, 5)], (1, 3, 3)), ShapeError, ["(5, 5)", "(3, 3)"]),
    ("pool-larger-than-input", seq(lambda: [layers.MaxPooling2D(4)], (1, 3, 3)), ShapeError, ["(4, 4)", "(3, 3)"]),
    ("conv-groups", seq(lambda: [layers.Conv2D(4, 3, groups=3)], (2, 8, 8)), ParameterError,
     ["'groups' (3)", "divisible"]),
    ("reshape-size", seq(lambda: [layers.Reshape((5,))], (4,)), ShapeError, ["(5,)", "4 elements"]),
    ("batchnorm-axis", seq(lambda: [layers.BatchNormalization(axis=5)], (4,)), ShapeError, ["axis 5", "accepted"]),
    ("not-a-layer", seq(lambda: ["dense"], (4,)), ParameterError, ["'dense'", "Layer"]),
    ("no-input-shape", lambda: Sequential([layers.Dense(3)]), ParameterError, ["input_shape", "(64,)"]),
    ("negative-input-shape", seq(lambda: [layers.Dense(3)], (-4,)), ShapeError, ["(-4,)", "positive integers"]),
    ("input-dtype", lambda: Input((3,), dtype="float16"), ParameterError, ["'float16'", "'float32'"]),
    ("model-config", lambda: Sequential.from_config({"layers": []}), ParameterError,
     ["'input_shape'", "get_config()"]),
    ("layer-config", lambda: layers.deserialize({"class_name": "Densse", "config": {}}), UnknownNameError,
     ["'Densse'", "'Dense'"]),
]

COMPILE = [
    ("unknown-optimizer", compiled(optimizer="adamm"), UnknownNameError, ["'adamm'", "adam"]),
    ("negative-learning-rate", lambda: optimizers.Adam(-1.0), ParameterError, ["'learning_rate'", ">= 0", "-1"]),
    ("adam-beta", lambda: optimizers.Adam(beta_1=1.5), ParameterError, ["'beta_1'", "[0, 1)", "1.5"]),
    ("unknown-metric", compiled(metrics=["acc2"]), UnknownNameError, ["'acc2'", "accuracy"]),
    ("metric-needs-sparse-labels", compiled(metrics=["sparse_categorical_accuracy"]), ParameterError,
     ["sparse_categorical_accuracy", "categorical"]),
    ("unreduced-loss", compiled(loss=lambda: losses.get("mse", reduction="none")), ParameterError,
     ["reduction='none'", "'sum_over_batch_size'"]),
    ("zero-gradient-loss", compiled(loss=lambda: Loss.from_expression("sign(y_pred - y_true)")), NonDifferentiableError,
     ["sign(y_pred - y_true)", "zero gradient"]),
    ("not-a-model", compiled(model="mlp"), ParameterError, ["'mlp'", "Sequential"]),
    ("unknown-loss-name", compiled(loss="msee"), UnknownNameError, ["'msee'", "'mse'"]),
]

class Apply(Layer):
    """A custom layer applying ``f`` elementwise (a user's own sympy)."""

    def __init__(self, f, **kwargs):
        super().__init__(**kwargs)
        self.f = f

    def call(self, x):
        return self.f(x)


def _g(x):
    return sympy.Function("g")(x)


CUSTOM = [
    ("custom-unknown-function", compiled(model=Sequential([Apply(_g), layers.Dense(2)], input_shape=(3,))),
     UnsupportedFunctionError, ["g(", "known_functions()"]),
    ("custom-no-derivative", compiled(model=Sequential([layers.Dense(3), Apply(_g), layers.Dense(2)],
                                                       input_shape=(3,))),
     NonDifferentiableError, ["g(", "no derivative", "differentiable functions"]),
]

CASES = EXPRESSIONS + LOSSES + OPSETS + LAYERS + COMPILE + CUSTOM


@pytest.mark.parametrize("fn,cls,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_symgrad_error(fn, cls, fragments):
    expect_error(fn, cls, *fragments)


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 45 and len({c[0] for c in CASES}) == len(CASES)


def test_a_sympy_expression_with_a_foreign_symbol():
    z = sympy.Symbol("z")
    expect_error(lambda: Loss(z * sympy.Symbol("y_pred", real=True)), UnknownSymbolError, "z", "y_true, y_pred")
