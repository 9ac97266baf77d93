"""MultiHeadAttention, Attention and PositionEmbedding against NumPy references written
from Keras' equations in Keras' weight layout (seq_harness.np_mha), float64 gradients
against finite differences, one SGD step against the NumPy update."""
import numpy as np
import pytest

from symgrad.compiler import Input, Model, compile_model, layers, optimizers
from symgrad.compiler.errors import ParameterError, ShapeError
from symgrad.runtime.trainer import Trainer

from layer_harness import check_layer
from seq_harness import check_sgd_step, np_mha, softmax

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((2, 3, 4))
V = RNG.standard_normal((2, 5, 4))


def _randomize(layer, seed=1):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.7, 0.7, w.shape) for w in layer.weights])


def test_mha_weight_layout_is_keras():
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=5, output_shape=6)
    mha.ensure_built([(None, 3, 4), (None, 5, 7)])
    assert [(w.local_name, w.shape) for w in mha.weights] == [
        ("query_kernel", (4, 2, 3)), ("query_bias", (2, 3)), ("key_kernel", (7, 2, 3)), ("key_bias", (2, 3)),
        ("value_kernel", (7, 2, 5)), ("value_bias", (2, 5)), ("attention_output_kernel", (2, 5, 6)),
        ("attention_output_bias", (6,))]


def test_mha_forward_and_gradients():
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3)
    mha.ensure_built([Q.shape, V.shape])
    _randomize(mha)
    # the key bias shifts every score of a query by the same amount, which softmax ignores:
    # its gradient is exactly 0 (float64 agrees to 1e-16), and float32 rounding leaves ~1e-7
    check_layer(mha, [Q, V], lambda q, v, *w: np_mha(q, v, *w), rtol=1e-9, atol=1e-10, float32_atol=1e-6)


def test_attention_forward_and_gradients():
    att = layers.Attention(use_scale=True)
    att.ensure_built([Q.shape, V.shape, V.shape])
    att.set_weights([np.array(0.7)])
    K = RNG.standard_normal(V.shape)

    def ref(q, v, k, scale):
        return softmax(scale * q @ np.swapaxes(k, 1, 2)) @ v
    check_layer(att, [Q, V, K], ref, rtol=1e-9, atol=1e-10)


def test_position_embedding_forward_and_gradients():
    pe = layers.PositionEmbedding(sequence_length=5)
    pe.ensure_built(Q.shape)
    check_layer(pe, [Q], lambda x, table: np.broadcast_to(table[:3], x.shape), rtol=1e-12)


def test_mha_with_key_mask_and_causal_mask_in_a_model():
    """mha(query, value, key=..., attention_mask=..., use_causal_mask=True) inside a model."""
    q_in, v_in, k_in, m_in = Input((3, 4), name="q"), Input((3, 4), name="v"), Input((3, 4), name="k"), \
        Input((3, 3), name="m")
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=2, value_dim=3, name="mha")
    out = mha(q_in, v_in, key=k_in, attention_mask=m_in, use_causal_mask=True)
    model = Model([q_in, v_in, k_in, m_in], out, seed=0)
    _randomize(mha)
    program = compile_model(model, loss="mse", optimizer="sgd", dtype="float64")
    trainer = Trainer(program)
    q, v, k = (RNG.standard_normal((2, 3, 4)) for _ in range(3))
    m = np.array([[[1, 0, 1], [1, 1, 0], [0, 1, 1]]] * 2, dtype=np.float64)
    got = trainer.predict([q, v, k, m], verbose=0)
    np.testing.assert_allclose(got, np_mha(q, v, *trainer.get_weights(), key=k, mask=m, causal=True), rtol=1e-9)
    # float32 keeps the unmasked scores intact (no s - 1e9 + 1e9 cancellation)
    t32 = Trainer(compile_model(model, loss="mse", optimizer="sgd"))
    np.testing.assert_allclose(t32.predict([q, v, k, m], verbose=0), got, rtol=1e-4, atol=1e-5)
    # the causal mask alone: query 0 sees key 0 only, so its output does not depend on later keys
    k2 = k.copy()
    k2[:, 1:] += 5.0
    got2 = trainer.predict([q, v, k2, np.ones_like(m)], verbose=0)
    base = trainer.predict([q, v, k, np.ones_like(m)], verbose=0)
    np.testing.assert_allclose(got2[:, 0], base[:, 0], rtol=1e-12)


def test_one_sgd_step_equals_numpy():
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=2, name="mha")
    inp = Input((3, 4))
    check_sgd_step(_SelfAttention(mha), [Q], lambda x, *w: np_mha(x, x, *w))
    att = layers.Attention(use_scale=True)
    check_sgd_step(_SelfAttention(att), [Q], lambda x, s: softmax(s * x @ np.swapaxes(x, 1, 2)) @ x)
    del inp


class _SelfAttention(layers.Layer):
    """Wraps a two-input attention layer as a one-input layer, self-attention (for Sequential)."""

    def __init__(self, inner):
        super().__init__(name="self_attention")
        self.inner = inner

    def build(self, input_shape):
        self.inner.ensure_built([input_shape, input_shape])
        self._weights = self.inner._weights

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape([input_shape, input_shape])

    def call(self, x):
        return self.inner.call([x, x])


def test_bad_arguments_are_named():
    with pytest.raises(ParameterError, match="num_heads"):
        layers.MultiHeadAttention(num_heads=0, key_dim=2)
    with pytest.raises(ParameterError, match="score_mode"):
        layers.Attention(score_mode="concat")
    with pytest.raises(ShapeError, match=r"\(batch, time, features\)"):
        layers.MultiHeadAttention(2, 2)(Input((4,)), Input((4,)))
    with pytest.raises(ShapeError, match="more than sequence_length"):
        layers.PositionEmbedding(2)(Input((3, 4)))
    with pytest.raises(ParameterError, match="use_causal_mask"):
        layers.MultiHeadAttention(2, 2)(Input((3, 4)), Input((3, 4)), use_causal_mask="yes")


def test_config_round_trip():
    for layer in (layers.MultiHeadAttention(3, 4, value_dim=2, dropout=0.1, output_shape=5),
                  layers.Attention(use_scale=True), layers.PositionEmbedding(7)):
        assert layers.serialize(layers.deserialize(layers.serialize(layer))) == layers.serialize(layer)
