"""BatchNormalization and LayerNormalization, written as sympy over mean() reductions so
their backward passes come from the reduction VJPs and sympy.diff.

BatchNormalization momentum follows Keras (the opposite of PyTorch's):
    moving = momentum * moving + (1 - momentum) * batch_statistic
with the biased (population) batch variance, default momentum 0.99 and epsilon 1e-3.
PyTorch's BatchNorm(momentum=0.1) is momentum=0.9 here (and uses the unbiased variance
for its running estimate). The moving statistics are non-trainable weights; the train
step outputs their new values (``Trace.updates``), inference uses them.
"""
import sympy

from .. import ops
from ..errors import ParameterError, ShapeError
from ..params import check_int, check_number
from . import data_format as fmt, initializers
from .base import Layer
from .core import _init_config


def _axes(owner, axis, rank):
    axes = (axis,) if isinstance(axis, int) and not isinstance(axis, bool) else tuple(axis)
    if not axes or any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
        raise ParameterError(f"{owner}: parameter 'axis' must be an integer or a tuple of integers, got {axis!r}")
    out = []
    for a in axes:
        if not -rank <= a < rank or a % rank == 0:
            raise ShapeError(f"{owner}: axis {a} is not a feature axis of an input of rank {rank} "
                             f"(accepted: 1..{rank - 1} or -{rank - 1}..-1; axis 0 is the batch)")
        out.append(a % rank)
    return tuple(sorted(set(out)))


def _normalize(layer, x, mean, var, shape, feature_axes=None):
    """(x - mean) / sqrt(var + eps), then gamma and beta where the layer has them."""
    feature_axes = feature_axes or layer.feature_axes
    y = (x - mean) / sympy.sqrt(var + sympy.Float(layer.epsilon))
    if layer.scale:
        y = y * _broadcastable(layer.gamma, feature_axes, shape)
    if layer.center:
        y = y + _broadcastable(layer.beta, feature_axes, shape)
    return y


def _broadcastable(sym, feature_axes, input_shape):
    """A weight of the feature axes' shape, reshaped to broadcast against the input."""
    rank = len(input_shape)
    if feature_axes == tuple(range(rank - len(feature_axes), rank)):
        return sym  # trailing axes broadcast as they are
    target = (1,) + tuple(input_shape[i] if i in feature_axes else 1 for i in range(1, rank))
    return ops.reshape(sym, target)


class BatchNormalization(Layer):
    """Normalise over the batch (and spatial) axes, per feature along ``axis``.

    ``axis=None`` (the default) is the channel axis of the image data format in force when
    the layer is built: 1 for channels_first (as before data_format existed), -1 for
    channels_last (Keras' default); both are the feature axis of (N, F) data. On a
    channels_last tensor that a spatial layer handed back through a transpose, the
    statistics are taken on the channels-first tensor (no transpose in between)."""

    def __init__(self, axis=None, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.momentum = check_number("BatchNormalization", "momentum", momentum, "closed_unit")
        self.epsilon = check_number("BatchNormalization", "epsilon", epsilon, "positive")
        self.center, self.scale = bool(center), bool(scale)
        self.inits = {k: initializers.get(v) for k, v in (
            ("beta", beta_initializer), ("gamma", gamma_initializer), ("moving_mean", moving_mean_initializer),
            ("moving_variance", moving_variance_initializer))}

    def build(self, input_shape):
        axis = self.axis if self.axis is not None else (1 if fmt.image_data_format() == "channels_first" else -1)
        self.feature_axes = _axes("BatchNormalization", axis, len(input_shape))
        shape = tuple(input_shape[a] for a in self.feature_axes)
        if any(d is None for d in shape):
            raise ShapeError(f"BatchNormalization {self.name!r}: the feature axes must be static, got {input_shape}")
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, self.inits["gamma"])
        if self.center:
            self.beta = self.add_weight("beta", shape, self.inits["beta"])
        self.moving_mean = self.add_weight("moving_mean", shape, self.inits["moving_mean"], trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape, self.inits["moving_variance"],
                                               trainable=False)

    def call(self, x, training=False):
        shape, axes, r = self.input_shape, self.feature_axes, len(self.input_shape)
        inner = fmt.peel(x, r) if r >= 3 and axes == (r - 1,) else None
        if inner is not None:  # normalise the channels-first tensor, hand it back channels-last
            y = self._call(inner, (shape[0], shape[-1]) + tuple(shape[1:-1]), (1,), training)
            return fmt.restore(y, "channels_last", r)
        return self._call(x, shape, axes, training)

    def _call(self, x, shape, feature_axes, training):
        reduce_axes = tuple(i for i in range(len(shape)) if i not in feature_axes)
        moving_mean = _broadcastable(self.moving_mean, feature_axes, shape)
        moving_var = _broadcastable(self.moving_variance, feature_axes, shape)
        if training:
            mean = ops.mean(x, axis=reduce_axes)
            var = ops.mean((x - mean) ** 2, axis=reduce_axes)
            m = sympy.Float(self.momentum)
            self.add_update(self.moving_mean, m * moving_mean + (1 - m) * mean)
            self.add_update(self.moving_variance, m * moving_var + (1 - m) * var)
        else:
            mean, var = moving_mean, moving_var
        return _normalize(self, x, mean, var, shape, feature_axes)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                **{f"{k}_initializer": _init_config(v) for k, v in self.inits.items()}}


