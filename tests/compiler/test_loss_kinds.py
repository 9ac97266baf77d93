"""compile_model(loss=...) and metrics=[...] accept a catalogue name, a Loss, an expression
string or a function f(y_true, y_pred); each gives the NumPy value written here."""
import numpy as np
import pytest
import sympy

from symgrad.compiler import ExpressionError, Loss, ParameterError, UnknownNameError, losses, ops
from symgrad.compiler.loss_spec import resolve_loss
from symgrad.compiler.program import _resolve_loss, compile_model
from oracle import run
from test_program import N, SIZES, feeds_for, forward, initial, mlp


def log_cosh_fn(y_true, y_pred):
    return ops.mean(sympy.log(sympy.cosh(y_pred - y_true)))


KINDS = {
    "name": "log_cosh",
    "loss": losses.get("log_cosh"),
    "expression": "mean(log(cosh(y_pred - y_true)), axis=-1)",
    "function": log_cosh_fn,
}


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(4)
    return rng.normal(size=(N, SIZES[0])), rng.normal(size=(N, SIZES[-1]))


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_loss_compiles_to_the_same_value(kind, regression):
    x, y = regression
    program = compile_model(mlp(), KINDS[kind], "sgd", dtype="float64")
    w = initial(program)
    out = run(program.graphs["eval"], **feeds_for(program, "eval", w, x, y))
    pred = forward(w, x)[2]
    assert out["loss"] == pytest.approx(np.mean(np.log(np.cosh(pred - y))), rel=1e-10)


def test_any_loss_kind_is_a_metric(regression):
    x, y = regression
    program = compile_model(mlp(), "mse", "sgd", dtype="float64",
                            metrics=["huber", "(y_pred - y_true)**4", log_cosh_fn, losses.get("mae", reduction="sum"),
                                     "L1Loss"])
    assert program.manifest["metrics"] == ["huber", "(y_pred - y_true)**4", "log_cosh_fn", "mean_absolute_error",
                                           "L1Loss"]
    w = initial(program)
    out = run(program.graphs["eval"], **feeds_for(program, "eval", w, x, y))
    e = forward(w, x)[2] - y
    huber = np.where(np.abs(e) <= 1, 0.5 * e ** 2, np.abs(e) - 0.5).mean(-1).mean()
    assert out["metric/huber"] == pytest.approx(huber, rel=1e-10)
    assert out["metric/(y_pred - y_true)**4"] == pytest.approx(np.mean(e ** 4), rel=1e-10)
    assert out["metric/log_cosh_fn"] == pytest.approx(np.mean(np.log(np.cosh(e))), rel=1e-10)
    assert out["metric/mean_absolute_error"] == pytest.approx(np.abs(e).mean(-1).sum(), rel=1e-10)
    assert out["metric/L1Loss"] == pytest.approx(np.abs(e).mean(), rel=1e-10)


def test_resolve_loss_is_one_function_for_all_kinds():
    assert isinstance(resolve_loss("huber"), Loss) and resolve_loss("huber").name == "huber"
    assert resolve_loss("CrossEntropyLoss").labels == "sparse"
    assert resolve_loss("abs(y_pred - y_true)").name == "custom_loss"
    assert resolve_loss(lambda y_true, y_pred: (y_pred - y_true) ** 2).name == "custom_loss"
    loss = losses.get("mse")
    assert resolve_loss(loss) is loss


def test_bad_losses_say_what_is_accepted():
    with pytest.raises(UnknownNameError, match="Did you mean 'huber'"):
        resolve_loss("hubber")
    with pytest.raises(ParameterError, match="two arguments"):
        resolve_loss(lambda y_pred: y_pred)
    with pytest.raises(ExpressionError, match="NumPy"):
        resolve_loss(lambda y_true, y_pred: np.mean(np.zeros(3) + y_pred.shape))
    with pytest.raises(ExpressionError, match="sympy expression"):
        resolve_loss(lambda y_true, y_pred: 3)
    with pytest.raises(ParameterError, match="expression string"):
        resolve_loss(3.0)
    with pytest.raises(ParameterError, match="reduction='none'"):
        _resolve_loss("(y_pred - y_true)**2" and Loss("(y_pred - y_true)**2", reduction="none"))
    with pytest.raises(ParameterError, match="extra inputs"):
        _resolve_loss("triplet_margin")
    with pytest.raises(ParameterError, match="integer class labels"):
        compile_model(mlp(), "mse", "sgd", metrics=["CrossEntropyLoss"])
