"""Layers: the Keras-style ``Layer`` contract over sympy, and the built-in layers.

    from symgrad.compiler import layers, Layer, ops
    layers.Dense(64, activation="relu"); layers.Conv2D(8, 3, padding="same")

Data is channels-first (NCHW) as ONNX; Dense kernels are (in, out) as Keras; conv
kernels are (out, in/groups, kh, kw) as PyTorch.
"""
from ..errors import ParameterError, unknown_name
from . import activations, initializers  # noqa: F401
from .base import Layer, Weight, RandomInput, TraceContext  # noqa: F401
from .core import Dense, Activation, ReLU, LeakyReLU, Softmax, Dropout, Flatten, Reshape, Embedding
from .normalization import BatchNormalization, LayerNormalization
from .convolutional import Conv1D, Conv2D
from .pooling import (MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D)
from .merge import Add, Subtract, Multiply, Average, Concatenate
from .recurrent import SimpleRNN, LSTM, GRU
from .attention import MultiHeadAttention, Attention, PositionEmbedding

_BUILTIN = {cls.__name__: cls for cls in (
    Dense, Activation, ReLU, LeakyReLU, Softmax, Dropout, Flatten, Reshape, Embedding, BatchNormalization,
    LayerNormalization, Conv1D, Conv2D, MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D,
    GlobalAveragePooling1D, GlobalAveragePooling2D, Add, Subtract, Multiply, Average, Concatenate)}
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
                  "names", "serialize", "deserialize"] + list(_BUILTIN))
