"""``resolve_loss(spec) -> Loss``: the one place that turns what a user passes as a loss
into a ``Loss``. Four kinds are accepted, as TF.js, Keras and PyTorch users write them:

- a ``Loss``                                    returned as is;
- a catalogue name or alias                     ``"huber"``, ``"CrossEntropyLoss"``, ``"mse"``;
- an expression string                          ``"log(cosh(y_pred - y_true))"`` (as Loss.from_expression);
- a function ``f(y_true, y_pred)``              written with ``symgrad.compiler.ops`` and sympy,
                                                the way a TF.js user writes a custom loss.

compile_model, metrics and multi-output models all call this one function.
"""
import inspect

import sympy

from .errors import ExpressionError, ParameterError, SymgradError, UnknownNameError
from .loss import Y_PRED, Y_TRUE, Loss

ACCEPTED = ("a Loss, a catalogue loss name (e.g. 'huber', 'CrossEntropyLoss'), an expression string over "
            "y_true and y_pred (e.g. '(y_pred - y_true)**2'), or a function f(y_true, y_pred) written with "
            "symgrad.compiler.ops")


def resolve_loss(spec):
    """A ``Loss`` from any of the four accepted kinds (see the module docstring)."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        return _from_text(spec)
    if callable(spec):
        return from_function(spec)
    raise ParameterError(f"loss {spec!r} ({type(spec).__name__}) is not accepted; give {ACCEPTED}")


def _looks_like_expression(text):
    # a name is one identifier (letters, digits, '_', '-', '.'); anything else is arithmetic
    return "y_pred" in text or any(not (c.isalnum() or c in "_-. ") for c in text)


def _from_text(text):
    from . import losses
    try:
        return losses.get(text)
    except UnknownNameError:
        if not _looks_like_expression(text):
            raise
    return Loss.from_expression(text)


def from_function(func, name=None):
    """Declare a Loss by calling ``func(y_true, y_pred)`` on the two symbols."""
    fname = name or getattr(func, "__name__", None) or "custom_loss"
    if fname == "<lambda>":
        fname = "custom_loss"
    try:
        sig = inspect.signature(func)
        sig.bind(Y_TRUE, Y_PRED)
    except TypeError:
        raise ParameterError(f"loss function {fname!r} must take two arguments (y_true, y_pred), "
                             f"as a TF.js/Keras custom loss does") from None
    except ValueError:      # builtins without a signature: just try the call
        pass
    try:
        expr = func(Y_TRUE, Y_PRED)
    except SymgradError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's function failed on symbols: say why and what works
        raise ExpressionError(
            f"loss function {fname!r} failed when called with the symbols y_true, y_pred: "
            f"{type(exc).__name__}: {exc}. Write it with symgrad.compiler.ops and sympy functions "
            "(ops.mean, ops.sum, sympy.log, ...), not NumPy, and without Python if/else on the inputs "
            "(use ops.where)") from None
    if not isinstance(expr, sympy.Basic):
        raise ExpressionError(f"loss function {fname!r} returned {expr!r} ({type(expr).__name__}); it must "
                              "return a sympy expression built from its arguments")
    return Loss(expr, name=fname)
