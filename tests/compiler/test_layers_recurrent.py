"""SimpleRNN, LSTM, GRU: forward equal to NumPy references written from Keras' equations
in Keras' weight layout (seq_harness.py), float64 gradients equal to finite differences,
float32 graphs agree, and one SGD step equals the NumPy update."""
import numpy as np
import pytest

from symgrad.compiler import Input, Model, layers
from symgrad.compiler.errors import ParameterError, ShapeError

from layer_harness import Compiled, check_layer
from seq_harness import check_sgd_step, np_gru, np_lstm, np_simple_rnn

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 4, 3))

CASES = {
    "simple_rnn": (lambda **kw: layers.SimpleRNN(2, **kw), np_simple_rnn, {}),
    "lstm": (lambda **kw: layers.LSTM(2, **kw), np_lstm, {}),
    "gru": (lambda **kw: layers.GRU(2, **kw), np_gru, {}),
    "gru_reset_before": (lambda **kw: layers.GRU(2, reset_after=False, **kw), np_gru, {"reset_after": False}),
}


def _random_weights(layer, seed=1):
    """Weights away from the initializers' special values (zero biases, orthogonal)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.8, 0.8, w.shape) for w in layer.weights])


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("flags", [{}, {"return_sequences": True, "go_backwards": True}])
def test_forward_and_gradients_match_keras_equations(case, flags):
    make, reference, extra = CASES[case]
    layer = make(**flags)
    layer.ensure_built((None,) + X.shape[1:])
    _random_weights(layer)
    check_layer(layer, [X], lambda x, *w: reference(x, *w, **extra, **flags)[0], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_sgd_step_equals_numpy(case):
    make, reference, extra = CASES[case]
    check_sgd_step(make(return_sequences=True), [X], lambda x, *w: reference(x, *w, **extra,
                                                                             return_sequences=True)[0])


def test_weight_layout_is_keras():
    lstm, gru, gru0, rnn = layers.LSTM(5), layers.GRU(5), layers.GRU(5, reset_after=False), layers.SimpleRNN(5)
    for layer in (lstm, gru, gru0, rnn):
        layer.ensure_built((None, 7, 3))
    assert [w.shape for w in lstm.weights] == [(3, 20), (5, 20), (20,)]
    assert [w.shape for w in gru.weights] == [(3, 15), (5, 15), (2, 15)]
    assert [w.shape for w in gru0.weights] == [(3, 15), (5, 15), (15,)]
    assert [w.shape for w in rnn.weights] == [(3, 5), (5, 5), (5,)]
    # unit_forget_bias: the forget block starts at one; the recurrent kernel is orthogonal
    np.testing.assert_array_equal(lstm.weights[2].initial, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    q = lstm.weights[1].initial.astype(np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(5), atol=1e-5)


def test_return_state_gives_the_final_states():
    inp = Input((4, 3))
    seq, h, c = layers.LSTM(2, return_sequences=True, return_state=True, name="lstm")(inp)
    model = Model(inp, [seq, h, c], seed=0)
    _random_weights(model.get_layer("lstm"))
    trace_in = Compiled(model.get_layer("lstm"), [X])      # the layer alone: its first output
    got_seq = trace_in.run([X])["y"]
    w = [wt.initial.astype(np.float64) for wt in model.get_layer("lstm").weights]
    want_seq, (want_h, want_c) = np_lstm(X, *w, return_sequences=True)
    np.testing.assert_allclose(got_seq, want_seq, rtol=1e-9)
    from symgrad.compiler import ir
    from symgrad.compiler.gradcheck import Runner, emit_graph
    x = ir.input_value("x", ("N", 4, 3))
    tr = model.trace(x)
    graph = emit_graph([("x", x)] + [(wt.name, wt.value) for wt in tr.weights],
                       [("seq", tr.outputs[0]), ("h", tr.outputs[1]), ("c", tr.outputs[2])], dtype="float64")
    out = Runner(graph)({"x": X, **{wt.name: wt.initial.astype(np.float64) for wt in tr.weights}})
    np.testing.assert_allclose(out["h"], want_h, rtol=1e-9)
    np.testing.assert_allclose(out["c"], want_c, rtol=1e-9)
    np.testing.assert_allclose(out["seq"][:, -1], want_h, rtol=1e-9)


def test_bad_arguments_are_named():
    with pytest.raises(ParameterError, match="units"):
        layers.LSTM(0)
    with pytest.raises(ParameterError, match="return_sequences"):
        layers.GRU(2, return_sequences="yes")
    with pytest.raises(ShapeError, match=r"\(batch, timesteps, features\)"):
        layers.LSTM(2)(Input((5,)))
    with pytest.raises(ParameterError, match="unknown argument"):
        layers.LSTM(2, unitz=3)


def test_config_round_trip():
    for layer in (layers.LSTM(3, return_sequences=True, go_backwards=True), layers.GRU(2, reset_after=False),
                  layers.SimpleRNN(4, activation="relu")):
        again = layers.deserialize(layers.serialize(layer))
        assert layers.serialize(again) == layers.serialize(layer)