class LayerNormalization(Layer):
    """Normalise each sample over ``axis`` (default -1), then scale and shift (Keras)."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = check_number("LayerNormalization", "epsilon", epsilon, "positive")
        self.center, self.scale = bool(center), bool(scale)
        self.inits = {"beta": initializers.get(beta_initializer), "gamma": initializers.get(gamma_initializer)}

    def build(self, input_shape):
        self.feature_axes = _axes("LayerNormalization", self.axis, len(input_shape))
        shape = tuple(input_shape[a] for a in self.feature_axes)
        if any(d is None for d in shape):
            raise ShapeError(f"LayerNormalization {self.name!r}: the normalised axes must be static, "
                             f"got {input_shape}")
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, self.inits["gamma"])
        if self.center:
            self.beta = self.add_weight("beta", shape, self.inits["beta"])

    def call(self, x):
        shape = self.input_shape
        mean = ops.mean(x, axis=self.feature_axes)
        var = ops.mean((x - mean) ** 2, axis=self.feature_axes)
        return _normalize(self, x, mean, var, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, **{f"{k}_initializer": _init_config(v) for k, v in self.inits.items()}}


class GroupNormalization(Layer):
    """Keras' GroupNormalization: the channels on ``axis`` split into ``groups``; each
    sample is normalised over its group and every other non-batch axis, then gamma and
    beta per channel. Defaults as Keras 3 (groups=32, epsilon=1e-3), except ``axis=None``:
    the channel axis of the image data format in force (Keras always uses -1), as for
    BatchNormalization."""

    def __init__(self, groups=32, axis=None, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.groups = check_int("GroupNormalization", "groups", groups, 1)
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int)):
            raise ParameterError(f"GroupNormalization: parameter 'axis' must be an integer or None, got {axis!r}")
        self.axis = axis
        self.epsilon = check_number("GroupNormalization", "epsilon", epsilon, "positive")
        self.center, self.scale = bool(center), bool(scale)
        self.inits = {"beta": initializers.get(beta_initializer), "gamma": initializers.get(gamma_initializer)}

    def build(self, input_shape):
        axis = self.axis if self.axis is not None else (1 if fmt.image_data_format() == "channels_first" else -1)
        (self.channel_axis,) = _axes("GroupNormalization", axis, len(input_shape))
        c = input_shape[self.channel_axis]
        if c is None or any(d is None for d in input_shape[1:]) or c % self.groups:
            raise ShapeError(f"GroupNormalization {self.name!r}: the channel axis {axis} of {tuple(input_shape)} "
                             f"must be static and divisible by groups={self.groups}")
        if self.scale:
            self.gamma = self.add_weight("gamma", (c,), self.inits["gamma"])
        if self.center:
            self.beta = self.add_weight("beta", (c,), self.inits["beta"])

    def call(self, x):
        r, axis = len(self.input_shape), self.channel_axis
        gamma = self.gamma if self.scale else None
        beta = self.beta if self.center else None
        inner = fmt.peel(x, r) if r >= 3 and axis == r - 1 else None
        if inner is not None:  # normalise the channels-first tensor, hand it back channels-last
            y = ops.group_norm(inner, self.groups, gamma, beta, epsilon=self.epsilon, axis=1)
            return fmt.restore(y, "channels_last", r)
        return ops.group_norm(x, self.groups, gamma, beta, epsilon=self.epsilon, axis=axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                **{f"{k}_initializer": _init_config(v) for k, v in self.inits.items()}}
