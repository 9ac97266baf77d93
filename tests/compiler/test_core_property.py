"""Property test: random expression trees over the vocabulary compile, their gradients
match the oracle (lambdified sympy.diff, or float64 central differences when tensor
functions are involved), and float32 graphs never produce NaN or Inf where the float64
oracle is finite.

CI profile: 200 trees per run. Locally: HYPOTHESIS_PROFILE=full (1000 trees)."""
import os

import numpy as np
import sympy
from hypothesis import assume, given, settings, strategies as st

from symgrad.compiler import Loss, MissingPredictionError
from symgrad.compiler.errors import NonDifferentiableError
from symgrad.compiler.loss import Y_PRED, Y_TRUE
from oracle import central_fd, run
from test_core_vocabulary import NUMPY_TENSOR

EXAMPLES = 1000 if os.environ.get("HYPOTHESIS_PROFILE") == "full" else 200

LEAVES = st.sampled_from(["y_pred", "y_pred", "y_pred", "y_true", "0.5", "2", "(-1.5)"])
UNARY = [
    "exp({})", "log(Abs({}) + 0.5)", "sqrt({}**2 + 0.1)", "Abs({})", "sign({})*{}",
    "sin({})", "cos({})", "tan(0.7*tanh({}))", "asin(0.9*tanh({}))", "acos(0.9*tanh({}))", "atan({})",
    "sinh({})", "cosh({})", "tanh({})", "asinh({})", "acosh({}**2 + 1.5)", "atanh(0.9*tanh({}))",
    "erf({})", "sigmoid({})", "softplus({})", "log(cosh({}))", "log(1 + exp({}))",
    "Heaviside({})*{}", "({})**2", "({})**3", "sqrt(Abs({}) + 1)**3",
]
BINARY = ["({} + {})", "({} - {})", "({} * {})", "({} / ({}**2 + 1))", "Max({}, {})", "Min({}, {})",
          "Piecewise(({}, y_pred > 0), ({}, True))"]
TENSOR = ["sum({}, axis=-1)", "mean({})", "max({}, axis=-1)", "min({}, axis=-1)", "logsumexp({})",
          "softmax({})", "log_softmax({})", "norm({})", "dot({}, y_true)"]


def _fill(template, args):
    n = template.count("{}")
    return template.format(*[args[i % len(args)] for i in range(n)])


def expressions(max_leaves=12):
    def extend(children):
        return st.one_of(
            st.builds(lambda t, c: _fill(t, [c]), st.sampled_from(UNARY), children),
            st.builds(lambda t, a, b: _fill(t, [a, b]), st.sampled_from(BINARY), children, children),
            st.builds(lambda t, c: _fill(t, [c if "y_" in c else f"({c})*y_pred"]), st.sampled_from(TENSOR), children),
        )
    return st.recursive(LEAVES, extend, max_leaves=max_leaves)


def _oracle(loss):
    f = sympy.lambdify((Y_TRUE, Y_PRED), loss.expression, modules=[NUMPY_TENSOR, "numpy"])
    return lambda yt, yp: float(np.sum(f(yt, yp) + np.zeros((1, 1))))


@settings(max_examples=EXAMPLES)
@given(text=expressions(), seed=st.integers(0, 2**16))
def test_random_expressions_have_correct_gradients(text, seed):
    if "y_pred" not in text:
        text = f"({text}) * y_pred"
    try:
        loss = Loss.from_expression(text, reduction="sum")
    except MissingPredictionError:  # the tree cancelled to a constant, e.g. y_pred - y_pred
        assume(False)
    rng = np.random.default_rng(seed)
    yp, yt = rng.uniform(-2, 2, (2, 3)), rng.uniform(-2, 2, (2, 3))
    f = _oracle(loss)
    with np.errstate(all="ignore"):
        want = f(yt, yp)
        fd = central_fd(lambda x: f(yt, x), yp)
    # the oracle must be finite and moderate: float32 cannot hold what float64 overflows past
    assume(np.isfinite(want) and abs(want) < 1e5 and np.all(np.isfinite(fd)) and np.max(np.abs(fd)) < 1e5)
    feeds = {"y_pred": yp}
    if Y_TRUE in loss.expression.free_symbols:
        feeds["y_true"] = yt
    try:
        model64 = loss.to_onnx(dtype="float64", shape=(None, 3))
    except NonDifferentiableError:  # y_pred only inside a step: rejected with a clear message
        # the refusal must be right: the oracle's gradient is zero too, apart from a jump
        # that happens to fall inside the difference step
        assert np.all(np.abs(fd[np.abs(fd) < 1e3]) < 1e-6), (text, fd)
        return
    out64 = run(model64, **feeds)
    has_tensor = any(t.split("(")[0] in text for t in TENSOR)
    if has_tensor:
        exact = fd
        tol = dict(rtol=1e-4, atol=1e-4)
    else:
        delta_is_zero = {"DiracDelta": lambda *a: 0 * a[0]}
        d = sympy.lambdify((Y_TRUE, Y_PRED), sympy.diff(loss.expression, Y_PRED),
                           modules=[delta_is_zero, NUMPY_TENSOR, "numpy"])
        with np.errstate(all="ignore"):
            exact = d(yt, yp) + np.zeros_like(yp)
        # a kink (Abs, Max, Heaviside) within the difference step is not a disagreement
        assume(np.allclose(exact, fd, rtol=1e-3, atol=1e-3))
        tol = dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out64["loss"], want, rtol=1e-6, atol=1e-6, err_msg=text)
    np.testing.assert_allclose(out64["grad_y_pred"], exact, err_msg=text, **tol)
    out32 = run(loss.to_onnx(dtype="float32", shape=(None, 3)),
                **{k: v.astype(np.float32) for k, v in feeds.items()})
    assert np.isfinite(out32["loss"]) and np.all(np.isfinite(out32["grad_y_pred"])), text
