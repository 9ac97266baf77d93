"""Layers: the Keras-style ``Layer`` contract over sympy, and the built-in layers.

    from symgrad.compiler import layers, Layer, ops
    layers.Dense(64, activation="relu"); layers.Conv2D(8, 3, padding="same")

Image data is channels-first (N, C, H, W) as ONNX and PyTorch, with conv kernels
(out, in/groups, kh, kw), unless ``set_image_data_format("channels_last")`` or a layer's
``data_format="channels_last"`` selects Keras' (N, H, W, C) with kernels (kh, kw, in, out).
Dense kernels are (in, out) as Keras.
"""
from ..errors import ParameterError, unknown_name
from . import activations, initializers  # noqa: F401
from .base import Layer, Weight, RandomInput, TraceContext  # noqa: F401
from .data_format import set_image_data_format, image_data_format  # noqa: F401
from .core import (Dense, Activation, ReLU, LeakyReLU, Softmax, Dropout, Flatten, Reshape, Embedding, ELU, PReLU,
                   Lambda)
from .normalization import BatchNormalization, LayerNormalization, GroupNormalization
from .preprocessing import Normalization
from .convolutional import Conv1D, Conv2D
from .conv_variants import Conv1DTranspose, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from .pooling import (MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D)
from .reshaping import UpSampling2D, ZeroPadding2D, Cropping2D, RepeatVector, Permute
from .merge import Add, Subtract, Multiply, Average, Concatenate
from .recurrent import SimpleRNN, LSTM, GRU
from .attention import MultiHeadAttention, Attention, PositionEmbedding

_BUILTIN = {cls.__name__: cls for cls in (
    Dense, Activation, ReLU, LeakyReLU, Softmax, Dropout, Flatten, Reshape, Embedding, BatchNormalization,
    LayerNormalization, Conv1D, Conv2D, MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D,
    GlobalAveragePooling1D, GlobalAveragePooling2D, Add, Subtract, Multiply, Average, Concatenate,
    ELU, PReLU, Lambda, GroupNormalization, Normalization, Conv1DTranspose, Conv2DTranspose, DepthwiseConv2D,
    SeparableConv2D, GlobalMaxPooling1D, GlobalMaxPooling2D, UpSampling2D, ZeroPadding2D, Cropping2D, RepeatVector,
    Permute)}
_BUILTIN.update({cls.__name__: cls for cls in (SimpleRNN, LSTM, GRU, MultiHeadAttention, Attention,
                                               PositionEmbedding)})
_REGISTERED = {}


def register(cls):
    """Class decorator: make a custom layer known to ``deserialize`` by its class name."""
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ParameterError(f"layers.register expects a Layer subclass, got {cls!r}")
    _REGISTERED[cls.__name__] = cls
    return cls


def names():
    return sorted(_BUILTIN)


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config, custom_objects=None):
    """A layer from ``serialize``'s dict; custom classes come from ``custom_objects``
    ({name: class}) or ``@layers.register``."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ParameterError(f"a layer config is a dict with 'class_name' and 'config', got {config!r}")
    known = {**_BUILTIN, **_REGISTERED, **(custom_objects or {})}
    name = config["class_name"]
    if name not in known:
        raise unknown_name("layer", name, known)
    return known[name].from_config(dict(config.get("config", {})))


__all__ = sorted(["Layer", "Weight", "RandomInput", "TraceContext", "activations", "initializers", "register",
                  "names", "serialize", "deserialize", "set_image_data_format", "image_data_format"]
                 + list(_BUILTIN))
