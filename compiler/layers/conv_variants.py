"""Transposed, depthwise and separable convolutions (Keras 3 arguments and defaults).

Kernel layouts, channels_last (Keras): Conv*Transpose (*kernel, filters, in),
DepthwiseConv2D (kh, kw, in, depth_multiplier), SeparableConv2D depthwise
(kh, kw, in, depth_multiplier) and pointwise (1, 1, in * depth_multiplier, filters).
channels_first (PyTorch / ONNX): ConvTranspose (in, filters, *kernel), depthwise
(in * depth_multiplier, 1, kh, kw), pointwise (filters, in * depth_multiplier, 1, 1).
"""
import numpy as np

from .. import ops
from ..errors import ParameterError, ShapeError
from ..params import check_int
from . import activations, data_format as fmt, initializers
from .convolutional import SpatialLayer, _tuple, keras_to_onnx_kernel
from .core import _init_config
from ..primitives.conv import conv_out_spatial, geometry, resolve_pads


def transpose_geometry(owner, size, kernel, stride, dilation, padding, output_padding):
    """Keras' output length of a transposed conv and the (pad_begin, pad_end, extra) that
    ONNX ConvTranspose needs to produce it."""
    k = dilation * (kernel - 1) + 1
    if output_padding is None:
        out = size * stride + max(k - stride, 0) if padding == "valid" else size * stride
    else:
        pad = 0 if padding == "valid" else k // 2
        out = (size - 1) * stride + k - 2 * pad + output_padding
    (pb, pe) = resolve_pads(padding, (), (out,), (kernel,), (stride,), (dilation,), owner)
    extra = out - ((size - 1) * stride + k - pb - pe)
    if not 0 <= extra < max(stride, dilation):
        raise ShapeError(f"{owner}: output_padding {output_padding} does not fit stride {stride} and kernel {kernel}")
    return out, pb, pe, extra


class _ConvTranspose(SpatialLayer):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, dilation_rate=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        owner = type(self).__name__
        self.filters = check_int(owner, "filters", filters, 1)
        self.kernel_size = _tuple(owner, "kernel_size", kernel_size, self.rank, 1)
        self.strides = _tuple(owner, "strides", strides, self.rank, 1)
        self.dilation_rate = _tuple(owner, "dilation_rate", dilation_rate, self.rank, 1)
        self.output_padding = None if output_padding is None else _tuple(owner, "output_padding", output_padding,
                                                                         self.rank, 0)
        if padding not in ("valid", "same"):
            raise ParameterError(f"{owner}: parameter 'padding' must be 'valid' or 'same', got {padding!r}")
        self.padding = padding
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def _geometry(self, spatial):
        owner = type(self).__name__
        per = [transpose_geometry(owner, spatial[i], self.kernel_size[i], self.strides[i], self.dilation_rate[i],
                                  self.padding, None if self.output_padding is None else self.output_padding[i])
               for i in range(self.rank)]
        return tuple(p[0] for p in per), tuple(p[1] for p in per) + tuple(p[2] for p in per), tuple(p[3] for p in per)

    def build(self, input_shape):
        channels, spatial = self.split(input_shape)
        self._geometry(spatial)
        receptive = int(np.prod(self.kernel_size))
        fans = (self.filters * receptive, channels * receptive)  # Keras: the kernel's own (in=filters, out=C)
        shape = ((channels, self.filters) + self.kernel_size if self.layout == "channels_first"
                 else self.kernel_size + (self.filters, channels))
        self.kernel = self.add_weight("kernel", shape, self.kernel_initializer, fans=fans)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def call(self, x):
        _, spatial = self.split(self.input_shape)
        _, pads, extra = self._geometry(spatial)
        w = self.kernel if self.layout == "channels_first" else keras_to_onnx_kernel(self.kernel, self.rank)
        y = ops.conv_transpose(self.to_first(x), w, self.bias if self.use_bias else None, strides=self.strides,
                               pads=pads, output_padding=extra, dilations=self.dilation_rate)
        return self.restore(self.activation(y))

    def compute_output_shape(self, input_shape):
        _, spatial = self.split(input_shape)
        return fmt.join_shape(self.layout, input_shape[0], self.filters, self._geometry(spatial)[0])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "output_padding": self.output_padding,
                "dilation_rate": self.dilation_rate, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": _init_config(self.kernel_initializer),
                "bias_initializer": _init_config(self.bias_initializer)}


class Conv1DTranspose(_ConvTranspose):
    rank = 1


class Conv2DTranspose(_ConvTranspose):
    rank = 2


