"""Every function of the vocabulary: value and gradient of the emitted graph, run in
onnxruntime, against sympy.lambdify and float64 central finite differences, in float32
and float64."""
import numpy as np
import pytest
import scipy.special
import sympy

from symgrad.compiler import Loss
from symgrad.compiler.loss import Y_PRED, Y_TRUE
from oracle import central_fd, run

# expression, (low, high) for y_pred, (low, high) for y_true
ELEMENTWISE = [
    ("exp(y_pred)", (-3, 3)), ("log(y_pred)", (0.1, 5)), ("sqrt(y_pred)", (0.1, 5)),
    ("Abs(y_pred)", (-3, 3)), ("sign(y_pred)*y_pred**2", (-3, 3)),
    ("Min(y_pred, y_true)", (-3, 3)), ("Max(y_pred, y_true)", (-3, 3)),
    ("Piecewise((y_pred**2, y_pred > 0), (-y_pred, True))", (-3, 3)),
    ("Heaviside(y_pred)*y_pred**2", (-3, 3)),
    ("sin(y_pred)", (-3, 3)), ("cos(y_pred)", (-3, 3)), ("tan(y_pred)", (-1.2, 1.2)),
    ("cot(y_pred)", (0.2, 2.5)), ("sec(y_pred)", (-1.2, 1.2)), ("csc(y_pred)", (0.2, 2.5)),
    ("asin(y_pred)", (-0.9, 0.9)), ("acos(y_pred)", (-0.9, 0.9)), ("atan(y_pred)", (-3, 3)),
    ("acot(y_pred)", (0.2, 3)), ("asec(y_pred)", (1.2, 4)), ("acsc(y_pred)", (1.2, 4)),
    ("sinh(y_pred)", (-3, 3)), ("cosh(y_pred)", (-3, 3)), ("tanh(y_pred)", (-3, 3)),
    ("coth(y_pred)", (0.2, 3)), ("sech(y_pred)", (-3, 3)), ("csch(y_pred)", (0.2, 3)),
    ("asinh(y_pred)", (-3, 3)), ("acosh(y_pred)", (1.2, 4)), ("atanh(y_pred)", (-0.9, 0.9)),
    ("acoth(y_pred)", (1.2, 4)), ("asech(y_pred)", (0.1, 0.9)), ("acsch(y_pred)", (0.2, 3)),
    ("erf(y_pred)", (-2, 2)), ("erfc(y_pred)", (-2, 2)),
    ("sigmoid(y_pred)", (-5, 5)), ("softplus(y_pred)", (-5, 5)),
    ("(y_pred - y_true)**2", (-3, 3)), ("y_pred**3 - 2*y_pred*y_true", (-3, 3)),
    ("y_pred**(1/3)", (0.1, 5)), ("y_pred**2.5", (0.1, 5)), ("y_pred**-2", (0.5, 3)),
    ("2**y_pred", (-3, 3)), ("y_pred**y_true", (0.5, 2.5)), ("y_true/y_pred", (0.5, 3)),
    ("log(cosh(y_pred - y_true))", (-3, 3)), ("exp(-y_pred**2/2)/sqrt(2*pi)", (-3, 3)),
]

def _ax(ax):
    return tuple(int(a) for a in ax) or None  # empty = every axis


# numpy implementations of the tensor functions, written here for the oracle
NUMPY_TENSOR = {
    "ReduceSum": lambda x, ax: np.sum(x, axis=_ax(ax), keepdims=True),
    "ReduceMean": lambda x, ax: np.mean(x, axis=_ax(ax), keepdims=True),
    "ReduceMax": lambda x, ax: np.max(x, axis=_ax(ax), keepdims=True),
    "ReduceMin": lambda x, ax: np.min(x, axis=_ax(ax), keepdims=True),
    "LogSumExp": lambda x, ax: np.log(np.sum(np.exp(x), axis=_ax(ax), keepdims=True)),
    "Softmax": lambda x, ax: np.exp(x) / np.sum(np.exp(x), axis=_ax(ax), keepdims=True),
    "LogSoftmax": lambda x, ax: x - np.log(np.sum(np.exp(x), axis=_ax(ax), keepdims=True)),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "logcosh": lambda x: np.log(np.cosh(x)),
    "erf": scipy.special.erf, "erfc": scipy.special.erfc,
}

