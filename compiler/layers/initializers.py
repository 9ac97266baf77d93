"""Weight initializers, Keras' names and formulas, drawn from a NumPy Generator so that a
model seed reproduces every initial weight.

An initializer is called as ``init(shape, rng, fan_in, fan_out)``. Fans follow Keras
for dense kernels (in, out); convolution layers pass their own (PyTorch layout).
"""
import math
import numbers

import numpy as np

from ..errors import ParameterError, unknown_name
from ..params import check_number

# the stddev of a standard normal truncated at +-2, to make variance scaling exact
_TRUNC_STD = 0.87962566103423978


def default_fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(rng, shape, mean, stddev):
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():  # redraw outside +-2 sigma, as Keras/TF do
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return mean + stddev * out


class Initializer:
    name = None

    def __call__(self, shape, rng, fan_in, fan_out):
        raise NotImplementedError

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Constant(Initializer):
    name = "constant"

    def __init__(self, value=0.0):
        self.value = check_number("constant initializer", "value", value)

    def __call__(self, shape, rng, fan_in, fan_out):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    name = "zeros"

    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    name = "ones"

    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


class RandomUniform(Initializer):
    name = "uniform"

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval = check_number("uniform initializer", "minval", minval)
        self.maxval = check_number("uniform initializer", "maxval", maxval)
        if self.maxval <= self.minval:
            raise ParameterError(f"uniform initializer: 'maxval' ({maxval}) must be > 'minval' ({minval})")

    def __call__(self, shape, rng, fan_in, fan_out):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


class RandomNormal(Initializer):
    name = "normal"
    truncated = False

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean = check_number(f"{self.name} initializer", "mean", mean)
        self.stddev = check_number(f"{self.name} initializer", "stddev", stddev, "positive")

    def __call__(self, shape, rng, fan_in, fan_out):
        if self.truncated:
            return _truncated_normal(rng, shape, self.mean, self.stddev)
        return self.mean + self.stddev * rng.standard_normal(shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    name = "truncated_normal"
    truncated = True


class VarianceScaling(Initializer):
    """Keras' VarianceScaling: variance scale / n, n = fan_in, fan_out or their mean."""

    name = "variance_scaling"

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        self.scale = check_number("variance_scaling initializer", "scale", scale, "positive")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ParameterError(f"variance_scaling initializer: 'mode' must be 'fan_in', 'fan_out' or 'fan_avg', "
                                 f"got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ParameterError("variance_scaling initializer: 'distribution' must be 'truncated_normal', "
                                 f"'untruncated_normal' or 'uniform', got {distribution!r}")
        self.mode, self.distribution = mode, distribution

    def __call__(self, shape, rng, fan_in, fan_out):
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return math.sqrt(var) * rng.standard_normal(shape)
        return _truncated_normal(rng, shape, 0.0, math.sqrt(var) / _TRUNC_STD)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


class Orthogonal(Initializer):
    """Keras' orthogonal (recurrent kernels): the Q of a normal matrix's QR, signs fixed by
    R's diagonal, on the shape folded to (prod(shape[:-1]), shape[-1])."""

    name = "orthogonal"

    def __init__(self, gain=1.0):
        self.gain = check_number("orthogonal initializer", "gain", gain)

    def __call__(self, shape, rng, fan_in, fan_out):
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain}


def _scaling(scale, mode, distribution):
    return lambda: VarianceScaling(scale, mode, distribution)


_BUILTIN = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "uniform": RandomUniform, "random_uniform": RandomUniform,
    "normal": RandomNormal, "random_normal": RandomNormal, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "orthogonal": Orthogonal,
    "glorot_uniform": _scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": _scaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": _scaling(2.0, "fan_in", "uniform"),
    "he_normal": _scaling(2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": _scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": _scaling(1.0, "fan_in", "truncated_normal"),
}


def names():
    return sorted(_BUILTIN)


class _FromCallable(Initializer):
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, shape, rng, fan_in, fan_out):
        return self.fn(shape, rng)


def get(identifier, **kwargs):
    """An Initializer from a name ('glorot_uniform', ...), a number (constant), an
    Initializer, or a callable ``fn(shape, rng) -> array``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict) and "class_name" in identifier:  # what serialize() writes
        return get(identifier["class_name"], **dict(identifier.get("config", {})))
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BUILTIN:
            raise unknown_name("initializer", identifier, _BUILTIN)
        try:
            return _BUILTIN[key](**kwargs)
        except TypeError as exc:
            raise ParameterError(f"initializer {identifier!r}: {exc}") from None
    if isinstance(identifier, numbers.Real) and not isinstance(identifier, bool):
        return Constant(identifier)
    if callable(identifier):
        return _FromCallable(identifier)
    raise ParameterError(f"an initializer must be a name ({', '.join(names())}), a number, an Initializer "
                         f"or a callable fn(shape, rng), got {identifier!r}")


def serialize(init):
    """A name or {'class_name', 'config'} that ``get`` accepts back (None for callables)."""
    if isinstance(init, _FromCallable):
        return None
    for key, cls in _BUILTIN.items():
        if isinstance(cls, type) and type(init) is cls and not init.get_config():
            return key
    if isinstance(init, VarianceScaling):
        for key, make in _BUILTIN.items():
            if not isinstance(make, type) and make().get_config() == init.get_config():
                return key
    return {"class_name": init.name, "config": init.get_config()}
