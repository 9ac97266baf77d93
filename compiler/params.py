"""Validation of numeric parameters (losses, layers, optimizers share it)."""
import math
import numbers

from .errors import ParameterError

RULES = {
    "number": ("any finite number", lambda x: True),
    "positive": ("a number > 0", lambda x: x > 0),
    "nonnegative": ("a number >= 0", lambda x: x >= 0),
    "open_unit": ("a number in (0, 1)", lambda x: 0 < x < 1),
    "closed_unit": ("a number in [0, 1]", lambda x: 0 <= x <= 1),
    "halfopen_unit": ("a number in [0, 1)", lambda x: 0 <= x < 1),
    "probability_open": ("a number in (0, 1)", lambda x: 0 < x < 1),
}


def check_number(owner, name, value, rule="number"):
    """Return float(value) if it satisfies ``rule``, else raise a ParameterError naming it."""
    what, ok = RULES[rule]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{owner}: parameter {name!r} must be {what}, got {value!r} ({type(value).__name__})")
    try:
        value = float(value)
    except OverflowError:   # an int beyond float's range, such as 10**400
        raise ParameterError(f"{owner}: parameter {name!r} must be {what}, got an integer of {len(str(value))} digits "
                             "(beyond a float's range of 1.8e308)") from None
    if not math.isfinite(value) or not ok(value):
        raise ParameterError(f"{owner}: parameter {name!r} must be {what}, got {value!r}")
    return value


def check_int(owner, name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{owner}: parameter {name!r} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ParameterError(f"{owner}: parameter {name!r} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(owner, name, value, choices):
    if value not in choices:
        raise ParameterError(f"{owner}: parameter {name!r} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