TENSOR = [
    "sum(y_pred**2 * y_true, axis=-1)", "mean(y_pred * y_true)", "max(y_pred, axis=-1)",
    "min(y_pred*y_true, axis=-1)", "logsumexp(y_pred)", "softmax(y_pred) * y_true",
    "-sum(y_true * log_softmax(y_pred), axis=-1)", "dot(y_true, y_pred) / norm(y_pred)",
    "norm(y_pred - y_true, axis=-1)", "sum(y_pred, axis=None) * y_true",
    "max(y_pred, axis=0) - mean(y_pred, axis=(0, 1))", "log(sum(exp(y_pred)))",
    "norm(y_pred, ord=1)", "norm(y_pred, ord=3)",
]


def oracle(text):
    loss = Loss.from_expression(text, reduction="sum")
    f = sympy.lambdify((Y_TRUE, Y_PRED), loss.expression, modules=[NUMPY_TENSOR, "numpy"])
    return loss, lambda yt, yp: float(np.sum(f(yt, yp)))


def sample(rng, lo_hi, shape=(3, 4)):
    lo, hi = lo_hi
    x = rng.uniform(lo, hi, size=shape)
    return np.where(np.abs(x) < 0.05, 0.3, x)  # stay off the kinks at 0


def check(text, yt, yp, dtype):
    loss, f = oracle(text)
    out = run(loss.to_onnx(dtype=dtype, shape=(None, yp.shape[1])),
              **{k: v.astype(dtype) for k, v in (("y_true", yt), ("y_pred", yp)) if k in _inputs(loss)})
    want = f(yt, yp)
    grad = central_fd(lambda x: f(yt, x), yp)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == "float32" else dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["loss"], want, **tol)
    np.testing.assert_allclose(out["grad_y_pred"], grad, **tol)
    return loss, out


