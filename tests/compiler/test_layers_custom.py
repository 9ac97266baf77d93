"""The custom-layer story: a layer declared only by its forward pass gets derived
gradients and trains; an explicit backward is used instead of the derived one; the
Keras contract (build / add_weight / compute_output_shape / get_config)."""
import numpy as np
import pytest
import sympy

from symgrad.compiler import (Layer, Loss, Sequential, layers, ops, ir, ExpressionError, ParameterError,
                              ShapeError, SymgradError, UnknownSymbolError)
from symgrad.compiler.autodiff import gradients
from symgrad.compiler.gradcheck import Runner, emit_graph
from layer_harness import Compiled, check_layer

rng = np.random.default_rng(0)


class Swish(Layer):
    """x * sigmoid(beta * x) with a trainable beta: forward only."""

    def build(self, input_shape):
        self.beta = self.add_weight("beta", shape=(), initializer="ones")

    def call(self, x):
        return x * ops.sigmoid(self.beta * x)


class ScaledTanh(Layer):
    """a * tanh(x) with an explicit backward; ``factor`` makes it deliberately wrong."""

    factor = 1

    def build(self, input_shape):
        self.a = self.add_weight("a", shape=(), initializer=1.5)

    def call(self, x):
        return self.a * sympy.tanh(x)

    def backward(self, x, y, g):
        # per-element dL/da: summed over the batch by the compiler, as autodiff would
        return self.factor * g * self.a * (1 - sympy.tanh(x) ** 2), {"a": g * sympy.tanh(x)}


class RowNormalize(Layer):
    """Uses tensor functions: x / mean(|x|) over the last axis, times a learnt vector."""

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1], 2), initializer="glorot_uniform")

    def call(self, x):
        return ops.matmul(x / ops.mean(sympy.Abs(x), axis=-1), self.w)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_forward_only_layer_gets_correct_gradients_for_input_and_parameter():
    layer = Swish()
    x = rng.standard_normal((3, 4))
    layer.ensure_built((None, 4))
    layer.set_weights([np.array(0.7)])
    check_layer(layer, [x], lambda x, beta: x * _sigmoid(beta * x))


def test_forward_only_layer_with_tensor_functions():
    x = rng.standard_normal((3, 5))
    check_layer(RowNormalize(), [x], lambda x, w: (x / np.abs(x).mean(-1, keepdims=True)) @ w)


def _train_sgd(model, x, y, steps, lr):
    """Plain SGD on the compiled gradient graph (the optimizer here is NumPy)."""
    xv = model.input_value()
    tr = model.trace(xv, training=True)
    loss = Loss("(y_pred - y_true)**2", reduction="mean")
    yt = ir.input_value("y_true", tr.output.shape)
    value, _ = loss.build(tr.output, yt)
    train = [w for w in tr.weights if w.trainable]
    grads = gradients(value, [w.value for w in train])
    run = Runner(emit_graph([("x", xv), ("y_true", yt)] + [(w.name, w.value) for w in tr.weights],
                            [("loss", value)] + [(f"grad/{w.name}", g) for w, g in zip(train, grads)],
                            dtype="float32"))
    params = {w.name: w.initial.copy() for w in tr.weights}
    history = []
    for _ in range(steps):
        out = run({"x": x, "y_true": y, **params})
        history.append(float(out["loss"]))
        for w in train:
            params[w.name] = np.asarray(params[w.name] - lr * out[f"grad/{w.name}"], dtype=np.float32)
    return history, params


def test_forward_only_layer_trains():
    x = rng.uniform(-2, 2, (64, 1)).astype(np.float32)
    y = (x * _sigmoid(3.0 * x)).astype(np.float32)       # a swish with beta = 3
    swish = Swish()
    model = Sequential([swish], input_shape=(1,))
    history, params = _train_sgd(model, x, y, steps=200, lr=5.0)
    assert history[-1] < 1e-3 * history[0]
    assert params["swish/beta"] == pytest.approx(3.0, rel=0.05)


def test_explicit_backward_is_used_and_correct():
    layer = ScaledTanh()
    x = rng.standard_normal((3, 4))
    got = check_layer(layer, [x], lambda x, a: a * np.tanh(x))
    c = Compiled(layer, [x])
    node_names = {n.name for n in c.model.graph.node}
    assert any(n.startswith("scaled_tanh/backward") for n in node_names), "the author's backward was not emitted"
    assert not any("scaled_tanh/grad" in n for n in node_names)
    G = rng.standard_normal(x.shape)
    np.testing.assert_allclose(c.run([x], G=G)["grad/scaled_tanh/a"], np.sum(G * np.tanh(x)), rtol=1e-12)
    assert got["grad/scaled_tanh/a"].shape == ()


