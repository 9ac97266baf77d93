"""Initializers: Keras' formulas (checked statistically on large draws), seeding, and
the fans convolution layers pass for their (out, in/groups, kh, kw) kernels."""
import numpy as np
import pytest

from symgrad.compiler import ParameterError, Sequential, UnknownNameError, layers
from symgrad.compiler.layers import initializers

SHAPE, FAN_IN, FAN_OUT = (400, 300), 400, 300


def draw(name, **kwargs):
    return initializers.get(name, **kwargs)(SHAPE, np.random.default_rng(0), FAN_IN, FAN_OUT)


@pytest.mark.parametrize("name, limit", [("glorot_uniform", np.sqrt(6 / (FAN_IN + FAN_OUT))),
                                         ("he_uniform", np.sqrt(6 / FAN_IN)), ("lecun_uniform", np.sqrt(3 / FAN_IN))])
def test_uniform_variance_scaling(name, limit):
    w = draw(name)
    assert w.shape == SHAPE and np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.01)


@pytest.mark.parametrize("name, std", [("glorot_normal", np.sqrt(2 / (FAN_IN + FAN_OUT))),
                                       ("he_normal", np.sqrt(2 / FAN_IN)), ("lecun_normal", np.sqrt(1 / FAN_IN))])
def test_truncated_normal_variance_scaling_has_the_target_std(name, std):
    w = draw(name)
    assert w.std() == pytest.approx(std, rel=0.01)          # the truncation is compensated, as Keras
    assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-12


def test_plain_distributions_and_constants():
    u = draw("uniform", minval=-2, maxval=1)
    assert u.min() >= -2 and u.max() < 1 and u.mean() == pytest.approx(-0.5, abs=0.01)
    n = draw("normal", mean=1.0, stddev=0.5)
    assert n.mean() == pytest.approx(1.0, abs=0.01) and n.std() == pytest.approx(0.5, rel=0.01)
    t = draw("truncated_normal", stddev=0.1)
    assert np.abs(t).max() <= 0.2
    assert (draw("zeros") == 0).all() and (draw("ones") == 1).all() and (draw("constant", value=3) == 3).all()
    assert (initializers.get(2.5)(SHAPE, None, 1, 1) == 2.5).all()
    assert (initializers.get(lambda shape, rng: np.full(shape, 7.0))((2,), None, 1, 1) == 7).all()


def test_model_seed_reproduces_and_conv_fans_follow_the_kernel_layout():
    def make(seed):
        return Sequential([layers.Conv2D(6, 3, groups=2, kernel_initializer="he_uniform"), layers.Flatten(),
                           layers.Dense(2)], input_shape=(4, 5, 5), seed=seed)

    a, b = make(3), make(3)
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)
    kernel = a.get_weights()[0]
    assert kernel.shape == (6, 2, 3, 3)
    limit = np.sqrt(6 / (2 * 9))          # fan_in = in/groups * kh * kw
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit


def test_bad_initializers():
    with pytest.raises(UnknownNameError, match="Did you mean 'he_normal'"):
        initializers.get("he_norm")
    with pytest.raises(ParameterError, match="'maxval'"):
        initializers.get("uniform", minval=1, maxval=0)
    with pytest.raises(ParameterError, match="'stddev'"):
        initializers.get("normal", stddev=-1)
    with pytest.raises(ParameterError, match="initializer 'zeros'"):
        initializers.get("zeros", value=1)
    with pytest.raises(ParameterError, match="an initializer must be"):
        initializers.get([1, 2])
