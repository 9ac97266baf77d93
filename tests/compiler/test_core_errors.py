"""Bad declarations raise SymgradError subclasses whose messages name the bad thing and
what is accepted."""
import pytest

from symgrad.compiler import (Loss, SymgradError, ExpressionSyntaxError, UnknownSymbolError,
                              UnsupportedFunctionError, MissingPredictionError, ParameterError)


@pytest.mark.parametrize("text,cls,message", [
    ("(y_pred - y_true", ExpressionSyntaxError, "syntax error"),
    ("y_pred +* 2", ExpressionSyntaxError, "syntax error"),
    ("", ExpressionSyntaxError, "empty"),
    ("y_pred - ytrue", UnknownSymbolError, "unknown symbol 'ytrue'.*accepted symbols: .*y_pred"),
    ("gamma(y_pred)", UnsupportedFunctionError, "unsupported function 'gamma'.*accepted functions:.*exp"),
    ("__import__('os')", UnsupportedFunctionError, "unsupported function '__import__'"),
    ("__import__('os').system('true')", ExpressionSyntaxError, "only plain function names can be called"),
    ("y_pred.real", ExpressionSyntaxError, "Attribute is not allowed"),
    ("[y_pred]", ExpressionSyntaxError, "List is not allowed"),
    ("lambda: y_pred", ExpressionSyntaxError, "Lambda is not allowed"),
    ("y_pred % 2", ExpressionSyntaxError, "operator Mod is not allowed"),
    ("exp", ExpressionSyntaxError, "must be called"),
    ("'text' * y_pred", ExpressionSyntaxError, "not a number"),
    ("sum(y_pred, keepdims=1)", ExpressionSyntaxError, "keyword 'keepdims' is not accepted"),
    ("y_true ** 2", MissingPredictionError, "does not use y_pred"),
])
def test_bad_expressions(text, cls, message):
    with pytest.raises(cls, match=message) as info:
        Loss.from_expression(text)
    assert isinstance(info.value, SymgradError)


@pytest.mark.parametrize("value,message", [("abc", "must be any finite number, got 'abc'"),
                                           (float("nan"), "must be any finite number"),
                                           (True, "must be any finite number")])
def test_non_numeric_parameter(value, message):
    with pytest.raises(ParameterError, match=message):
        Loss("Abs(y_pred - y_true) * delta", params={"delta": value})


@pytest.mark.parametrize("value", [0, -1.0])
def test_non_positive_parameter_where_required(value):
    with pytest.raises(ParameterError, match="'delta' must be a number > 0"):
        Loss("Abs(y_pred - y_true) * delta", params={"delta": value}, constraints={"delta": "positive"})


def test_parameter_without_value():
    with pytest.raises(UnknownSymbolError, match="unknown symbol.*delta.*params="):
        Loss("Abs(y_pred - y_true) * delta")


def test_bad_reduction():
    with pytest.raises(ParameterError, match="reduction.*'none', 'sum', 'mean', 'sum_over_batch_size', 'weighted_mean'"):
        Loss.from_expression("(y_pred - y_true)**2", reduction="avg")


def test_bad_gradient_target():
    with pytest.raises(ParameterError, match="cannot differentiate with respect to 'y_true'"):
        Loss.from_expression("(y_pred - y_true)**2").gradient_expression("y_true")