class _Depthwise(SpatialLayer):
    """The depthwise part: each input channel convolved with its own depth_multiplier kernels."""

    rank = 2

    def _init_depthwise(self, kernel_size, strides, padding, depth_multiplier, dilation_rate):
        owner = type(self).__name__
        self.kernel_size = _tuple(owner, "kernel_size", kernel_size, self.rank, 1)
        self.strides = _tuple(owner, "strides", strides, self.rank, 1)
        self.dilation_rate = _tuple(owner, "dilation_rate", dilation_rate, self.rank, 1)
        self.depth_multiplier = check_int(owner, "depth_multiplier", depth_multiplier, 1)
        if padding not in ("valid", "same"):
            raise ParameterError(f"{owner}: parameter 'padding' must be 'valid' or 'same', got {padding!r}")
        self.padding = padding

    def _depthwise_weight(self, channels, initializer, name="depthwise_kernel"):
        dm, k = self.depth_multiplier, self.kernel_size
        receptive = int(np.prod(k))
        shape = (channels * dm, 1) + k if self.layout == "channels_first" else k + (channels, dm)
        return self.add_weight(name, shape, initializer, fans=(channels * receptive, dm * receptive))  # Keras' fans

    def _depthwise(self, x_first, kernel, channels, bias=None):
        if self.layout == "channels_last":  # (kh, kw, C, dm) -> (kh, kw, 1, C*dm) -> (C*dm, 1, kh, kw)
            kernel = keras_to_onnx_kernel(ops.reshape(kernel, self.kernel_size + (1, channels * self.depth_multiplier)),
                                          self.rank)
        return ops.conv(x_first, kernel, bias, strides=self.strides, padding=self.padding,
                        dilation=self.dilation_rate, groups=channels, spatial_rank=self.rank)

    def _out_spatial(self, spatial):
        geo = geometry({"strides": self.strides, "dilations": self.dilation_rate, "padding": self.padding},
                       spatial, self.kernel_size, type(self).__name__)
        return conv_out_spatial(spatial, self.kernel_size, geo, type(self).__name__)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                "dilation_rate": self.dilation_rate}


class DepthwiseConv2D(_Depthwise):
    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self._init_depthwise(kernel_size, strides, padding, depth_multiplier, dilation_rate)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        channels, _ = self.split(input_shape)
        self.depthwise_kernel = self._depthwise_weight(channels, self.depthwise_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (channels * self.depth_multiplier,), self.bias_initializer)

    def call(self, x):
        channels, _ = self.split(self.input_shape)
        y = self._depthwise(self.to_first(x), self.depthwise_kernel, channels, self.bias if self.use_bias else None)
        return self.restore(self.activation(y))

    def compute_output_shape(self, input_shape):
        channels, spatial = self.split(input_shape)
        return fmt.join_shape(self.layout, input_shape[0], channels * self.depth_multiplier,
                              self._out_spatial(spatial))

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "depthwise_initializer": _init_config(self.depthwise_initializer),
                "bias_initializer": _init_config(self.bias_initializer)}


class SeparableConv2D(_Depthwise):
    """Depthwise conv (strides, dilation, padding) then a 1x1 conv to ``filters``, bias, activation."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self._init_depthwise(kernel_size, strides, padding, depth_multiplier, dilation_rate)
        self.filters = check_int(type(self).__name__, "filters", filters, 1)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        channels, _ = self.split(input_shape)
        self.depthwise_kernel = self._depthwise_weight(channels, self.depthwise_initializer)
        mid = channels * self.depth_multiplier
        shape = (self.filters, mid, 1, 1) if self.layout == "channels_first" else (1, 1, mid, self.filters)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", shape, self.pointwise_initializer,
                                                fans=(mid, self.filters))
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def call(self, x):
        channels, _ = self.split(self.input_shape)
        h = self._depthwise(self.to_first(x), self.depthwise_kernel, channels)
        pw = self.pointwise_kernel if self.layout == "channels_first" else keras_to_onnx_kernel(
            self.pointwise_kernel, self.rank)
        y = ops.conv(h, pw, self.bias if self.use_bias else None, spatial_rank=self.rank)
        return self.restore(self.activation(y))

    def compute_output_shape(self, input_shape):
        _, spatial = self.split(input_shape)
        return fmt.join_shape(self.layout, input_shape[0], self.filters, self._out_spatial(spatial))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "depthwise_initializer": _init_config(self.depthwise_initializer),
                "pointwise_initializer": _init_config(self.pointwise_initializer),
                "bias_initializer": _init_config(self.bias_initializer)}
