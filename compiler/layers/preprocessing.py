"""Normalization: feature-wise standardisation with statistics from ``adapt(data)``."""
import numpy as np
import sympy

from ..errors import DataError, ParameterError, ShapeError
from .base import Layer

EPSILON = 1e-7  # keras.config.epsilon(): the floor of the standard deviation


class Normalization(Layer):
    """(x - mean) / max(sqrt(variance), 1e-7) per feature along ``axis`` (Keras 3), or with
    ``invert=True`` mean + x * max(sqrt(variance), 1e-7). ``mean`` and ``variance`` are
    non-trainable weights: given here, or computed by ``adapt(data)`` (the population
    variance over every axis but ``axis``, as Keras). Call ``adapt`` before compile_model:
    the compiled program starts from the weights as they are then."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        axes = () if axis is None else ((axis,) if isinstance(axis, int) and not isinstance(axis, bool) else
                                        tuple(axis))
        if any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
            raise ParameterError(f"Normalization: parameter 'axis' must be an integer, a tuple of them or None, "
                                 f"got {axis!r}")
        if (mean is None) != (variance is None):
            raise ParameterError("Normalization: give both 'mean' and 'variance', or neither (then call adapt)")
        self.axis, self.invert = axes, bool(invert)
        self._given = None if mean is None else (np.asarray(mean, dtype=np.float64),
                                                 np.asarray(variance, dtype=np.float64))
        self.adapted = self._given is not None

    def _keep(self, input_shape):
        rank = len(input_shape)
        keep = []
        for a in self.axis:
            if not -rank < a < rank or a % rank == 0:
                raise ShapeError(f"Normalization {self.name!r}: axis {a} is not a feature axis of inputs "
                                 f"{tuple(input_shape)} (axis 0 is the batch)")
            keep.append(a % rank)
        return tuple(sorted(set(keep)))

    def _stat_shape(self, input_shape):
        keep = self._keep(input_shape)
        if any(input_shape[a] is None for a in keep):
            raise ShapeError(f"Normalization {self.name!r}: the feature axes of {tuple(input_shape)} must be static")
        return tuple(input_shape[a] if a in keep else 1 for a in range(1, len(input_shape)))

    def build(self, input_shape):
        shape = self._stat_shape(input_shape)
        self.mean = self.add_weight("mean", shape, "zeros", trainable=False)
        self.variance = self.add_weight("variance", shape, "ones", trainable=False)
        if self._given is not None:
            self._set(*self._given, shape)

    def _set(self, mean, variance, shape):
        for w, a in ((self.weight("mean"), mean), (self.weight("variance"), variance)):
            try:
                w.initial = np.broadcast_to(np.asarray(a, dtype=np.float32), shape).copy()
            except ValueError:
                raise ShapeError(f"Normalization {self.name!r}: statistics of shape {np.shape(a)} do not "
                                 f"broadcast to {shape}") from None

    def adapt(self, data):
        """Compute mean and variance of ``data`` (batch first) over every non-feature axis."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim < 1 or data.shape[0] == 0 or not np.isfinite(data).all():
            raise DataError(f"Normalization.adapt: data must be a non-empty finite array with the batch first, "
                            f"got shape {data.shape}")
        input_shape = (None,) + data.shape[1:]
        if not self.built:
            self.ensure_built(input_shape)
        shape = self._stat_shape(input_shape)
        reduce = tuple(a for a in range(data.ndim) if a not in self._keep(input_shape))
        self._set(data.mean(axis=reduce).reshape(shape), data.var(axis=reduce).reshape(shape), shape)
        self.adapted = True
        return self

    def call(self, x):
        std = sympy.Max(sympy.sqrt(self.variance), sympy.Float(EPSILON))
        return self.mean + x * std if self.invert else (x - self.mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "invert": self.invert}
