"""Conv1D/Conv2D and pooling layers: forward against NumPy references written here,
gradients against float64 central differences of those references, float32 graphs in
onnxruntime at several opsets."""
import numpy as np
import pytest

from symgrad.compiler import layers, ShapeError, ParameterError
from layer_harness import check_layer, np_conv, np_avg_pool, np_max_pool, same_pads

rng = np.random.default_rng(0)


@pytest.mark.parametrize("kwargs, shape", [
    (dict(filters=3, kernel_size=3), (2, 2, 5, 5)),
    (dict(filters=4, kernel_size=3, strides=2, padding="same"), (2, 2, 5, 6)),
    (dict(filters=2, kernel_size=(2, 3), dilation_rate=(2, 1), padding="same"), (1, 3, 6, 5)),
    (dict(filters=4, kernel_size=3, groups=2, strides=(1, 2), use_bias=False), (2, 4, 5, 5)),
    (dict(filters=3, kernel_size=2, activation="tanh", strides=3), (2, 1, 7, 7)),
])
def test_conv2d(kwargs, shape):
    layer = layers.Conv2D(**kwargs)
    x = rng.standard_normal(shape)
    k = layer.kernel_size if hasattr(layer, "kernel_size") else None
    pads = same_pads(shape[2:], k, layer.strides, layer.dilation_rate) if layer.padding == "same" else None
    act = np.tanh if kwargs.get("activation") == "tanh" else (lambda v: v)

    def reference(x, w, b=None):
        return act(np_conv(x, w, b, layer.strides, pads, layer.dilation_rate, layer.groups))

    check_layer(layer, [x], reference, opsets=(17, 13, 21))
    assert layer.output_shape == (None,) + reference(x, *layer.get_weights()).shape[1:]


@pytest.mark.parametrize("kwargs", [
    dict(filters=3, kernel_size=3),
    dict(filters=2, kernel_size=3, padding="same", strides=2),
    dict(filters=2, kernel_size=2, padding="causal", dilation_rate=2),
    dict(filters=4, kernel_size=3, groups=2, use_bias=False),
])
def test_conv1d(kwargs):
    layer = layers.Conv1D(**kwargs)
    shape = (2, 2, 9)
    x = rng.standard_normal(shape)
    k, s, d = layer.kernel_size, layer.strides, layer.dilation_rate
    pads = {"valid": None, "same": same_pads(shape[2:], k, s, d), "causal": ((k[0] - 1) * d[0], 0)}[layer.padding]

    def reference(x, w, b=None):
        return np_conv(x, w, b, s, pads, d, layer.groups)

    got = check_layer(layer, [x], reference, opsets=(17, 14))
    if layer.padding == "causal":  # output as long as the input, and y[t] sees only x[<= t]
        assert got["y"].shape[-1] == shape[-1]


def test_conv_kernel_layout_is_pytorch_and_matches_a_direct_sum():
    layer = layers.Conv2D(2, (2, 3), use_bias=False)
    x = rng.standard_normal((1, 3, 4, 5))
    from layer_harness import Compiled
    c = Compiled(layer, [x])
    (w,) = layer.get_weights()
    assert w.shape == (2, 3, 2, 3)
    y = c.run([x])["y"]
    direct = sum(x[0, c_, 1 + i, 2 + j] * w[1, c_, i, j] for c_ in range(3) for i in range(2) for j in range(3))
    assert y[0, 1, 1, 2] == pytest.approx(direct, rel=1e-10)


@pytest.mark.parametrize("cls, pool, kwargs, shape", [
    (layers.MaxPooling2D, np_max_pool, dict(pool_size=2), (2, 3, 6, 6)),
    (layers.MaxPooling2D, np_max_pool, dict(pool_size=3, strides=2, padding="same"), (2, 2, 5, 6)),
    (layers.MaxPooling2D, np_max_pool, dict(pool_size=(2, 3), strides=1), (1, 2, 4, 5)),
    (layers.AveragePooling2D, np_avg_pool, dict(pool_size=2), (2, 3, 6, 6)),
    (layers.AveragePooling2D, np_avg_pool, dict(pool_size=3, strides=2, padding="same"), (2, 2, 5, 6)),
    (layers.MaxPooling1D, np_max_pool, dict(pool_size=3, strides=2, padding="same"), (2, 3, 8)),
    (layers.AveragePooling1D, np_avg_pool, dict(pool_size=2, strides=1), (2, 3, 7)),
])
def test_pooling(cls, pool, kwargs, shape):
    layer = cls(**kwargs)
    x = rng.permutation(np.prod(shape)).reshape(shape) / 7.0 - 3.0  # distinct values: no ties
    pads = same_pads(shape[2:], layer.pool_size, layer.strides) if layer.padding == "same" else None

    def reference(x):
        return pool(x, layer.pool_size, layer.strides, pads)

    check_layer(layer, [x], reference, opsets=(17, 13))


