"""MultiHeadAttention, Attention and PositionEmbedding, with Keras 3's arguments, defaults
and weight layout (keras/src/layers/attention/, keras_hub's PositionEmbedding).

Inputs are (batch, time, features) with static time and features. Masks hold 1 where a
query may attend to a key and 0 where not; as in Keras, a masked score gets -1e9 added
before the softmax, and ``use_causal_mask=True`` lets query i see keys j <= i.
"""
import numpy as np
import sympy

from .. import ir
from ..errors import ParameterError, ShapeError
from ..params import check_int, check_number
from . import initializers
from .base import Layer

LARGE_NEGATIVE = -1e9       # Keras' _large_negative_number for float32


def _static_seq(owner, name, shape):
    if len(shape) != 3 or shape[1] is None or shape[2] is None:
        raise ShapeError(f"{owner}: {name} must have shape (batch, time, features) with static time and features, "
                         f"got {shape}")


def _mask_scores(layer, scores, mask, causal, heads_axis):
    """scores (N, [h,] T, S) + (1 - mask) * -1e9, the mask combining attention_mask
    (N, T, S) and the causal (T, S) lower triangle (Keras: both must allow)."""
    t, s = scores.shape[-2], scores.shape[-1]
    allow = None
    if mask is not None:
        if tuple(mask.shape[1:]) != (t, s):
            raise ShapeError(f"layer {layer.name!r}: attention_mask must have shape (batch, {t}, {s}), got "
                             f"{mask.shape}")
        m = ir.apply("cast_float", [mask], name=f"{layer.name}/mask") if mask.dtype == "int64" else mask
        allow = ir.apply("unsqueeze", [m], name=f"{layer.name}/mask", axes=(1,)) if heads_axis else m
    if causal:
        tri = ir.const_value(np.tril(np.ones((t, s))), name=f"{layer.name}/causal_mask")
        allow = tri if allow is None else ir.elementwise(allow.sym * tri.sym, name=f"{layer.name}/mask")
    if allow is None:
        return scores
    # Keras adds (1 - mask) * -1e9; written as a choice, not a sum: sympy would distribute
    # it into s - 1e9 + 1e9 * mask, which cancels catastrophically (float32 spacing at 1e9 is 64)
    return ir.elementwise(sympy.Piecewise((scores.sym, allow.sym > 0.5), (scores.sym + LARGE_NEGATIVE, True)),
                          name=f"{layer.name}/masked_scores")


def _dropout(layer, probs, rate, training):
    if not training or rate == 0:
        return probs
    u = layer.add_random_input("attention_noise", (None,) + tuple(probs.shape[1:]))
    keep = 1 / (1 - sympy.Float(rate))
    return ir.elementwise(sympy.Piecewise((keep * probs.sym, u >= rate), (0, True)), name=f"{layer.name}/dropout")


def _swap_last(v, name):
    perm = tuple(range(v.rank - 2)) + (v.rank - 1, v.rank - 2)
    return ir.apply("transpose", [v], name=name, perm=perm)


