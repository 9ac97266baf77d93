"""Activations as sympy expressions, with Keras' names and defaults.

Each is written so that it and its sympy derivative stay finite in float32 at large
|x|: piecewise forms keep exp() in the branch Where does not pick, softplus/sigmoid are
the stable ONNX ops, softmax/log_softmax are structural.
"""
import sympy
from sympy import Piecewise, Max, Min, exp, tanh, erf, sqrt, Abs, Rational

from .. import ops
from ..errors import ParameterError, unknown_name
from ..functions import sigmoid as _sigmoid, softplus as _softplus
from ..params import check_number

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def linear(x):
    return x


def relu(x):
    return Max(x, 0)


def relu6(x):
    return Min(Max(x, 0), 6)


def leaky_relu(x, negative_slope=0.2):
    """Keras' activations.leaky_relu default slope 0.2 (the LeakyReLU layer's is 0.3)."""
    return Piecewise((x, x > 0), (negative_slope * x, True))


def elu(x, alpha=1.0):
    return Piecewise((x, x > 0), (alpha * (exp(x) - 1), True))


def selu(x):
    return SELU_SCALE * Piecewise((x, x > 0), (SELU_ALPHA * (exp(x) - 1), True))


def gelu(x, approximate=False):
    """Exact (erf) GELU as Keras' default; approximate=True is the tanh form."""
    if approximate:
        return x / 2 * (1 + tanh(sqrt(2 / sympy.pi) * (x + Rational(44715, 1000000) * x ** 3)))
    return x / 2 * (1 + erf(x / sqrt(2)))


def sigmoid(x):
    return _sigmoid(x)


def silu(x):
    return x * _sigmoid(x)


swish = silu


def tanh_(x):
    return tanh(x)


def softplus(x):
    return _softplus(x)


def softsign(x):
    return x / (1 + Abs(x))


def mish(x):
    return x * tanh(_softplus(x))


def hard_sigmoid(x):
    """relu6(x + 3) / 6, as Keras 3 and PyTorch."""
    return Min(Max(x / 6 + Rational(1, 2), 0), 1)


def hard_silu(x):
    return x * hard_sigmoid(x)


def softmax(x, axis=-1):
    return ops.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return ops.log_softmax(x, axis=axis)


def exponential(x):
    return exp(x)


_ACTIVATIONS = {
    "linear": linear, "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "elu": elu, "selu": selu,
    "gelu": gelu, "sigmoid": sigmoid, "silu": silu, "swish": swish, "tanh": tanh_, "softplus": softplus,
    "softsign": softsign, "mish": mish, "hard_sigmoid": hard_sigmoid, "hard_silu": hard_silu,
    "hard_swish": hard_silu, "softmax": softmax, "log_softmax": log_softmax, "exponential": exponential,
}
# the numeric options each activation accepts, with the rule they must satisfy
_OPTIONS = {"leaky_relu": {"negative_slope": "nonnegative"}, "elu": {"alpha": "positive"},
            "softmax": {"axis": "int"}, "log_softmax": {"axis": "int"}, "gelu": {"approximate": "bool"}}


def names():
    return sorted(_ACTIVATIONS)


class _Bound:
    """An activation with its options bound; keeps its name for get_config."""

    def __init__(self, name, fn, options):
        self.name, self.fn, self.options = name, fn, options

    def __call__(self, x):
        return self.fn(x, **self.options)

    def __repr__(self):
        return f"<activation {self.name}{self.options or ''}>"


def get(identifier, **options):
    """A callable expr -> expr from a name ('relu', ...), None ('linear') or a callable."""
    if identifier is None:
        identifier = "linear"
    if isinstance(identifier, _Bound) and not options:
        return identifier
    if callable(identifier) and not isinstance(identifier, str):
        return _Bound(getattr(identifier, "__name__", "custom"), identifier, options)
    if not isinstance(identifier, str):
        raise ParameterError(f"an activation must be a name ({', '.join(names())}), None or a callable, "
                             f"got {identifier!r}")
    key = identifier.lower()
    if key not in _ACTIVATIONS:
        raise unknown_name("activation", identifier, _ACTIVATIONS)
    allowed = _OPTIONS.get(key, {})
    for opt, value in options.items():
        if opt not in allowed:
            raise ParameterError(f"activation {key!r} has no option {opt!r}; accepted: "
                                 f"{', '.join(allowed) or 'none'}")
        rule = allowed[opt]
        if rule == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParameterError(f"activation {key!r}: option {opt!r} must be an integer, got {value!r}")
        elif rule == "bool":
            if not isinstance(value, bool):
                raise ParameterError(f"activation {key!r}: option {opt!r} must be True or False, got {value!r}")
        else:
            options[opt] = check_number(f"activation {key!r}", opt, value, rule)
    return _Bound(key, _ACTIVATIONS[key], options)


def serialize(activation):
    return activation.name if not activation.options else {"name": activation.name, **activation.options}


def deserialize(config):
    if isinstance(config, dict):
        config = dict(config)
        return get(config.pop("name"), **config)
    return get(config)
