"""Dense, Activation, Dropout, Flatten, Reshape, Embedding."""
import numpy as np
import sympy

from .. import ops
from ..errors import ParameterError, ShapeError
from ..params import check_int, check_number
from . import activations, initializers
from .base import Layer


def _init_config(init):
    return initializers.serialize(init)


class Dense(Layer):
    """y = activation(x @ kernel + bias); kernel (in, out) as Keras."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = check_int("Dense", "units", units, 1)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ShapeError(f"Dense {self.name!r} needs an input of shape (batch, ..., features) with a static "
                             f"last dim, got {input_shape}")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)

    def call(self, x):
        y = ops.matmul(x, self.kernel)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": _init_config(self.kernel_initializer),
                "bias_initializer": _init_config(self.bias_initializer)}


class Activation(Layer):
    """An activation by name ('relu', 'softmax', ...) or callable, with its options."""

    def __init__(self, activation, name=None, trainable=True, input_shape=None, **options):
        super().__init__(name=name, trainable=trainable, input_shape=input_shape)
        self.activation = activations.get(activation, **options)

    def call(self, x):
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "activation": self.activation.name}
        config.update(self.activation.options)
        return config


class ReLU(Activation):
    """Keras' ReLU layer: max_value where x >= max_value, x where threshold <= x, else
    negative_slope * (x - threshold). With the defaults it is relu (one ONNX Relu)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        self.max_value = None if max_value is None else check_number("ReLU", "max_value", max_value, "nonnegative")
        self.negative_slope = check_number("ReLU", "negative_slope", negative_slope, "nonnegative")
        self.threshold = check_number("ReLU", "threshold", threshold)
        if self.max_value is None and self.negative_slope == 0 and self.threshold == 0:
            super().__init__("relu", **kwargs)
            return
        super().__init__(self._relu, **kwargs)
        self.activation.name = "relu"

    def _relu(self, x):
        branches = [] if self.max_value is None else [(sympy.Float(self.max_value), x >= self.max_value)]
        branches += [(x, x >= self.threshold),
                     (sympy.Float(self.negative_slope) * (x - sympy.Float(self.threshold)), True)]
        return sympy.Piecewise(*branches)

    def get_config(self):
        return {**Layer.get_config(self), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


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
        from . import data_format as fmt
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


class Lambda(Layer):
    """Wrap a function of one tensor written over ``symgrad.compiler.ops`` and sympy, e.g.
    ``Lambda(lambda x: ops.mean(x, axis=1))``; ``arguments`` are passed as keywords. The
    output shape is traced (``output_shape`` is accepted for Keras compatibility and not
    needed); the gradient is derived as for any layer. A Lambda cannot be rebuilt from
    its config alone (the function is code)."""

    def __init__(self, function, output_shape=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise ParameterError(f"Lambda: parameter 'function' must be callable, got {function!r}")
        self.function, self.arguments = function, dict(arguments or {})

    def call(self, x):
        return self.function(x, **self.arguments)

    def get_config(self):
        return {**super().get_config(), "function": getattr(self.function, "__name__", "function"),
                "arguments": self.arguments}

    @classmethod
    def from_config(cls, config):
        raise ParameterError("Lambda layers cannot be rebuilt from a config (their function is code); "
                             "recreate the layer with Lambda(function) instead")


class LeakyReLU(Activation):
    """Keras' layer default slope is 0.3 (the activation function's is 0.2)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__("leaky_relu", negative_slope=negative_slope, **kwargs)

    def get_config(self):
        return {**Layer.get_config(self), "negative_slope": self.activation.options["negative_slope"]}


class Softmax(Activation):
    def __init__(self, axis=-1, **kwargs):
        super().__init__("softmax", axis=axis, **kwargs)

    def get_config(self):
        return {**Layer.get_config(self), "axis": self.activation.options["axis"]}


class Dropout(Layer):
    """Inverted dropout: in training, x / (1 - rate) where a fresh uniform noise >= rate,
    else 0; the noise is a random input of the train step. Identity at inference."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_number("Dropout", "rate", rate, "halfopen_unit")

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        from . import data_format as fmt
        keep = 1 / (1 - sympy.Float(self.rate))
        shape, r = self.input_shape, len(self.input_shape)
        inner = fmt.peel(x, r) if r >= 3 else None
        if inner is not None:  # on a channels_last conv's output: draw the noise channels-first, no transposes
            u = self.add_random_input("noise", shape=(shape[0], shape[-1]) + tuple(shape[1:-1]))
            return fmt.restore(sympy.Piecewise((keep * inner, u >= self.rate), (0, True)), "channels_last", r)
        u = self.add_random_input("noise")
        return sympy.Piecewise((keep * x, u >= self.rate), (0, True))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), C order (with NCHW data: channel-major, as PyTorch)."""

    def build(self, input_shape):
        if len(input_shape) < 2 or any(d is None for d in input_shape[1:]):
            raise ShapeError(f"Flatten {self.name!r} needs static dims after the batch, got {input_shape}")

    def call(self, x):
        return ops.flatten(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:], dtype=np.int64)))


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (batch excluded; one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        shape = tuple(target_shape) if isinstance(target_shape, (tuple, list)) else None
        if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or (d < 1 and d != -1)
                            for d in shape) or sum(1 for d in shape if d == -1) > 1:
            raise ParameterError(f"Reshape: parameter 'target_shape' must be a tuple of positive integers with "
                                 f"at most one -1, got {target_shape!r}")
        self.target_shape = tuple(int(d) for d in shape)

    def _resolved(self, input_shape):
        n = int(np.prod(input_shape[1:], dtype=np.int64))
        known = int(np.prod([d for d in self.target_shape if d != -1], dtype=np.int64))
        if -1 in self.target_shape:
            if n % known:
                raise ShapeError(f"Reshape {self.name!r}: cannot reshape {input_shape} into {self.target_shape}")
            return tuple(n // known if d == -1 else d for d in self.target_shape)
        if n != known:
            raise ShapeError(f"Reshape {self.name!r}: {input_shape} has {n} elements per sample, "
                             f"{self.target_shape} has {known}")
        return self.target_shape

    def build(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            raise ShapeError(f"Reshape {self.name!r} needs static dims after the batch, got {input_shape}")
        self._resolved(input_shape)

    def call(self, x):
        return ops.reshape(x, (-1,) + self._resolved(self.input_shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolved(input_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Embedding(Layer):
    """Rows of an (input_dim, output_dim) table at integer ids: (N, ...) -> (N, ..., output_dim).
    Its backward pass is a scatter-add of the gradient rows."""

    input_dtype = "int64"

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.input_dim = check_int("Embedding", "input_dim", input_dim, 1)
        self.output_dim = check_int("Embedding", "output_dim", output_dim, 1)
        self.embeddings_initializer = initializers.get(embeddings_initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer)

    def call(self, ids):
        return ops.gather(self.embeddings, ids)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": _init_config(self.embeddings_initializer)}