class MultiHeadAttention(Layer):
    """Keras MultiHeadAttention. Weights (``query_kernel``, ``query_bias``, ``key_*``,
    ``value_*``, ``attention_output_*``, Keras' order): query/key/value kernels (dim, num_heads, key_dim
    or value_dim) and biases (num_heads, key_dim or value_dim), output kernel (num_heads,
    value_dim, output dim) and bias (output dim,); the output dim is the query's feature
    dim unless ``output_shape`` says otherwise.

        mha = MultiHeadAttention(num_heads=4, key_dim=16)
        y = mha(query, value, key=None, attention_mask=None, use_causal_mask=False)
    """

    n_inputs = None

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = check_int("MultiHeadAttention", "num_heads", num_heads, 1)
        self.key_dim = check_int("MultiHeadAttention", "key_dim", key_dim, 1)
        self.value_dim = self.key_dim if value_dim is None else check_int("MultiHeadAttention", "value_dim",
                                                                           value_dim, 1)
        self.dropout = check_number("MultiHeadAttention", "dropout", dropout, "halfopen_unit")
        if not isinstance(use_bias, bool):
            raise ParameterError(f"MultiHeadAttention: parameter 'use_bias' must be True or False, got {use_bias!r}")
        self.use_bias = use_bias
        if output_shape is not None:
            dims = (output_shape,) if isinstance(output_shape, int) else tuple(output_shape)
            if len(dims) != 1:
                raise ParameterError(f"MultiHeadAttention: 'output_shape' must be an integer (the output feature "
                                     f"dim), got {output_shape!r}")
            output_shape = check_int("MultiHeadAttention", "output_shape", dims[0], 1)
        self.output_dim = output_shape
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._pending = {"has_key": False, "has_mask": False}

    def __call__(self, query, value=None, key=None, attention_mask=None, use_causal_mask=False):
        if value is None:
            raise ParameterError(f"layer {self.name!r}: call it as mha(query, value, key=None, attention_mask=None, "
                                 "use_causal_mask=False)")
        if not isinstance(use_causal_mask, bool):
            raise ParameterError(f"layer {self.name!r}: use_causal_mask must be True or False, got "
                                 f"{use_causal_mask!r}")
        flags = {"has_key": key is not None, "has_mask": attention_mask is not None}
        self._pending = flags
        inputs = [query, value] + [t for t in (key, attention_mask) if t is not None]
        return super().__call__(inputs, use_causal_mask=use_causal_mask, **flags)

    def _split(self, shapes, has_key, has_mask):
        q, v = shapes[0], shapes[1]
        k = shapes[2] if has_key else v
        m = shapes[2 + has_key] if has_mask else None
        return q, k, v, m

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or not isinstance(input_shape[0], tuple):
            raise ShapeError(f"MultiHeadAttention {self.name!r} takes query and value, got {input_shape!r}")
        q, k, v, _ = self._split(input_shape, **self._pending)
        for name, s in (("query", q), ("key", k), ("value", v)):
            _static_seq(f"MultiHeadAttention {self.name!r}", name, s)
        if k[1] != v[1]:
            raise ShapeError(f"MultiHeadAttention {self.name!r}: key and value must have the same time length, "
                             f"got {k} and {v}")
        h = self.num_heads
        out = self.output_dim or q[-1]
        for name, dim, width in (("query", q[-1], self.key_dim), ("key", k[-1], self.key_dim),
                                 ("value", v[-1], self.value_dim)):
            setattr(self, f"{name}_kernel", self.add_weight(f"{name}_kernel", (dim, h, width), self.kernel_initializer))
            if self.use_bias:
                setattr(self, f"{name}_bias", self.add_weight(f"{name}_bias", (h, width), self.bias_initializer))
        self.output_kernel = self.add_weight("attention_output_kernel", (h, self.value_dim, out),
                                             self.kernel_initializer)
        if self.use_bias:
            self.output_bias = self.add_weight("attention_output_bias", (out,), self.bias_initializer)

    def compute_output_shape(self, input_shape):
        q = input_shape[0]
        return tuple(q[:-1]) + (self.output_dim or q[-1],)

    def _project(self, x, name, width):
        """x (N, T, dim) @ kernel (dim, h, width) + bias -> (N, h, T, width)."""
        w = self.weight(f"{name}_kernel")
        k2 = ir.apply("reshape", [w.value], name=f"{self.name}/{name}", shape=(w.shape[0], w.shape[1] * w.shape[2]))
        y = ir.apply("matmul", [x, k2], name=f"{self.name}/{name}")
        t = x.shape[1]
        y = ir.apply("reshape", [y], name=f"{self.name}/{name}", shape=(-1, t, self.num_heads, width))
        if self.use_bias:
            y = ir.elementwise(y.sym + self.weight(f"{name}_bias").sym, name=f"{self.name}/{name}")
        return ir.apply("transpose", [y], name=f"{self.name}/{name}_heads", perm=(0, 2, 1, 3))

    def call(self, xs, training=False, use_causal_mask=False, has_key=False, has_mask=False):
        values = [ir.value_of(s) for s in xs]
        q, k, v, mask = self._split(values, has_key, has_mask)
        h = self.num_heads
        query = self._project(q, "query", self.key_dim)
        query = ir.elementwise(query.sym * (1 / sympy.sqrt(self.key_dim)), name=f"{self.name}/scaled_query")
        key = self._project(k, "key", self.key_dim)
        value = self._project(v, "value", self.value_dim)
        scores = ir.apply("batch_matmul", [query, _swap_last(key, f"{self.name}/key_t")],
                          name=f"{self.name}/scores")                                     # (N, h, T, S)
        scores = _mask_scores(self, scores, mask, use_causal_mask, heads_axis=True)
        probs = ir.apply("softmax", [scores], name=f"{self.name}/attention", axes=(-1,))
        probs = _dropout(self, probs, self.dropout, training)
        heads = ir.apply("batch_matmul", [probs, value], name=f"{self.name}/context")    # (N, h, T, vd)
        t = q.shape[1]
        merged = ir.apply("reshape", [ir.apply("transpose", [heads], name=f"{self.name}/merge", perm=(0, 2, 1, 3))],
                          name=f"{self.name}/merge", shape=(-1, t, h * self.value_dim))
        w = self.weight("attention_output_kernel")
        ok = ir.apply("reshape", [w.value], name=f"{self.name}/output", shape=(h * self.value_dim, w.shape[2]))
        y = ir.apply("matmul", [merged, ok], name=f"{self.name}/output")
        if self.use_bias:
            return y.sym + self.weight("attention_output_bias").sym
        return y.sym

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self.output_dim,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


