"""A weight set in Keras' layout gives Keras' outputs: the sequence layers against Keras
3 itself (torch backend), when keras and torch are installed (optional; skipped
otherwise: neither is a dependency of symgrad or its CI)."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from symgrad.compiler import Input, Model, layers  # noqa: E402
from symgrad.compiler.gradcheck import Runner, emit_graph  # noqa: E402
from symgrad.compiler import ir  # noqa: E402

RNG = np.random.default_rng(0)


def _run(model, xs):
    """Our model's float64 forward on ``xs`` with its current weights."""
    values = [ir.input_value(f"x{i}", ("N",) + x.shape[1:], dtype="int64" if x.dtype.kind == "i" else "float")
              for i, x in enumerate(xs)]
    tr = model.trace(values if len(values) > 1 else values[0])
    graph = emit_graph([(v.name, v) for v in values] + [(w.name, w.value) for w in tr.weights],
                       [("y", tr.output)], dtype="float64")
    feeds = {v.name: x for v, x in zip(values, xs)}
    feeds.update({w.name: w.initial.astype(np.float64) for w in tr.weights})
    return Runner(graph)(feeds)["y"]


def _keras_weights(klayer):
    return [np.asarray(w) for w in klayer.get_weights()]


def _compare(ours, theirs, xs, shapes, call=None):
    """Build both on inputs of ``shapes``; give ours Keras' random weights; same outputs."""
    k_inputs = [keras.Input(s) for s in shapes]
    k_out = call(theirs, k_inputs) if call else theirs(*k_inputs)
    keras_model = keras.Model(k_inputs, k_out)
    for w in theirs.weights:                      # Keras starts biases at 0: move them off it
        w.assign(RNG.uniform(-0.5, 0.5, tuple(w.shape)).astype("float32"))
    want = np.asarray(keras_model([x.astype("float32") for x in xs]).detach().cpu().numpy())
    s_inputs = [Input(s) for s in shapes]
    s_out = call(ours, s_inputs) if call else ours(*s_inputs)
    model = Model(s_inputs if len(s_inputs) > 1 else s_inputs[0], s_out)
    ours.set_weights(_keras_weights(theirs))
    np.testing.assert_allclose(_run(model, xs), want, rtol=2e-5, atol=2e-6)


X = RNG.standard_normal((3, 5, 4))


@pytest.mark.parametrize("cls,kw", [
    ("LSTM", {}), ("LSTM", {"return_sequences": True, "go_backwards": True}),
    ("GRU", {}), ("GRU", {"reset_after": False, "return_sequences": True}),
    ("SimpleRNN", {"return_sequences": True}), ("SimpleRNN", {"go_backwards": True}),
])
def test_recurrent_layers_match_keras(cls, kw):
    _compare(getattr(layers, cls)(3, **kw), getattr(keras.layers, cls)(3, **kw), [X], [(5, 4)])


def test_bidirectional_matches_keras():
    _compare(layers.Bidirectional(layers.LSTM(3, return_sequences=True)),
             keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True)), [X], [(5, 4)])


def test_multi_head_attention_matches_keras():
    q, v = RNG.standard_normal((3, 4, 6)), RNG.standard_normal((3, 5, 6))
    _compare(layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4),
             keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4), [q, v], [(4, 6), (5, 6)])


def test_masked_causal_multi_head_attention_matches_keras():
    q = RNG.standard_normal((3, 4, 6))
    mask = (RNG.random((3, 4, 4)) > 0.3).astype(np.float64)
    mask[:, :, 0] = 1                                           # every query keeps one key

    def call(layer, ins):
        return layer(ins[0], ins[0], attention_mask=ins[1], use_causal_mask=True)
    _compare(layers.MultiHeadAttention(num_heads=2, key_dim=3, output_shape=5),
             keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, output_shape=5), [q, mask], [(4, 6), (4, 4)],
             call=call)


def test_dot_attention_matches_keras():
    q, v, k = RNG.standard_normal((3, 4, 6)), RNG.standard_normal((3, 5, 6)), RNG.standard_normal((3, 5, 6))

    def call(layer, ins):
        return layer(list(ins))
    _compare(layers.Attention(use_scale=True), keras.layers.Attention(use_scale=True), [q, v, k],
             [(4, 6), (5, 6), (5, 6)], call=call)
