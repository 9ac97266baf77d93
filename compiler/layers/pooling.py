"""Pooling layers: max, average (padding not counted, as Keras), global average and
global max, over channels_first or channels_last data (see data_format.py)."""
import numpy as np

from .. import ops
from ..errors import ParameterError
from . import data_format as fmt
from .convolutional import SpatialLayer
from ..primitives.conv import conv_out_spatial, resolve_pads


def _tuple(owner, name, value, rank):
    vals = (value,) * rank if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not isinstance(vals, (tuple, list)) or len(vals) != rank or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in vals):
        raise ParameterError(f"{owner}: parameter {name!r} must be a positive integer or a tuple of {rank}, "
                             f"got {value!r}")
    return tuple(int(v) for v in vals)


class _Pool(SpatialLayer):
    op = None

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        owner = type(self).__name__
        self.pool_size = _tuple(owner, "pool_size", pool_size, self.rank)
        self.strides = self.pool_size if strides is None else _tuple(owner, "strides", strides, self.rank)
        if padding not in ("valid", "same"):
            raise ParameterError(f"{owner}: parameter 'padding' must be 'valid' or 'same', got {padding!r}")
        self.padding = padding

    def build(self, input_shape):
        self.split(input_shape)

    def call(self, x):
        return self.restore(self.op(self.to_first(x), self.pool_size, self.strides, self.padding))

    def compute_output_shape(self, input_shape):
        channels, spatial = self.split(input_shape)
        r = self.rank
        pads = resolve_pads(self.padding, (), spatial, self.pool_size, self.strides, (1,) * r, type(self).__name__)
        geo = {"strides": self.strides, "pads": pads, "dilations": (1,) * r}
        out = conv_out_spatial(spatial, self.pool_size, geo, type(self).__name__, what="pool window")
        return fmt.join_shape(self.layout, input_shape[0], channels, out)

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


class _GlobalPooling(SpatialLayer):
    """(batch, channels, *spatial) or (batch, *spatial, channels) -> (batch, channels), or
    with keepdims the spatial axes kept at size 1."""

    op = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        self.split(input_shape)

    def call(self, x):
        y = self.op(self.to_first(x))
        if not self.keepdims:
            return y
        return ops.reshape(y, (-1,) + tuple(self.compute_output_shape(self.input_shape)[1:]))

    def compute_output_shape(self, input_shape):
        channels, _ = self.split(input_shape)
        if not self.keepdims:
            return (input_shape[0], channels)
        return fmt.join_shape(self.layout, input_shape[0], channels, (1,) * self.rank)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling):
    rank, op = 1, staticmethod(ops.global_avg_pool)


class GlobalAveragePooling2D(_GlobalPooling):
    rank, op = 2, staticmethod(ops.global_avg_pool)


class GlobalMaxPooling1D(_GlobalPooling):
    rank, op = 1, staticmethod(ops.global_max_pool)


class GlobalMaxPooling2D(_GlobalPooling):
    rank, op = 2, staticmethod(ops.global_max_pool)