class Attention(Layer):
    """Keras Attention (Luong dot-product): softmax(scale * query @ key^T) @ value, called
    on [query, value] or [query, value, key]; ``use_scale=True`` learns the scalar
    ``scale`` (starts at 1). ``mask`` is not supported; use_causal_mask is."""

    n_inputs = None

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if score_mode != "dot":
            raise ParameterError(f"Attention: score_mode must be 'dot' here, got {score_mode!r}")
        if not isinstance(use_scale, bool):
            raise ParameterError(f"Attention: parameter 'use_scale' must be True or False, got {use_scale!r}")
        self.use_scale, self.score_mode = use_scale, score_mode
        self.dropout = check_number("Attention", "dropout", dropout, "halfopen_unit")

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3) \
                or not isinstance(input_shape[0], tuple):
            raise ShapeError(f"Attention {self.name!r} takes [query, value] or [query, value, key], got "
                             f"{input_shape!r}")
        for name, s in zip(("query", "value", "key"), input_shape):
            _static_seq(f"Attention {self.name!r}", name, s)
        q, v = input_shape[0], input_shape[1]
        k = input_shape[2] if len(input_shape) == 3 else v
        if q[-1] != k[-1] or k[1] != v[1]:
            raise ShapeError(f"Attention {self.name!r}: query and key need the same features and key and value the "
                             f"same time length, got query {q}, key {k}, value {v}")
        if self.use_scale:
            self.scale = self.add_weight("scale", (), "ones")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (input_shape[1][-1],)

    def call(self, xs, training=False, use_causal_mask=False):
        values = [ir.value_of(s) for s in xs]
        q, v = values[0], values[1]
        k = values[2] if len(values) == 3 else v
        scores = ir.apply("batch_matmul", [q, _swap_last(k, f"{self.name}/key_t")], name=f"{self.name}/scores")
        if self.use_scale:
            scores = ir.elementwise(scores.sym * self.scale, name=f"{self.name}/scaled")
        scores = _mask_scores(self, scores, None, use_causal_mask, heads_axis=False)
        probs = ir.apply("softmax", [scores], name=f"{self.name}/attention", axes=(-1,))
        probs = _dropout(self, probs, self.dropout, training)
        return ir.apply("batch_matmul", [probs, v], name=f"{self.name}/context").sym

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode,
                "dropout": self.dropout}


class PositionEmbedding(Layer):
    """keras_hub's PositionEmbedding: a learned (sequence_length, features) table whose
    first ``time`` rows come out broadcast to the input's shape (N, time, features); add
    it to the token embeddings: ``x + PositionEmbedding(T)(x)``."""

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = check_int("PositionEmbedding", "sequence_length", sequence_length, 1)
        self.initializer = initializers.get(initializer)

    def build(self, input_shape):
        _static_seq(f"PositionEmbedding {self.name!r}", "its input", input_shape)
        if input_shape[1] > self.sequence_length:
            raise ShapeError(f"PositionEmbedding {self.name!r}: the input has {input_shape[1]} time steps, more "
                             f"than sequence_length={self.sequence_length}")
        self.embeddings = self.add_weight("embeddings", (self.sequence_length, input_shape[2]), self.initializer)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, x):
        xv = ir.value_of(x)
        table = ir.value_of(self.embeddings)
        t = xv.shape[1]
        if t < self.sequence_length:
            table = ir.apply("slice", [table], name=f"{self.name}/rows", axis=0, start=0, end=t)
        return ir.apply("expand_like", [table, xv], name=f"{self.name}/broadcast").sym

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": initializers.serialize(self.initializer)}

