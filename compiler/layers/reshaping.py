"""Layers that move data: UpSampling2D, ZeroPadding2D, Cropping2D (channels_first or
channels_last), RepeatVector and Permute."""
from .. import ops
from ..errors import ParameterError, ShapeError
from ..params import check_choice, check_int
from . import data_format as fmt
from .base import Layer
from .convolutional import SpatialLayer, _tuple


def _pairs(owner, name, value, rank):
    """int | (a, b) symmetric per axis | ((top, bottom), (left, right)) -> ((b, e), ...)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * rank
    try:
        pairs = tuple((v, v) if isinstance(v, int) and not isinstance(v, bool) else tuple(v) for v in value)
    except TypeError:
        pairs = ()
    if len(pairs) != rank or any(len(p) != 2 or any(isinstance(a, bool) or not isinstance(a, int) or a < 0
                                                     for a in p) for p in pairs):
        raise ParameterError(f"{owner}: parameter {name!r} must be a non-negative integer, a tuple of {rank}, or "
                             f"{rank} (begin, end) pairs, got {value!r}")
    return pairs


class UpSampling2D(SpatialLayer):
    """Repeat rows and columns ``size`` times ('nearest', Keras' repeat) or interpolate
    ('bilinear', half-pixel centres as tf.image.resize and ONNX Resize)."""

    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.size = _tuple("UpSampling2D", "size", size, 2, 1)
        self.interpolation = check_choice("UpSampling2D", "interpolation", interpolation, ("nearest", "bilinear"))

    def build(self, input_shape):
        self.split(input_shape)

    def call(self, x):
        mode = "nearest" if self.interpolation == "nearest" else "linear"
        y = ops.resize(self.to_first(x), scales=(1, 1) + self.size, mode=mode,
                       coordinate_transformation_mode="asymmetric" if mode == "nearest" else "half_pixel",
                       nearest_mode="floor")
        return self.restore(y)

    def compute_output_shape(self, input_shape):
        channels, spatial = self.split(input_shape)
        return fmt.join_shape(self.layout, input_shape[0], channels, tuple(d * s for d, s in zip(spatial, self.size)))

    def get_config(self):
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}


class ZeroPadding2D(SpatialLayer):
    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.padding = _pairs("ZeroPadding2D", "padding", padding, 2)

    def build(self, input_shape):
        self.split(input_shape)

    def call(self, x):
        (t, b), (l, r) = self.padding
        return self.restore(ops.pad(self.to_first(x), (0, 0, t, l, 0, 0, b, r)))

    def compute_output_shape(self, input_shape):
        channels, (h, w) = self.split(input_shape)
        (t, b), (l, r) = self.padding
        return fmt.join_shape(self.layout, input_shape[0], channels, (h + t + b, w + l + r))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


class Cropping2D(SpatialLayer):
    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.cropping = _pairs("Cropping2D", "cropping", cropping, 2)

    def _out(self, input_shape):
        channels, (h, w) = self.split(input_shape)
        (t, b), (l, r) = self.cropping
        if h - t - b < 1 or w - l - r < 1:
            raise ShapeError(f"Cropping2D {self.name!r}: cropping {self.cropping} leaves nothing of the "
                             f"{h}x{w} input {tuple(input_shape)} (data_format={self.layout!r})")
        return channels, (h - t - b, w - l - r)

    def build(self, input_shape):
        self._out(input_shape)

    def call(self, x):
        (t, b), (l, r) = self.cropping
        _, (h, w) = self.split(self.input_shape)
        if not any((t, b, l, r)):
            return x
        return self.restore(ops.slice(self.to_first(x), (t, l), (h - b, w - r), (2, 3)))

    def compute_output_shape(self, input_shape):
        channels, out = self._out(input_shape)
        return fmt.join_shape(self.layout, input_shape[0], channels, out)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = check_int("RepeatVector", "n", n, 1)

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[1] is None:
            raise ShapeError(f"RepeatVector {self.name!r} expects inputs of shape (batch, features), got "
                             f"{tuple(input_shape)}")

    def call(self, x):
        f = self.input_shape[1]
        return ops.broadcast_to(ops.reshape(x, (-1, 1, f)), (-1, self.n, f))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Permute(Layer):
    """Permute the non-batch axes: ``dims`` is 1-based, as Keras (``Permute((2, 1))``)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else None
        if not dims or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ParameterError(f"Permute: parameter 'dims' must be a permutation of 1..n (the axes after the "
                                 f"batch), got {dims!r}")
        self.dims = dims

    def build(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ShapeError(f"Permute {self.name!r}: dims {self.dims} need inputs of rank {len(self.dims) + 1}, "
                             f"got {tuple(input_shape)}")

    def call(self, x):
        return ops.transpose(x, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}
