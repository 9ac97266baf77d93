"""Conv1D and Conv2D on NCHW data with PyTorch's kernel layout (out, in/groups, *kernel),
as ONNX Conv takes it. Keras' arguments: strides, 'valid' / 'same' (/ 'causal' for 1-d)
padding, dilation_rate, groups, activation, use_bias."""
import numpy as np

from .. import ops
from ..errors import ParameterError, ShapeError
from ..params import check_int
from . import activations, initializers
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


class _Conv(Layer):
    rank = None

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1, groups=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
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
        owner = type(self).__name__
        layout = "(batch, channels, length)" if self.rank == 1 else "(batch, channels, height, width)"
        if len(input_shape) != self.rank + 2 or any(d is None for d in input_shape[1:]):
            raise ShapeError(f"{owner} {self.name!r} expects inputs of shape {layout} with static dims after the "
                             f"batch (channels first, as ONNX), got {input_shape}")
        if input_shape[1] % self.groups:
            raise ShapeError(f"{owner} {self.name!r}: the input's {input_shape[1]} channels are not divisible by "
                             f"groups={self.groups}")

    def build(self, input_shape):
        self._check(input_shape)
        cin = input_shape[1] // self.groups
        receptive = int(np.prod(self.kernel_size))
        fans = (cin * receptive, self.filters // self.groups * receptive)
        self.kernel = self.add_weight("kernel", (self.filters, cin) + self.kernel_size, self.kernel_initializer,
                                      fans=fans)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def call(self, x):
        y = ops.conv(x, self.kernel, self.bias if self.use_bias else None, strides=self.strides,
                     padding=self.padding, dilation=self.dilation_rate, groups=self.groups, spatial_rank=self.rank)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        spatial = tuple(input_shape[2:])
        geo = geometry({"strides": self.strides, "dilations": self.dilation_rate, "padding": self.padding,
                        "group": self.groups}, spatial, self.kernel_size, type(self).__name__)
        return (input_shape[0], self.filters) + conv_out_spatial(spatial, self.kernel_size, geo, type(self).__name__)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "dilation_rate": self.dilation_rate,
                "groups": self.groups, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": _init_config(self.kernel_initializer),
                "bias_initializer": _init_config(self.bias_initializer)}


class Conv1D(_Conv):
    """x (N, C, L) -> (N, filters, L'); kernel (filters, C/groups, k)."""

    rank = 1


class Conv2D(_Conv):
    """x (N, C, H, W) -> (N, filters, H', W'); kernel (filters, C/groups, kh, kw)."""

    rank = 2
