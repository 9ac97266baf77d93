"""The extreme-input cases: float32 graphs, forward and gradient, finite and correct
wherever the mathematics is finite. Expected values are written out from the maths."""
import numpy as np
import pytest

from symgrad.compiler import Loss
from oracle import run

f32 = np.float32


def loss_and_grad(text, y_pred, y_true=None, **kw):
    loss = Loss.from_expression(text, reduction="none", **kw)
    yp = np.asarray(y_pred, f32)
    feeds = {"y_pred": yp}
    if "y_true" in text:
        feeds["y_true"] = np.asarray(y_true, f32)
    out = run(loss.to_onnx(shape=(None, yp.shape[1])), **feeds)
    assert np.all(np.isfinite(out["loss"])) and np.all(np.isfinite(out["grad_y_pred"])), out
    # reduction='none' squeezes unit axes; compare per row
    return out["loss"].reshape(len(yp), -1), out["grad_y_pred"]


def close(actual, want, **kw):
    np.testing.assert_allclose(actual, np.reshape(want, actual.shape), **kw)


def test_log_cosh_at_100():
    x = [[100.0, -100.0, 0.0, 30.0]]
    val, grad = loss_and_grad("log(cosh(y_pred - y_true))", x, [[0, 0, 0, 0]])
    close(val, [[100 - np.log(2), 100 - np.log(2), 0, 30 - np.log(2)]], rtol=1e-6)
    np.testing.assert_allclose(grad, [[1, -1, 0, np.tanh(30)]], rtol=1e-6)


@pytest.mark.parametrize("text", ["log(1 + exp(y_pred))", "log(exp(y_pred) + 1)"])
def test_log_one_plus_exp_at_pm100(text):
    val, grad = loss_and_grad(text, [[100.0, -100.0, 0.0]])
    close(val, [[100, np.exp(-100.0), np.log(2)]], rtol=1e-6, atol=1e-40)
    np.testing.assert_allclose(grad, [[1, np.exp(-100.0), 0.5]], rtol=1e-6, atol=1e-40)


def test_log_sigmoid():
    val, grad = loss_and_grad("log(sigmoid(y_pred))", [[-100.0, 100.0, 0.0]])
    close(val, [[-100, -np.exp(-100.0), -np.log(2)]], rtol=1e-6, atol=1e-40)
    np.testing.assert_allclose(grad, [[1, 0, 0.5]], rtol=1e-6, atol=1e-40)


@pytest.mark.parametrize("z", [50.0, -50.0, 100.0, -100.0])
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_naive_binary_crossentropy_at_large_logits(z, y):
    text = "-(y_true*log(1/(1+exp(-y_pred))) + (1-y_true)*log(1-1/(1+exp(-y_pred))))"
    val, grad = loss_and_grad(text, [[z]], [[y]])
    softplus = lambda t: max(t, 0) + np.log1p(np.exp(-abs(t)))  # noqa: E731
    want = y * softplus(-z) + (1 - y) * softplus(z)
    sig = 1 / (1 + np.exp(-z))
    close(val, [[want]], rtol=1e-6, atol=1e-40)
    # onnxruntime's float32 Sigmoid (MLAS) is exact to ~6e-8 absolute and flushes below -18
    np.testing.assert_allclose(grad, [[sig - y]], rtol=1e-6, atol=1e-7)


def test_naive_sigmoid_ratio():
    val, grad = loss_and_grad("exp(y_pred)/(1 + exp(y_pred))", [[100.0, -100.0, 0.0]])
    close(val, [[1, np.exp(-100.0), 0.5]], rtol=1e-6, atol=1e-40)
    np.testing.assert_allclose(grad, [[0, np.exp(-100.0), 0.25]], rtol=1e-6, atol=1e-40)


def test_log_sum_exp():
    z = np.array([[100.0, -100.0, 50.0], [-100.0, -100.0, -100.0]])
    val, grad = loss_and_grad("log(sum(exp(y_pred), axis=-1))", z)
    m = z.max(1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(1, keepdims=True))
    close(val, lse.ravel(), rtol=1e-6)
    np.testing.assert_allclose(grad, np.exp(z - lse), rtol=1e-5, atol=1e-40)


def test_cross_entropy_written_with_softmax():
    z = np.array([[100.0, -100.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0]])
    val, grad = loss_and_grad("-sum(y_true*log(exp(y_pred)/sum(exp(y_pred))), axis=-1)", z, y)
    close(val, [200.0], rtol=1e-6)
    np.testing.assert_allclose(grad, [[1, -1, 0]], atol=1e-6)


def test_sinh_over_cosh():
    val, grad = loss_and_grad("sinh(y_pred)/cosh(y_pred)", [[100.0, -100.0, 0.5]])
    close(val, [[1, -1, np.tanh(0.5)]], rtol=1e-6)
    np.testing.assert_allclose(grad, [[0, 0, 1 - np.tanh(0.5) ** 2]], rtol=1e-6, atol=1e-40)
