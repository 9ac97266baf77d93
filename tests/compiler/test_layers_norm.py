"""BatchNormalization and LayerNormalization against NumPy, including the running-stat
updates (Keras momentum convention) and float64 finite-difference gradients."""
import numpy as np
import pytest

from symgrad.compiler import layers, ParameterError, ShapeError
from layer_harness import Compiled, check_layer

rng = np.random.default_rng(0)


def _built(layer, shape, randomize=True):
    layer.ensure_built((None,) + shape[1:])
    if randomize:  # non-trivial gamma/beta/moving stats so every term is exercised
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.weights])
    return layer


def _bn_reference(axes, eps, feature_axes, rank):
    def view(p):
        shape = [1] * rank
        for a in feature_axes:
            shape[a] = -1
        return p.reshape(shape)

    def train(x, gamma, beta, mm, mv):
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)  # biased, as Keras
        return (x - mean) / np.sqrt(var + eps) * view(gamma) + view(beta)

    def infer(x, gamma, beta, mm, mv):
        return (x - view(mm)) / np.sqrt(view(mv) + eps) * view(gamma) + view(beta)

    return train, infer


@pytest.mark.parametrize("shape, axis", [((5, 3), 1), ((4, 2, 3, 3), 1), ((3, 2, 4), -1)])
def test_batch_normalization_training_forward_gradient_and_updates(shape, axis):
    layer = _built(layers.BatchNormalization(axis=axis, momentum=0.9), shape)
    rank = len(shape)
    feature = (axis % rank,)
    axes = tuple(i for i in range(rank) if i not in feature)
    train, _ = _bn_reference(axes, 1e-3, feature, rank)
    x = rng.standard_normal(shape) * 2 + 1
    got = check_layer(layer, [x], train, training=True, opsets=(17, 13))
    gamma, beta, mm, mv = layer.get_weights()
    np.testing.assert_allclose(got["next/batch_normalization/moving_mean"],
                               0.9 * mm + 0.1 * x.mean(axis=axes), rtol=1e-6)
    np.testing.assert_allclose(got["next/batch_normalization/moving_variance"],
                               0.9 * mv + 0.1 * x.var(axis=axes), rtol=1e-6)


def test_batch_normalization_inference_uses_the_moving_statistics():
    shape = (4, 3, 2, 2)
    layer = _built(layers.BatchNormalization(), shape)
    _, infer = _bn_reference((0, 2, 3), 1e-3, (1,), 4)
    x = rng.standard_normal(shape)
    check_layer(layer, [x], infer, training=False)
    c = Compiled(layer, [x], training=False)
    assert c.trace.updates == {}
    assert [w.trainable for w in c.trace.weights] == [True, True, False, False]
    assert [w.name for w in c.trace.weights] == ["batch_normalization/gamma", "batch_normalization/beta",
                                                 "batch_normalization/moving_mean",
                                                 "batch_normalization/moving_variance"]


def test_batch_normalization_defaults_are_keras():
    layer = layers.BatchNormalization()
    assert (layer.momentum, layer.epsilon) == (0.99, 1e-3)
    shape = (6, 2)
    layer = _built(layer, shape, randomize=False)
    x = rng.standard_normal(shape)
    got = Compiled(layer, [x], training=True).run([x])
    np.testing.assert_allclose(got["next/batch_normalization/moving_mean"], 0.01 * x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(got["next/batch_normalization/moving_variance"], 0.99 + 0.01 * x.var(axis=0),
                               rtol=1e-6)


@pytest.mark.parametrize("shape, axis", [((3, 5), -1), ((2, 3, 2, 2), (1, 2, 3)), ((2, 3, 2, 2), 1),
                                         ((2, 4, 3), (-2, -1))])
def test_layer_normalization(shape, axis):
    layer = _built(layers.LayerNormalization(axis=axis), shape)
    rank = len(shape)
    axes = tuple(a % rank for a in ((axis,) if isinstance(axis, int) else axis))

    def view(p):
        return p.reshape(tuple(shape[i] if i in axes else 1 for i in range(rank)))

    def reference(x, gamma, beta):
        mean = x.mean(axis=axes, keepdims=True)
        return (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-3) * view(gamma) + view(beta)

    check_layer(layer, [rng.standard_normal(shape) * 3], reference, opsets=(17, 13))


def test_normalization_without_center_or_scale():
    shape = (4, 3)
    layer = _built(layers.LayerNormalization(center=False, scale=False, epsilon=1e-5), shape)
    assert layer.weights == []
    check_layer(layer, [rng.standard_normal(shape)],
                lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5))


def test_bad_arguments():
    with pytest.raises(ParameterError, match="'momentum'"):
        layers.BatchNormalization(momentum=1.5)
    with pytest.raises(ParameterError, match="'epsilon'"):
        layers.LayerNormalization(epsilon=0)
    from symgrad.compiler import Sequential
    with pytest.raises(ShapeError, match="axis 0 is the batch"):
        Sequential([layers.BatchNormalization(axis=0)], input_shape=(3,))
    with pytest.raises(ShapeError, match="not a feature axis"):
        Sequential([layers.LayerNormalization(axis=3)], input_shape=(3, 4))
