"""Issue 13's Keras layers and data_format: each forward against a NumPy reference
written here from Keras' equations (channels_last data and Keras kernel layouts unless
said otherwise), gradients against float64 central differences of that reference,
float32 graphs in onnxruntime, and one SGD step against the NumPy update."""
import numpy as np
import pytest

from symgrad.compiler import Input, Model, Sequential, ShapeError, ParameterError, layers, ops
from layer_harness import Compiled, check_layer, np_conv, same_pads
from step_harness import check_sgd_step

rng = np.random.default_rng(0)


def nhwc_conv(x, k, b=None, strides=(1, 1), pads=None, dilations=None, groups=1):
    """Keras' conv on (N, H, W, C) with kernel (kh, kw, in/groups, out), via the NCHW
    reference of layer_harness."""
    r = x.ndim - 2
    to_first = (0, r + 1) + tuple(range(1, r + 1))
    to_last = (0,) + tuple(range(2, r + 2)) + (1,)
    w = np.transpose(k, (r + 1, r) + tuple(range(r)))
    return np.transpose(np_conv(np.transpose(x, to_first), w, b, strides, pads, dilations, groups), to_last)


def scatter_transpose(x, k, strides, out_size, pad_begin):
    """Keras' Conv*DTranspose on channels_last x with kernel (*kernel, filters, in): every
    input pixel adds its value times the kernel at its strided position; then the window
    [pad_begin, pad_begin + out) of that full result (zeros past its end)."""
    r = x.ndim - 2
    kern = k.shape[:r]
    full = [(x.shape[1 + i] - 1) * strides[i] + kern[i] for i in range(r)]
    big = [max(full[i], pad_begin[i] + out_size[i]) for i in range(r)]
    y = np.zeros((x.shape[0],) + tuple(big) + (k.shape[r],))
    for pos in np.ndindex(*x.shape[1:1 + r]):
        for tap in np.ndindex(*kern):
            at = tuple(pos[i] * strides[i] + tap[i] for i in range(r))
            y[(slice(None),) + at] += x[(slice(None),) + pos] @ k[tap].T
    return y[(slice(None),) + tuple(slice(pad_begin[i], pad_begin[i] + out_size[i]) for i in range(r))]


def activation_transposes(model_proto, params):
    """Forward Transpose nodes that move data (not a weight's layout: nodes fed only by
    parameters and constants are weight work)."""
    weightish = set(params) | {i.name for i in model_proto.graph.initializer}
    out = []
    for n in model_proto.graph.node:
        if all(i in weightish for i in n.input if i):
            weightish.update(n.output)
        elif n.op_type == "Transpose" and not n.name.startswith("grad"):
            out.append(n.name)
    return out


# ---------------------------------------------------------------- convolutions, channels_last

