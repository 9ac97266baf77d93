"""Activation layers with parameters of their own: ELU and PReLU (ReLU, LeakyReLU and
Softmax live beside Activation in core.py)."""
import sympy

from .. import ops
from ..errors import ParameterError, ShapeError
from . import data_format as fmt, initializers
from .base import Layer
from .core import Activation, _init_config


class ELU(Activation):
    """alpha * (exp(x) - 1) for x < 0, x otherwise (Keras default alpha 1.0)."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__("elu", alpha=alpha, **kwargs)

    def get_config(self):
        return {**Layer.get_config(self), "alpha": self.activation.options["alpha"]}


class PReLU(Layer):
    """max(x, 0) + alpha * min(x, 0) with a learnt alpha per element of a sample
    (Keras: alpha_initializer 'zeros'); ``shared_axes`` (1-based, as Keras) share one
    alpha along those axes, e.g. shared_axes=[1, 2] for one alpha per channel of NHWC."""

    def __init__(self, alpha_initializer="zeros", shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        if shared_axes is not None and not isinstance(shared_axes, (list, tuple)):
            shared_axes = [shared_axes]
        if shared_axes is not None and any(isinstance(a, bool) or not isinstance(a, int) or a < 1
                                           for a in shared_axes):
            raise ParameterError(f"PReLU: parameter 'shared_axes' must be axes >= 1 (the batch is 0), got "
                                 f"{shared_axes!r}")
        self.shared_axes = tuple(shared_axes) if shared_axes is not None else None

    def build(self, input_shape):
        rank = len(input_shape)
        shared = set(self.shared_axes or ())
        if any(a >= rank for a in shared) or any(d is None for d in input_shape[1:]):
            raise ShapeError(f"PReLU {self.name!r}: shared_axes {self.shared_axes} must be axes of an input with "
                             f"static dims after the batch, got {tuple(input_shape)}")
        shape = tuple(1 if i in shared else input_shape[i] for i in range(1, rank))
        self.alpha = self.add_weight("alpha", shape, self.alpha_initializer)

    def call(self, x):
        r = len(self.input_shape)
        inner = fmt.peel(x, r) if r >= 3 else None
        if inner is not None:  # on a channels_last conv's output: stay channels-first, permute alpha instead
            alpha = ops.transpose(ops.reshape(self.alpha, (1,) + self.weight("alpha").shape), fmt.to_first_perm(r))
            return fmt.restore(sympy.Max(inner, 0) + alpha * sympy.Min(inner, 0), "channels_last", r)
        return sympy.Max(x, 0) + self.alpha * sympy.Min(x, 0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": _init_config(self.alpha_initializer),
                "shared_axes": self.shared_axes}