def test_max_pooling_ties_share_the_gradient():
    layer = layers.MaxPooling2D(2)
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, :, 2:] = [[1.0, 3.0], [3.0, 0.5]]
    from layer_harness import Compiled
    got = Compiled(layer, [x]).run([x], G=np.array([[[[4.0, 2.0]]]]))
    np.testing.assert_allclose(got["grad/x0"][0, 0], [[1, 1, 0, 1], [1, 1, 1, 0]])


@pytest.mark.parametrize("cls, shape", [(layers.GlobalAveragePooling2D, (2, 3, 4, 5)),
                                        (layers.GlobalAveragePooling1D, (2, 3, 6))])
def test_global_average_pooling(cls, shape):
    x = rng.standard_normal(shape)
    check_layer(cls(), [x], lambda x: x.mean(axis=tuple(range(2, x.ndim))), opsets=(17, 13))


def test_conv_then_pool_then_dense_stack_in_float32():
    from symgrad.compiler import Sequential
    model = Sequential([layers.Conv2D(4, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(3)], input_shape=(1, 6, 6), seed=1)
    x = rng.standard_normal((2, 1, 6, 6))
    w = model.get_weights()

    def reference(x, k, b, wd, bd):
        h = np.maximum(np_conv(x, k, b, pads=(1, 1, 1, 1)), 0)
        return np_max_pool(h, (2, 2)).reshape(len(x), -1) @ wd + bd

    check_layer(model, [x], reference)
    assert [a.shape for a in w] == [(4, 1, 3, 3), (4,), (36, 3), (3,)]


@pytest.mark.parametrize("spatial, pool, padding", [((8, 8), 2, "valid"),    # tiled, with a remainder row
                                                    ((6, 6), 3, "valid"),
                                                    ((6, 5), 2, "same")])    # padded windows
def test_relu_moves_past_max_pooling(spatial, pool, padding):
    """max_pool(relu(conv)) is compiled as relu(max_pool(conv)) (MaxPool.rewrite): the
    forward and the gradients still equal the reference's (float64 central differences),
    and in the graph the ReLU runs on the pooled tensor."""
    from symgrad.compiler import Sequential
    from layer_harness import Compiled
    model = Sequential([layers.Conv2D(3, 2, activation="relu"), layers.MaxPooling2D(pool, padding=padding)],
                       input_shape=(2,) + spatial, seed=3)
    x = rng.standard_normal((3, 2) + spatial)

    def reference(x, k, b):
        h = np.maximum(np_conv(x, k, b), 0)
        pads = same_pads(h.shape[2:], (pool, pool), (pool, pool)) if padding == "same" else None
        return np_max_pool(h, (pool, pool), pads=pads)

    check_layer(model, [x], reference)
    graph = Compiled(model, [x]).model.graph
    producer = {o: n for n in graph.node for o in n.output}
    relus = [n for n in graph.node if n.op_type in ("Relu", "Max")]
    assert relus and all(producer[n.input[0]].op_type == "MaxPool" for n in relus)


def test_bad_arguments():
    with pytest.raises(ParameterError, match="'padding'"):
        layers.Conv2D(3, 3, padding="full")
    with pytest.raises(ParameterError, match="'kernel_size'"):
        layers.Conv2D(3, (3, 3, 3))
    with pytest.raises(ParameterError, match="'filters'"):
        layers.Conv2D(0, 3)
    with pytest.raises(ParameterError, match="divisible"):
        layers.Conv2D(3, 3, groups=2)
    with pytest.raises(ParameterError, match="'causal'"):
        layers.Conv2D(3, 3, padding="causal")
    with pytest.raises(ParameterError, match="pool_size"):
        layers.MaxPooling2D(0)
    from symgrad.compiler import Sequential
    with pytest.raises(ShapeError, match=r"\(batch, channels, height, width\)"):
        Sequential([layers.Conv2D(2, 3)], input_shape=(16,))
    with pytest.raises(ShapeError, match="does not fit"):
        Sequential([layers.Conv2D(2, 5)], input_shape=(1, 3, 3))
    with pytest.raises(ShapeError, match="divisible"):
        Sequential([layers.Conv2D(4, 3, groups=2)], input_shape=(3, 5, 5))