def _inputs(loss):
    names = {"y_pred"}
    if Y_TRUE in loss.expression.free_symbols:
        names.add("y_true")
    return names


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("text,domain", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_value_and_gradient(text, domain, dtype):
    rng = np.random.default_rng(abs(hash(text)) % 2**32)
    yp, yt = sample(rng, domain), sample(rng, domain)
    loss, out = check(text, yt, yp, dtype)
    # the symbolic derivative, lambdified, is a second oracle when no tensor function is involved
    delta_is_zero = {"DiracDelta": lambda *a: 0 * a[0]}  # a distribution: zero off the kink
    exact = dict(rtol=1e-9, atol=1e-9)
    d = sympy.lambdify((Y_TRUE, Y_PRED), sympy.diff(loss.expression, Y_PRED), [delta_is_zero, NUMPY_TENSOR, "numpy"])
    np.testing.assert_allclose(out["grad_y_pred"], d(yt, yp) + 0 * yp,
                               **(dict(rtol=2e-4, atol=1e-5) if dtype == "float32" else exact))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("text", TENSOR)
def test_tensor_function_value_and_gradient(text, dtype):
    rng = np.random.default_rng(abs(hash(text)) % 2**32)
    check(text, rng.uniform(0.1, 1, (3, 5)), rng.normal(size=(3, 5)), dtype)


def test_gradient_expression_is_sympy_derivative():
    loss = Loss.from_expression("log(cosh(y_pred - y_true))", reduction="mean")
    assert sympy.simplify(loss.gradient_expression() - sympy.tanh(Y_PRED - Y_TRUE)) == 0
    latex = loss.latex()
    assert r"\tanh" in latex and r"\cosh" in latex


def test_reductions_against_numpy():
    rng = np.random.default_rng(1)
    yt, yp, w = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.uniform(0.1, 2, size=4)
    per = (yp - yt) ** 2
    per_sample = per.mean(axis=1)
    expect = {
        "none": per * w[:, None], "sum": (per * w[:, None]).sum(),
        "mean": (per * w[:, None]).sum() / per.size,
        "sum_over_batch_size": (per * w[:, None]).sum() / per.size,
        "weighted_mean": (per * w[:, None]).sum() / (w.sum() * 3),
    }
    for reduction, want in expect.items():
        loss = Loss.from_expression("(y_pred - y_true)**2", reduction=reduction)
        out = run(loss.to_onnx(dtype="float64", shape=(None, 3), sample_weight=True),
                  y_true=yt, y_pred=yp, sample_weight=w)
        np.testing.assert_allclose(out["loss"], want, rtol=1e-12, err_msg=reduction)
        if reduction != "none":
            f = lambda x: float(np.sum(Loss and 0) + _reduce(reduction, (x - yt) ** 2, w))  # noqa: E731
            np.testing.assert_allclose(out["grad_y_pred"], central_fd(f, yp), rtol=1e-6, atol=1e-8)
    # per-sample losses (mean over the last axis) with the Keras default reduction
    loss = Loss.from_expression("mean((y_pred - y_true)**2, axis=-1)")
    out = run(loss.to_onnx(dtype="float64", shape=(None, 3), sample_weight=True), y_true=yt, y_pred=yp, sample_weight=w)
    np.testing.assert_allclose(out["loss"], (per_sample * w).sum() / 4, rtol=1e-12)
    none = Loss.from_expression("mean((y_pred - y_true)**2, axis=-1)", reduction="none")
    out = run(none.to_onnx(dtype="float64", shape=(None, 3)), y_true=yt, y_pred=yp)
    assert out["loss"].shape == (4,)
    np.testing.assert_allclose(out["loss"], per_sample, rtol=1e-12)


def _reduce(reduction, per, w):
    v = per * w[:, None]
    if reduction == "sum":
        return v.sum()
    if reduction in ("mean", "sum_over_batch_size"):
        return v.sum() / per.size
    return v.sum() / (w.sum() * per.shape[1])


def test_weighted_mean_with_zero_weights_is_zero():
    loss = Loss.from_expression("(y_pred - y_true)**2", reduction="weighted_mean")
    out = run(loss.to_onnx(shape=(None, 2), sample_weight=True), y_true=np.ones((2, 2), np.float32),
              y_pred=np.zeros((2, 2), np.float32), sample_weight=np.zeros(2, np.float32))
    assert out["loss"] == 0 and np.all(np.isfinite(out["grad_y_pred"]))


def test_extra_inputs_get_gradients():
    loss = Loss("Max(y_pred - positive + margin, 0) * Max(negative, 0)", inputs=["positive", "negative"],
                params={"margin": 0.5}, reduction="sum")
    rng = np.random.default_rng(3)
    a, p, n = (rng.normal(size=(3, 2)) for _ in range(3))
    out = run(loss.to_onnx(dtype="float64", shape=(None, 2)), y_pred=a, positive=p, negative=n)
    f = lambda a_, p_, n_: float(np.sum(np.maximum(a_ - p_ + 0.5, 0) * np.maximum(n_, 0)))  # noqa: E731
    np.testing.assert_allclose(out["loss"], f(a, p, n))
    np.testing.assert_allclose(out["grad_y_pred"], central_fd(lambda x: f(x, p, n), a), atol=1e-6)
    np.testing.assert_allclose(out["grad_positive"], central_fd(lambda x: f(a, x, n), p), atol=1e-6)
    np.testing.assert_allclose(out["grad_negative"], central_fd(lambda x: f(a, p, x), n), atol=1e-6)


def test_sparse_labels():
    loss = Loss("-sum(one_hot(y_true, y_pred) * log_softmax(y_pred), axis=-1)", labels="sparse")
    rng = np.random.default_rng(4)
    z, y = rng.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2])
    out = run(loss.to_onnx(dtype="float64", shape=(None, 4)), y_true=y, y_pred=z)
    lsm = z - np.log(np.exp(z).sum(1, keepdims=True))
    f = lambda x: float(-np.mean((x - np.log(np.exp(x).sum(1, keepdims=True)))[np.arange(5), y]))  # noqa: E731
    np.testing.assert_allclose(out["loss"], -lsm[np.arange(5), y].mean())
    np.testing.assert_allclose(out["grad_y_pred"], central_fd(f, z), atol=1e-7)


def test_batch_dimension_is_dynamic():
    loss = Loss.from_expression("mean(Abs(y_pred - y_true), axis=-1)")
    model = loss.to_onnx(shape=(None, 3))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    for n in (1, 7):
        out = run(model, y_true=np.zeros((n, 3), np.float32), y_pred=np.ones((n, 3), np.float32))
        assert out["grad_y_pred"].shape == (n, 3)
        np.testing.assert_allclose(out["loss"], 1.0)


def test_constant_subexpressions_of_our_functions_fold():
    # sigmoid/softplus/logcosh of a number expression become one constant (needs their evalf)
    loss = Loss.from_expression("y_pred * (softplus(exp(0.5)) + sigmoid(sqrt(2)) - logcosh(pi))", reduction="sum")
    c = np.log1p(np.exp(np.exp(0.5))) + 1 / (1 + np.exp(-np.sqrt(2))) - np.log(np.cosh(np.pi))
    out = run(loss.to_onnx(dtype="float64", shape=(None, 2)), y_pred=np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(out["loss"], 3 * c, rtol=1e-14)
    np.testing.assert_allclose(out["grad_y_pred"], [[c, c]], rtol=1e-14)