def test_explicit_backward_that_is_wrong_changes_the_compiled_gradient():
    class Doubled(ScaledTanh):
        factor = 2

    x = rng.standard_normal((2, 3))
    G = rng.standard_normal((2, 3))
    good = Compiled(ScaledTanh(), [x]).run([x], G=G)
    bad = Compiled(Doubled(), [x]).run([x], G=G)
    np.testing.assert_allclose(bad["grad/x0"], 2 * good["grad/x0"], rtol=1e-12)
    np.testing.assert_allclose(good["grad/x0"], G * 1.5 * (1 - np.tanh(x) ** 2), rtol=1e-12)


def test_explicit_backward_in_a_model_chains_with_derived_gradients():
    model = Sequential([layers.Dense(3, name="d1"), ScaledTanh(), layers.Dense(2, name="d2")], input_shape=(4,),
                       seed=3)
    x = rng.standard_normal((2, 4))
    check_layer(model, [x], lambda x, w1, b1, a, w2, b2: (a * np.tanh(x @ w1 + b1)) @ w2 + b2)


def test_contract_compute_output_shape_and_config():
    class Repeat(Layer):
        def __init__(self, times=2, **kwargs):
            super().__init__(**kwargs)
            self.times = times

        def call(self, x):
            return ops.concat([x] * self.times, axis=-1)

        def get_config(self):
            return {**super().get_config(), "times": self.times}

    model = Sequential([Repeat(3, name="rep"), layers.Dense(2)], input_shape=(4,))
    assert model.layers[0].output_shape == (None, 12)          # inferred by tracing call
    clone = layers.deserialize(layers.serialize(model.layers[0]), custom_objects={"Repeat": Repeat})
    assert (type(clone), clone.times, clone.name) == (Repeat, 3, "rep")
    layers.register(Repeat)
    assert layers.deserialize({"class_name": "Repeat", "config": {"times": 4}}).times == 4

    class Liar(Layer):
        def call(self, x):
            return 2 * x

        def compute_output_shape(self, input_shape):
            return (None, 7)

    m = Sequential([Liar()], input_shape=(3,))
    with pytest.raises(ShapeError, match="compute_output_shape says"):
        m.trace(m.input_value())


def test_builtin_layers_round_trip_through_config():
    for layer in [layers.Dense(4, activation="relu", use_bias=False, kernel_initializer="he_normal"),
                  layers.Conv2D(3, (2, 3), strides=2, padding="same", groups=1, activation="gelu"),
                  layers.BatchNormalization(momentum=0.9), layers.Dropout(0.3), layers.Embedding(5, 2),
                  layers.Activation("leaky_relu", negative_slope=0.1), layers.MaxPooling2D(3, strides=1),
                  layers.Reshape((2, -1)), layers.Concatenate(axis=1),
                  layers.Dense(2, kernel_initializer=layers.initializers.get("uniform", minval=-1, maxval=1))]:
        clone = layers.deserialize(layers.serialize(layer))
        assert type(clone) is type(layer)
        assert clone.get_config() == layer.get_config()


def test_mistakes_raise_clear_errors():
    class NoParam(Layer):
        def call(self, x):
            return x * sympy.Symbol("alpha")

    with pytest.raises(UnknownSymbolError, match="layer 'no_param'.*alpha.*add_weight"):
        Sequential([NoParam()], input_shape=(2,))

    class NotAnExpression(Layer):
        def call(self, x):
            return [x]

    with pytest.raises(ExpressionError, match="call\\(\\) must return a sympy expression"):
        Sequential([NotAnExpression()], input_shape=(2,))

    class Twice(Layer):
        def build(self, input_shape):
            self.add_weight("w", (2,))
            self.add_weight("w", (2,))

    with pytest.raises(ParameterError, match="'w' already exists"):
        Sequential([Twice()], input_shape=(2,))

    class BadShape(Layer):
        def build(self, input_shape):
            self.add_weight("w", (0, 2))

    with pytest.raises(ShapeError, match="positive integers"):
        Sequential([BadShape()], input_shape=(2,))
    with pytest.raises(SymgradError, match="only be used inside call"):
        Swish().add_random_input()

    class WrongCount(ScaledTanh):
        def backward(self, x, y, g):
            return g, []

    with pytest.raises(ParameterError, match="one gradient per weight"):
        Compiled(WrongCount(), [np.zeros((1, 2))])
