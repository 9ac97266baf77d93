"""Pooling layers on NCHW data: max, average (padding not counted, as Keras), global average."""
import numpy as np

from .. import ops
from ..errors import ParameterError, ShapeError
from .base import Layer
from ..primitives.conv import conv_out_spatial, resolve_pads


def _tuple(owner, name, value, rank):
    vals = (value,) * rank if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not isinstance(vals, (tuple, list)) or len(vals) != rank or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in vals):
        raise ParameterError(f"{owner}: parameter {name!r} must be a positive integer or a tuple of {rank}, "
                             f"got {value!r}")
    return tuple(int(v) for v in vals)


class _Pool(Layer):
    rank = None
    op = None

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pool_size = _tuple(owner, "pool_size", pool_size, self.rank)
        self.strides = self.pool_size if strides is None else _tuple(owner, "strides", strides, self.rank)
        if padding not in ("valid", "same"):
            raise ParameterError(f"{owner}: parameter 'padding' must be 'valid' or 'same', got {padding!r}")
        self.padding = padding

    def _check(self, input_shape):
        layout = "(batch, channels, length)" if self.rank == 1 else "(batch, channels, height, width)"
        if len(input_shape) != self.rank + 2 or any(d is None for d in input_shape[1:]):
            raise ShapeError(f"{type(self).__name__} {self.name!r} expects inputs of shape {layout} with static "
                             f"dims after the batch, got {input_shape}")

    def build(self, input_shape):
        self._check(input_shape)

    def call(self, x):
        return self.op(x, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        spatial = tuple(input_shape[2:])
        r = self.rank
        pads = resolve_pads(self.padding, (), spatial, self.pool_size, self.strides, (1,) * r, type(self).__name__)
        geo = {"strides": self.strides, "pads": pads, "dilations": (1,) * r}
        return tuple(input_shape[:2]) + conv_out_spatial(spatial, self.pool_size, geo, type(self).__name__,
                                                         what="pool window")

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class MaxPooling1D(_Pool):
    rank, op = 1, staticmethod(ops.max_pool1d)


class MaxPooling2D(_Pool):
    rank, op = 2, staticmethod(ops.max_pool2d)


class AveragePooling1D(_Pool):
    rank, op = 1, staticmethod(ops.avg_pool1d)


class AveragePooling2D(_Pool):
    rank, op = 2, staticmethod(ops.avg_pool2d)


class _GlobalAveragePooling(Layer):
    rank = None

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2 or any(d is None for d in input_shape[1:]):
            raise ShapeError(f"{type(self).__name__} {self.name!r} expects inputs of rank {self.rank + 2} "
                             f"(batch, channels, ...) with static dims, got {input_shape}")

    def call(self, x):
        return ops.global_avg_pool(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])


class GlobalAveragePooling1D(_GlobalAveragePooling):
    """(N, C, L) -> (N, C)."""

    rank = 1


class GlobalAveragePooling2D(_GlobalAveragePooling):
    """(N, C, H, W) -> (N, C)."""

    rank = 2
