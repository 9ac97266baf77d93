"""Symbols, constants and parameter checks shared by every catalogue module."""
import numbers

import numpy as np
import sympy

from ..errors import ParameterError
from ..loss import Y_PRED, Y_TRUE, check_reduction as _canonical_reduction
from ..params import check_choice, check_number
from .tensors import class_vector

y = Y_TRUE
p = Y_PRED
KERAS_EPSILON = 1e-7        # keras.backend.epsilon(): clipping and denominators
DEFAULT_REDUCTION = "sum_over_batch_size"


def sym(name):
    """The symbol of a numeric parameter (kept symbolic so formulas show its name)."""
    return sympy.Symbol(name, real=True)


def check_bool(owner, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{owner}: parameter {name!r} must be True or False, got {value!r}")
    return bool(value)


def check_axis(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{owner}: parameter {name!r} must be an integer axis (e.g. -1), got {value!r}")
    return int(value)


def check_reduction(owner, value, default=DEFAULT_REDUCTION):
    if value is None:
        return default
    return _canonical_reduction(owner, value)


def check_axes(owner, name, value):
    """None (every axis, Keras' default for Dice), an integer axis or a tuple of them."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and value:
        return tuple(check_axis(owner, name, v) for v in value)
    return check_axis(owner, name, value)


def check_clip_epsilon(owner, value, name="epsilon"):
    """A clipping constant: clip(p, eps, 1 - eps) needs 0 < eps < 0.5."""
    value = check_number(owner, name, value, "positive")
    if value >= 0.5:
        raise ParameterError(f"{owner}: parameter {name!r} must be a number in (0, 0.5), got {value!r}")
    return value


def check_vector(owner, name, value, allow_scalar=False):
    """Per-class weights: a sequence (or {class index: weight} dict) of numbers >= 0.

    Returns a tuple of floats, or a float when ``allow_scalar`` and a number was given."""
    if allow_scalar and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return check_number(owner, name, value, "nonnegative")
    if isinstance(value, dict):
        keys = list(value)
        if not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in keys) or \
                sorted(keys) != list(range(len(keys))):
            raise ParameterError(f"{owner}: parameter {name!r} as a dict needs the class indices 0..C-1 as keys, "
                                 f"got keys {sorted(keys, key=str)!r}")
        value = [value[k] for k in range(len(keys))]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
        what = "a number >= 0 or " if allow_scalar else ""
        raise ParameterError(f"{owner}: parameter {name!r} must be {what}a non-empty sequence of numbers >= 0 "
                             f"(one per class), got {value!r}")
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ParameterError(f"{owner}: parameter {name!r} must be one-dimensional (one weight per class), "
                             f"got shape {arr.shape}")
    return tuple(check_number(owner, f"{name}[{i}]", v.item() if hasattr(v, "item") else v, "nonnegative")
                 for i, v in enumerate(arr))


def vector(name, values):
    """A per-class constant vector, or the number itself for a scalar."""
    if isinstance(values, float):
        return sympy.Float(values)
    return class_vector(name, values)


def clip(x, lo, hi):
    """Keras' clip(x, lo, hi) as sympy Min/Max (their derivative is 0 outside [lo, hi])."""
    return sympy.Min(sympy.Max(x, lo), hi)


def hinge_labels(t):
    """Keras' binary labels for hinge losses: 0 -> -1, so {0, 1} and {-1, 1} both work."""
    return sympy.Piecewise((-1, sympy.Eq(t, 0)), (t, True))
