"""Regression losses. Each is a per-element formula averaged over the last axis (Keras'
per-sample value), then reduced (default ``sum_over_batch_size``: the batch mean)."""
import sympy
from sympy import Abs, Max, Piecewise, exp, log, pi

from .. import ops
from ..functions import logcosh
from .common import p, sym, y
from .registry import register, spec


@register("regression", aliases=("mse", "squared_error"))
def mean_squared_error(reduction=None):
    """Mean squared error: the mean over the last axis of (y_pred - y_true)^2.

    Convention: Keras MeanSquaredError (per-sample mean over the last axis, then the batch
    mean); PyTorch MSELoss(reduction='mean') gives the same number on dense tensors.
    """
    return spec(ops.mean((p - y) ** 2))


@register("regression", aliases=("mae", "l1", "absolute_error"))
def mean_absolute_error(reduction=None):
    """Mean absolute error (L1): the mean over the last axis of |y_pred - y_true|.

    Convention: Keras MeanAbsoluteError; PyTorch L1Loss gives the same number on dense tensors.
    """
    return spec(ops.mean(Abs(p - y)))


@register("regression", aliases=("mape",), epsilon="positive")
def mean_absolute_percentage_error(epsilon=1e-7, reduction=None):
    """Mean absolute percentage error: 100 * mean |(y_true - y_pred) / max(|y_true|, epsilon)|.

    Convention: Keras MeanAbsolutePercentageError, epsilon = 1e-7 (Keras' backend epsilon).
    """
    eps = sym("epsilon")
    return spec(100 * ops.mean(Abs((y - p) / Max(Abs(y), eps))), params={"epsilon": epsilon})


@register("regression", aliases=("msle",), epsilon="positive")
def mean_squared_logarithmic_error(epsilon=1e-7, reduction=None):
    """Mean squared logarithmic error: mean (log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2.

    Convention: Keras MeanSquaredLogarithmicError (both sides clipped below at epsilon = 1e-7).
    """
    eps = sym("epsilon")
    d = log(Max(p, eps) + 1) - log(Max(y, eps) + 1)
    return spec(ops.mean(d ** 2), params={"epsilon": epsilon})


@register("regression", delta="positive")
def huber(delta=1.0, reduction=None):
    """Huber loss: e^2/2 where |e| <= delta, else delta*(|e| - delta/2), with e = y_pred - y_true.

    Convention: Keras Huber (mean over the last axis); PyTorch HuberLoss and Optax huber_loss
    agree (the boundary uses <= as Keras; both branches meet there).
    """
    d, e = sym("delta"), p - y
    per = Piecewise((e ** 2 / 2, Abs(e) <= d), (d * (Abs(e) - d / 2), True))
    return spec(ops.mean(per), params={"delta": delta})


@register("regression", beta="positive")
def smooth_l1(beta=1.0, reduction=None):
    """Smooth L1: e^2/(2*beta) where |e| < beta, else |e| - beta/2 (= huber(beta) / beta).

    Convention: PyTorch SmoothL1Loss(beta), averaged over the last axis then the batch (the
    same number as PyTorch's mean on dense tensors). beta = 0 is plain L1: use
    mean_absolute_error.
    """
    b, e = sym("beta"), p - y
    per = Piecewise((e ** 2 / (2 * b), Abs(e) < b), (Abs(e) - b / 2, True))
    return spec(ops.mean(per), params={"beta": beta})


@register("regression", aliases=("logcosh",))
def log_cosh(reduction=None):
    """Log-cosh: mean log(cosh(y_pred - y_true)), evaluated as |e| + softplus(-2|e|) - log 2.

    Convention: Keras LogCosh (mean over the last axis); finite for any error size.
    """
    return spec(ops.mean(logcosh(p - y)))


@register("regression", aliases=("pinball",), quantile="open_unit")
def quantile(quantile=0.5, reduction=None):
    """Quantile (pinball) loss: max(q*(y_true - y_pred), (q - 1)*(y_true - y_pred)).

    Convention: TensorFlow Addons pinball_loss (tau = quantile), mean over the last axis.
    quantile = 0.5 is half the mean absolute error.
    """
    q, e = sym("quantile"), y - p
    return spec(ops.mean(Max(q * e, (q - 1) * e)), params={"quantile": quantile})


@register("regression", log_input="bool", full="bool", epsilon="positive")
def poisson(log_input=False, full=False, epsilon=1e-7, reduction=None):
    """Poisson negative log-likelihood: y_pred - y_true*log(y_pred + epsilon).

    Convention: Keras Poisson (y_pred is the rate, epsilon = 1e-7). log_input=True is PyTorch
    PoissonNLLLoss(log_input=True): exp(y_pred) - y_true*y_pred. full=True adds PyTorch's
    Stirling term y*log(y) - y + log(2*pi*y)/2 where y > 1. PyTorch's own eps is 1e-8.
    """
    eps = sym("epsilon")
    per = exp(p) - y * p if log_input else p - y * log(p + eps)
    if full:
        per = per + Piecewise((y * log(y) - y + log(2 * pi * y) / 2, y > 1), (0, True))
    return spec(ops.mean(per), params={} if log_input else {"epsilon": epsilon})


@register("regression", full="bool", eps="positive")
def gaussian_nll(full=False, eps=1e-6, reduction=None):
    """Gaussian negative log-likelihood with a predicted variance:
    (log(max(var, eps)) + (y_pred - y_true)^2 / max(var, eps)) / 2 [+ log(2*pi)/2 if full].

    Inputs: y_pred (the mean), y_true (the target) and the extra input ``var`` (the variance,
    shaped like y_pred); the model has outputs grad_y_pred and grad_var.
    Convention: PyTorch GaussianNLLLoss(full, eps), mean over the last axis then the batch.
    PyTorch clamps var without a gradient through the clamp; here the clamp is max(var, eps),
    whose gradient is 0 where var < eps.
    """
    e, v = sym("eps"), sympy.Symbol("var", real=True)
    vc = Max(v, e)
    per = (log(vc) + (p - y) ** 2 / vc) / 2
    if full:
        per = per + log(2 * pi) / 2
    return spec(ops.mean(per), params={"eps": eps}, inputs=("var",))