@pytest.mark.parametrize("kwargs, shape", [
    (dict(filters=3, kernel_size=3), (2, 5, 5, 2)),
    (dict(filters=4, kernel_size=3, strides=2, padding="same", groups=2), (2, 5, 6, 2)),
])
def test_conv2d_channels_last_takes_keras_kernels(kwargs, shape):
    layer = layers.Conv2D(**kwargs, data_format="channels_last")
    x = rng.standard_normal(shape)
    s = layer.strides
    pads = same_pads(shape[1:3], layer.kernel_size, s) if layer.padding == "same" else None

    def ref(x, k, b):
        return nhwc_conv(x, k, b, s, pads, None, layer.groups)

    check_layer(layer, [x], ref, opsets=(17, 13))
    assert layer.get_weights()[0].shape == (3, 3, 2 // layer.groups, kwargs["filters"])
    check_sgd_step(layers.Conv2D(**kwargs, data_format="channels_last"), x, ref)


def test_conv1d_channels_last():
    layer = layers.Conv1D(3, 2, padding="causal", data_format="channels_last")
    x = rng.standard_normal((2, 6, 2))
    check_layer(layer, [x], lambda x, k, b: nhwc_conv(x, k, b, (1,), (1, 0)))


@pytest.mark.parametrize("cls, kwargs, shape", [
    (layers.Conv2DTranspose, dict(filters=3, kernel_size=3, strides=2, padding="same"), (2, 3, 4, 2)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=(2, 3), strides=(3, 2), padding="valid"), (1, 2, 3, 2)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=0),
     (1, 3, 3, 1)),
    (layers.Conv1DTranspose, dict(filters=2, kernel_size=4, strides=2, padding="same"), (2, 5, 3)),
])
def test_conv_transpose_layers(cls, kwargs, shape):
    layer = cls(**kwargs, data_format="channels_last")
    x = rng.standard_normal(shape)
    r = len(shape) - 2
    k = layer.kernel_size
    s = layer.strides
    op = kwargs.get("output_padding")
    outs, begins = [], []
    for i in range(r):  # keras' deconv_output_length and TF's 'same' padding of the result
        n = shape[1 + i]
        if op is None:
            out = n * s[i] + max(k[i] - s[i], 0) if layer.padding == "valid" else n * s[i]
        else:
            out = (n - 1) * s[i] + k[i] - 2 * (k[i] // 2 if layer.padding == "same" else 0) + op
        total = max((-(-out // s[i]) - 1) * s[i] + k[i] - out, 0) if layer.padding == "same" else 0
        outs.append(out)
        begins.append(total // 2)

    def ref(x, kern, b):
        return scatter_transpose(x, kern, s, outs, begins) + b

    check_layer(layer, [x], ref, opsets=(17, 13))
    assert layer.output_shape == (None,) + tuple(outs) + (kwargs["filters"],)
    assert layer.get_weights()[0].shape == k + (kwargs["filters"], shape[-1])
    check_sgd_step(cls(**kwargs, data_format="channels_last"), x, ref)


def test_conv2d_transpose_channels_first_uses_the_pytorch_layout():
    layer = layers.Conv2DTranspose(3, 2, strides=2, data_format="channels_first", use_bias=False)
    x = rng.standard_normal((1, 2, 3, 3))
    c = Compiled(layer, [x])
    (w,) = layer.get_weights()
    assert w.shape == (2, 3, 2, 2)            # (in, out, kh, kw) as torch.nn.ConvTranspose2d
    y = c.run([x])["y"]
    assert y.shape == (1, 3, 6, 6)
    assert y[0, 1, 3, 4] == pytest.approx(sum(x[0, c_, 1, 2] * w[c_, 1, 1, 0] for c_ in range(2)), rel=1e-12)


def test_depthwise_and_separable_conv2d():
    x = rng.standard_normal((2, 5, 4, 3))
    dw = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", data_format="channels_last")
    pads = same_pads((5, 4), (3, 3), (1, 1))

    def depthwise(x, k, b=None):  # output channel c*dm + m: input channel c with k[:, :, c, m]
        out = np.concatenate([nhwc_conv(x[..., c:c + 1], k[:, :, c:c + 1, :], None, (1, 1), pads)
                              for c in range(x.shape[-1])], axis=-1)
        return out if b is None else out + b

    check_layer(dw, [x], depthwise)
    check_sgd_step(layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", data_format="channels_last"), x,
                   depthwise)
    sep = layers.SeparableConv2D(4, 3, depth_multiplier=2, padding="same", data_format="channels_last",
                                 activation="tanh")

    def separable(x, dk, pk, b):
        return np.tanh(nhwc_conv(depthwise(x, dk), pk, b))

    check_layer(sep, [x], separable)
    assert [w.shape for w in sep.get_weights()] == [(3, 3, 3, 2), (1, 1, 6, 4), (4,)]
    check_sgd_step(layers.SeparableConv2D(4, 3, depth_multiplier=2, padding="same", data_format="channels_last",
                                          activation="tanh"), x, separable)


def test_depthwise_and_separable_channels_first_use_pytorch_layouts():
    x = rng.standard_normal((2, 3, 5, 4))
    dw = layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, data_format="channels_first")
    check_layer(dw, [x], lambda x, w, b: np_conv(x, w, b, (2, 2), None, None, groups=3))
    assert dw.get_weights()[0].shape == (6, 1, 3, 3)       # torch.nn.Conv2d(3, 6, 3, groups=3).weight
    sep = layers.SeparableConv2D(4, 2, data_format="channels_first", use_bias=False)
    check_layer(sep, [x], lambda x, dwk, pwk: np_conv(np_conv(x, dwk, groups=3), pwk))
    assert [w.shape for w in sep.get_weights()] == [(3, 1, 2, 2), (4, 3, 1, 1)]


# ---------------------------------------------------------------- spatial layers without weights

def bilinear_half_pixel(x, fh, fw):
    """tf.image.resize(method='bilinear', antialias=False) on (N, H, W, C), half-pixel
    centres, edges clamped: the reference for Keras' UpSampling2D(interpolation='bilinear')."""
    def axis(n, f):
        c = np.clip((np.arange(n * f) + 0.5) / f - 0.5, 0, n - 1)
        lo = np.floor(c).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, c - lo
    hl, hh, hw = axis(x.shape[1], fh)
    wl, wh, ww = axis(x.shape[2], fw)
    rows = x[:, hl] * (1 - hw)[None, :, None, None] + x[:, hh] * hw[None, :, None, None]
    return rows[:, :, wl] * (1 - ww)[None, None, :, None] + rows[:, :, wh] * ww[None, None, :, None]


@pytest.mark.parametrize("layer, ref", [
    (layers.UpSampling2D((2, 3), data_format="channels_last"),
     lambda x: np.repeat(np.repeat(x, 2, axis=1), 3, axis=2)),
    (layers.UpSampling2D(2, data_format="channels_last", interpolation="bilinear"),
     lambda x: bilinear_half_pixel(x, 2, 2)),
    (layers.ZeroPadding2D(((1, 0), (2, 1)), data_format="channels_last"),
     lambda x: np.pad(x, [(0, 0), (1, 0), (2, 1), (0, 0)])),
    (layers.Cropping2D(((1, 0), (0, 2)), data_format="channels_last"), lambda x: x[:, 1:, :-2]),
    (layers.GlobalMaxPooling2D(data_format="channels_last"), lambda x: x.max(axis=(1, 2))),
    (layers.GlobalMaxPooling2D(data_format="channels_first", keepdims=True), lambda x: x.max(axis=(2, 3),
                                                                                             keepdims=True)),
    (layers.MaxPooling2D(2, data_format="channels_last"),
     lambda x: x.reshape(2, 2, 2, 2, 2, 3).max(axis=(2, 4))),
    (layers.AveragePooling2D(2, data_format="channels_last"),
     lambda x: x.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))),
    (layers.Permute((3, 1, 2)), lambda x: np.transpose(x, (0, 3, 1, 2))),
    (layers.Lambda(lambda t: ops.mean(t, axis=(1, 2)) * 2), lambda x: 2 * x.mean(axis=(1, 2), keepdims=True)),
])
def test_weightless_spatial_layers(layer, ref):
    x = (rng.permutation(72).reshape(2, 4, 3, 3) - 36) / 7.0    # distinct: no max ties
    if isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
        x = x.reshape(2, 3, 4, 3).transpose(0, 2, 1, 3)[:, :, :4].reshape(2, 4, 3, 3)[:, :, :, :]
        x = np.concatenate([x, x[:, :, :1] + 0.05], axis=2)[:, :, :4]     # (2, 4, 4, 3)
    check_layer(layer, [x], ref)
    model_ref = ref
    head = layers.Dense(2)
    check_sgd_step([type(layer).from_config(layer.get_config()) if not isinstance(layer, layers.Lambda) else layer,
                    layers.Flatten(), head], x,
                   lambda x, k, b: model_ref(x).reshape(x.shape[0], -1) @ k + b)


def test_global_max_pooling1d_and_repeat_vector():
    x = rng.permutation(24).reshape(2, 4, 3) / 5.0
    check_layer(layers.GlobalMaxPooling1D(data_format="channels_last"), [x], lambda x: x.max(axis=1))
    check_layer(layers.GlobalMaxPooling1D(data_format="channels_first"), [x], lambda x: x.max(axis=2))
    v = rng.standard_normal((2, 3))
    check_layer(layers.RepeatVector(4), [v], lambda v: np.repeat(v[:, None, :], 4, axis=1))
    check_sgd_step([layers.RepeatVector(2), layers.Dense(2)], v, lambda v, k, b: np.repeat(v[:, None], 2, 1) @ k + b)


# ---------------------------------------------------------------- activations and normalisation

@pytest.mark.parametrize("layer, ref", [
    (layers.ReLU(max_value=1.0, negative_slope=0.1, threshold=-0.5),
     lambda x: np.where(x >= 1.0, 1.0, np.where(x >= -0.5, x, 0.1 * (x + 0.5)))),
    (layers.ReLU(), lambda x: np.maximum(x, 0)),
    (layers.ELU(alpha=0.7), lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    (layers.Softmax(axis=1), lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)),
])
def test_activation_layers(layer, ref):
    x = rng.standard_normal((3, 4, 2)) * 2
    x[np.abs(x - 1.0) < 1e-3] += 0.01
    check_layer(layer, [x], ref)
    check_sgd_step([layer, layers.Flatten(), layers.Dense(2)], x,
                   lambda x, k, b: ref(x).reshape(3, -1) @ k + b)


@pytest.mark.parametrize("shared_axes, alpha_shape", [(None, (3, 4)), ([1], (1, 4))])
def test_prelu(shared_axes, alpha_shape):
    layer = layers.PReLU(alpha_initializer="ones", shared_axes=shared_axes)
    x = rng.standard_normal((2, 3, 4))

    def ref(x, alpha):
        return np.maximum(x, 0) - alpha * np.maximum(-x, 0)

    check_layer(layer, [x], ref)
    assert layer.get_weights()[0].shape == alpha_shape
    check_sgd_step(layers.PReLU(shared_axes=shared_axes), x, ref)


def test_prelu_between_channels_last_convs_adds_no_transpose():
    inp = Input((4, 4, 2))
    conv = layers.Conv2D(3, 1, data_format="channels_last", use_bias=False)
    prelu = layers.PReLU(alpha_initializer="ones", shared_axes=[1, 2])
    out = layers.GlobalAveragePooling2D(data_format="channels_last")(prelu(conv(inp)))
    model = Model(inp, out)
    prelu.set_weights([np.array([[[0.1, 0.2, 0.3]]])])
    x = rng.standard_normal((2, 4, 4, 2))
    c = Compiled(model, [x])
    assert len(activation_transposes(c.model, [w.name for w in model.weights])) == 1
    (k,), alpha = conv.get_weights(), prelu.get_weights()[0].astype(np.float64)
    h = nhwc_conv(x, k.astype(np.float64))
    np.testing.assert_allclose(c.run([x])["y"], (np.maximum(h, 0) - alpha * np.maximum(-h, 0)).mean(axis=(1, 2)),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape, axis", [((2, 3, 2, 4), -1), ((2, 4, 3), 1)])
def test_group_normalization(shape, axis):
    layer = layers.GroupNormalization(groups=2, axis=axis, epsilon=1e-3)
    x = rng.standard_normal(shape)

    def ref(x, gamma, beta):  # Keras: reshape the channels into (groups, C/groups), moments over all but batch/group
        xm = np.moveaxis(x, axis, -1)
        g = xm.reshape(xm.shape[:-1] + (2, -1))
        axes = tuple(range(1, g.ndim - 2)) + (g.ndim - 1,)
        g = (g - g.mean(axis=axes, keepdims=True)) / np.sqrt(g.var(axis=axes, keepdims=True) + 1e-3)
        return np.moveaxis(g.reshape(xm.shape) * gamma + beta, -1, axis)

    check_layer(layer, [x], ref)
    check_sgd_step(layers.GroupNormalization(groups=2, axis=axis), x, ref)


def test_normalization_adapt_follows_keras():
    data = rng.standard_normal((50, 3, 2)) * [[1.0, 5.0]] + [[2.0, -1.0]]
    layer = layers.Normalization(axis=-1).adapt(data)
    mean, var = layer.get_weights()
    np.testing.assert_allclose(mean.ravel(), data.reshape(-1, 2).mean(0), rtol=1e-6)
    np.testing.assert_allclose(var.ravel(), data.reshape(-1, 2).var(0), rtol=1e-6)   # population variance
    x = rng.standard_normal((2, 3, 2))
    check_layer(layer, [x], lambda x, m, v: (x - m) / np.maximum(np.sqrt(v), 1e-7))
    inv = layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 0.0], invert=True)
    check_layer(inv, [x], lambda x, m, v: m + x * np.maximum(np.sqrt(v), 1e-7))
    check_sgd_step([layers.Normalization(axis=-1).adapt(data), layers.Flatten(), layers.Dense(1)], x,
                   lambda x, m, v, k, b: ((x - m) / np.sqrt(v)).reshape(2, -1) @ k + b)


# ---------------------------------------------------------------- data_format across a model

def test_a_channels_last_model_transposes_once_at_each_boundary_and_gives_keras_outputs():
    inp = Input((6, 6, 2))
    h = layers.Conv2D(4, 3, padding="same", activation="relu", data_format="channels_last")(inp)
    h = layers.BatchNormalization(axis=-1)(h)
    h = layers.MaxPooling2D(2, data_format="channels_last")(h)
    h = layers.Conv2D(3, 3, data_format="channels_last")(h)
    out = layers.Dense(2)(layers.Flatten()(h))
    model = Model(inp, out)
    x = rng.standard_normal((2, 6, 6, 2))
    c = Compiled(model, [x])
    acts = activation_transposes(c.model, [w.name for w in model.weights])
    assert len(acts) == 2, acts
    k1, b1, gamma, beta, mm, mv, k2, b2, kd, bd = [w.astype(np.float64) for w in model.get_weights()]
    h = np.maximum(nhwc_conv(x, k1, b1, (1, 1), same_pads((6, 6), (3, 3), (1, 1))), 0)
    h = (h - mm) / np.sqrt(mv + 1e-3) * gamma + beta
    h = h.reshape(2, 3, 2, 3, 2, 4).max(axis=(2, 4))
    h = nhwc_conv(h, k2, b2)
    want = h.reshape(2, -1) @ kd + bd                                       # Keras flattens NHWC
    np.testing.assert_allclose(c.run([x])["y"], want, rtol=1e-10, atol=1e-12)


def test_a_keras_shaped_image_under_the_unchosen_default_warns():
    from symgrad.compiler.layers import data_format
    chosen = data_format._chosen[0]
    data_format._chosen[0] = False
    try:
        with pytest.warns(UserWarning, match=r"\(None, 8, 8, 1\) as channels_first.*set_image_data_format"):
            Sequential([layers.Conv2D(2, 3, padding="same")], input_shape=(8, 8, 1))
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Sequential([layers.Conv2D(2, 3, padding="same", data_format="channels_first")], input_shape=(8, 8, 1))
            Sequential([layers.Conv2D(2, 3)], input_shape=(1, 8, 8))
    finally:
        data_format._chosen[0] = chosen


def test_a_channels_last_residual_block_keeps_to_the_boundary_transposes():
    inp = Input((5, 5, 3))
    h = layers.Conv2D(3, 3, padding="same", activation="relu", data_format="channels_last")(inp)
    h = layers.Add()([inp, h])                                     # the input itself, never transposed back
    h2 = layers.Conv2D(3, 1, data_format="channels_last")(h)
    h = layers.Add()([h, h2])
    out = layers.GlobalAveragePooling2D(data_format="channels_last")(h)
    model = Model(inp, out)
    x = rng.standard_normal((2, 5, 5, 3))
    c = Compiled(model, [x])
    acts = activation_transposes(c.model, [w.name for w in model.weights])
    assert len(acts) == 1, acts                                    # NHWC -> NCHW once; the pooled (N, C) needs none
    k1, b1, k2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    h = x + np.maximum(nhwc_conv(x, k1, b1, (1, 1), (1, 1, 1, 1)), 0)
    h = h + nhwc_conv(h, k2, b2)
    np.testing.assert_allclose(c.run([x])["y"], h.mean(axis=(1, 2)), rtol=1e-10, atol=1e-12)


def test_dropout_between_channels_last_convs_draws_channels_first_noise():
    inp = Input((4, 4, 2))
    h = layers.Conv2D(3, 1, data_format="channels_last", use_bias=False)(inp)
    h = layers.Dropout(0.5)(h)
    out = layers.Conv2D(2, 1, data_format="channels_last", use_bias=False)(h)
    model = Model(inp, out)
    x = rng.standard_normal((2, 4, 4, 2))
    c = Compiled(model, [x], training=True)
    (noise,) = c.trace.random_inputs
    assert noise.shape == ("N", 3, 4, 4)
    assert len(activation_transposes(c.model, [w.name for w in model.weights])) == 2
    u = rng.uniform(size=(2, 3, 4, 4))
    k1, k2 = [w.astype(np.float64) for w in model.get_weights()]
    h = nhwc_conv(x, k1) * np.where(u.transpose(0, 2, 3, 1) >= 0.5, 2.0, 0.0)
    np.testing.assert_allclose(c.run([x], noise={noise.name: u})["y"], nhwc_conv(h, k2), rtol=1e-10, atol=1e-12)


def test_model_wide_default_and_layout_errors():
    assert layers.image_data_format() == "channels_first"
    try:
        layers.set_image_data_format("channels_last")
        model = Sequential([layers.Conv2D(2, 3), layers.GlobalAveragePooling2D()], input_shape=(8, 8, 1))
        assert model.layers[0].get_weights()[0].shape == (3, 3, 1, 2)
        assert model.output_shape == (2,)
        assert "channels_last" in model.summary(print_fn=None)
        with pytest.raises(ShapeError, match=r"channels_last.*\(None, 8, 8\)"):
            Sequential([layers.Conv2D(2, 3)], input_shape=(8, 8))
    finally:
        layers.set_image_data_format("channels_first")
    with pytest.raises(ShapeError, match=r"\(batch, channels, height, width\).*channels_first"):
        Sequential([layers.MaxPooling2D()], input_shape=(8, 8))
    with pytest.raises(ParameterError, match="data_format"):
        layers.Conv2D(2, 3, data_format="nhwc")
    with pytest.raises(ParameterError, match="image data format"):
        layers.set_image_data_format("NHWC")


def test_model_set_weights_is_all_or_nothing():
    """A wrong shape anywhere changes no weight, not even those of the layers before it."""
    import numpy as np
    import pytest
    from symgrad.compiler import Sequential, ShapeError, layers
    model = Sequential([layers.Dense(3), layers.Dense(2)], input_shape=(4,), seed=0)
    before = model.get_weights()
    bad = [np.ones_like(a) for a in before[:-1]] + [np.ones(5, np.float32)]
    with pytest.raises(ShapeError, match="shape"):
        model.set_weights(bad)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    model.set_weights([np.full_like(a, 2.0) for a in before])
    assert all((a == 2.0).all() for a in model.get_weights())
