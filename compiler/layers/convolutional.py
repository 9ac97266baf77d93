"""Conv1D and Conv2D with Keras' arguments: strides, 'valid' / 'same' (/ 'causal' for
1-d) padding, dilation_rate, groups, activation, use_bias, data_format.

channels_first: x (N, C, *spatial), kernel (out, in/groups, *kernel) as PyTorch and ONNX.
channels_last:  x (N, *spatial, C), kernel (*kernel, in/groups, out) as Keras, so Keras
weights load unchanged. Compute is channels-first either way (see data_format.py).
"""
import numpy as np

from .. import ops
from ..errors import ParameterError, ShapeError
from ..params import check_int
from . import activations, data_format as fmt, initializers
from .base import Layer
from .core import _init_config
from ..primitives.conv import conv_out_spatial, geometry


def _tuple(owner, name, value, rank, minimum):
    vals = (value,) * rank if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not isinstance(vals, (tuple, list)) or len(vals) != rank or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in vals):
        raise ParameterError(f"{owner}: parameter {name!r} must be an integer >= {minimum} or a tuple of {rank}, "
                             f"got {value!r}")
    return tuple(int(v) for v in vals)


def keras_to_onnx_kernel(kernel, rank):
    """(*kernel, a, b) -> (b, a, *kernel): Keras' conv kernel as ONNX Conv's weight."""
    return ops.transpose(kernel, (rank + 1, rank) + tuple(range(rank)))


class SpatialLayer(Layer):
    """A layer over (batch, channels, *spatial) or (batch, *spatial, channels) data."""

    rank = None

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = fmt.check(type(self).__name__, data_format)

    @property
    def layout(self):
        """The data format in force: the layer's own, else the model-wide default."""
        return getattr(self, "_built_format", None) or fmt.resolve(self.data_format)

    def split(self, input_shape):
        return fmt.split_shape(type(self).__name__, self.name, self.layout, input_shape, self.rank)

    def ensure_built(self, input_shape, rng=None):
        if not self.built:
            self._built_format = fmt.resolve(self.data_format)  # fixed once the weights exist
            fmt.warn_if_keras_shaped(type(self).__name__, self.name, self.data_format, input_shape)
        return super().ensure_built(input_shape, rng)

    def to_first(self, x):
        return fmt.channels_first(x, self.layout, self.rank + 2)

    def restore(self, y):
        return fmt.restore(y, self.layout, self.rank + 2)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class _Conv(SpatialLayer):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1, groups=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        owner = type(self).__name__
        self.filters = check_int(owner, "filters", filters, 1)
        self.kernel_size = _tuple(owner, "kernel_size", kernel_size, self.rank, 1)
        self.strides = _tuple(owner, "strides", strides, self.rank, 1)
        self.dilation_rate = _tuple(owner, "dilation_rate", dilation_rate, self.rank, 1)
        allowed = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        if padding not in allowed:
            raise ParameterError(f"{owner}: parameter 'padding' must be one of {', '.join(map(repr, allowed))}, "
                                 f"got {padding!r}")
        self.padding = padding
        self.groups = check_int(owner, "groups", groups, 1)
        if self.filters % self.groups:
            raise ParameterError(f"{owner}: 'filters' ({self.filters}) must be divisible by 'groups' ({self.groups})")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def _check(self, input_shape):
        channels, spatial = self.split(input_shape)
        if channels % self.groups:
            raise ShapeError(f"{type(self).__name__} {self.name!r}: the input's {channels} channels are not "
                             f"divisible by groups={self.groups} (data_format={self.layout!r}, input shape "
                             f"{tuple(input_shape)})")
        return channels, spatial

    def build(self, input_shape):
        channels, _ = self._check(input_shape)
        cin = channels // self.groups
        receptive = int(np.prod(self.kernel_size))
        fans = (cin * receptive, self.filters // self.groups * receptive)
        shape = ((self.filters, cin) + self.kernel_size if self.layout == "channels_first"
                 else self.kernel_size + (cin, self.filters))
        self.kernel = self.add_weight("kernel", shape, self.kernel_initializer, fans=fans)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def onnx_kernel(self):
        if self.layout == "channels_first":
            return self.kernel
        return keras_to_onnx_kernel(self.kernel, self.rank)

    def call(self, x):
        y = ops.conv(self.to_first(x), self.onnx_kernel(), self.bias if self.use_bias else None,
                     strides=self.strides, padding=self.padding, dilation=self.dilation_rate, groups=self.groups,
                     spatial_rank=self.rank)
        return self.restore(self.activation(y))

    def compute_output_shape(self, input_shape):
        _, spatial = self._check(input_shape)
        geo = geometry({"strides": self.strides, "dilations": self.dilation_rate, "padding": self.padding,
                        "group": self.groups}, spatial, self.kernel_size, type(self).__name__)
        out = conv_out_spatial(spatial, self.kernel_size, geo, type(self).__name__)
        return fmt.join_shape(self.layout, input_shape[0], self.filters, out)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "dilation_rate": self.dilation_rate,
                "groups": self.groups, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": _init_config(self.kernel_initializer),
                "bias_initializer": _init_config(self.bias_initializer)}


class Conv1D(_Conv):
    """channels_first: x (N, C, L), kernel (filters, C/groups, k); channels_last: x (N, L, C),
    kernel (k, C/groups, filters)."""

    rank = 1


class Conv2D(_Conv):
    """channels_first: x (N, C, H, W), kernel (filters, C/groups, kh, kw); channels_last:
    x (N, H, W, C), kernel (kh, kw, C/groups, filters)."""

    rank = 2
