"""Property test: random stacks of layers, compiled in float64, have whole-program
gradients equal to float64 central finite differences of the program's own loss.

A stack is drawn from Dense, activations, Conv1D/Conv2D, max and average pooling,
BatchNormalization (training mode: batch statistics), LayerNormalization, Dropout (its
noise is a graph input, held fixed, so the loss is a deterministic function of the
weights) and Flatten / global pooling, ending in Dense logits under sparse categorical
cross-entropy or mean squared error. The ``gradients`` graph of the bundle gives
``grad/<param>``; the oracle perturbs each weight entry and re-runs the same graph's
``loss``, so nothing of symgrad's differentiation is used to check it.

Profiles (tests/conftest.py): the default 'ci' profile runs a CI-sized number of
stacks (EXAMPLES below); for a deep local run

    HYPOTHESIS_PROFILE=full python -m pytest tests/reliability -k property

draws 200 stacks of each kind here (and 1000 examples in the other property tests).
"""
import os

import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st

from symgrad.compiler import Sequential, compile_model, layers, losses
from symgrad.compiler.gradcheck import Runner

FULL = os.environ.get("HYPOTHESIS_PROFILE") == "full"
EXAMPLES = 200 if FULL else 20
SMOOTH = ["tanh", "sigmoid", "softplus", "elu", "gelu", "silu", "softsign", "linear"]
KINKED = ["relu", "leaky_relu", "relu6", "selu"]


def vector_layer(draw, width):
    kind = draw(st.sampled_from(["dense", "dense", "activation", "batchnorm", "layernorm", "dropout"]))
    if kind == "dense":
        units = draw(st.integers(2, 5))
        return layers.Dense(units, activation=draw(st.sampled_from(SMOOTH + KINKED + [None]))), units
    if kind == "activation":
        return layers.Activation(draw(st.sampled_from(SMOOTH + KINKED))), width
    if kind == "batchnorm":
        return layers.BatchNormalization(), width
    if kind == "layernorm":
        return layers.LayerNormalization(), width
    return layers.Dropout(draw(st.sampled_from([0.0, 0.25, 0.5]))), width


def image_layer(draw, shape):
    """(layer, new shape) for a channels-first (C, *spatial) input."""
    c, spatial = shape[0], shape[1:]
    conv = layers.Conv2D if len(spatial) == 2 else layers.Conv1D
    kind = draw(st.sampled_from(["conv", "pool", "conv", "pool", "batchnorm", "activation", "dropout"]))
    if kind == "conv":
        k = draw(st.integers(1, min(3, min(spatial))))
        padding = draw(st.sampled_from(["same", "valid"]))
        filters = draw(st.integers(1, 3))
        out = spatial if padding == "same" else tuple(s - k + 1 for s in spatial)
        act = draw(st.sampled_from(SMOOTH[:4] + ["relu", None]))
        return conv(filters, k, padding=padding, activation=act), (filters,) + out
    if kind == "pool" and min(spatial) >= 2:
        pool = {2: (layers.MaxPooling2D, layers.AveragePooling2D), 1: (layers.MaxPooling1D, layers.AveragePooling1D)}
        cls = draw(st.sampled_from(pool[len(spatial)]))
        return cls(2), (c,) + tuple(s // 2 for s in spatial)
    if kind == "batchnorm":
        return layers.BatchNormalization(axis=1), shape
    if kind == "dropout":
        return layers.Dropout(0.3), shape
    return layers.Activation(draw(st.sampled_from(SMOOTH[:4]))), shape


@st.composite
def stacks(draw, image):
    """(layer list, input shape, loss name, number of outputs)."""
    stack = []
    if image:
        shape = draw(st.sampled_from([(2, 5, 5), (1, 4, 6), (2, 6, 4), (2, 7)]))
        input_shape = shape
        for _ in range(draw(st.integers(1, 3))):
            layer, shape = image_layer(draw, shape)
            stack.append(layer)
        if len(shape) == 3 and draw(st.booleans()):
            stack.append(layers.GlobalAveragePooling2D())
            width = shape[0]
        else:
            stack.append(layers.Flatten())
            width = int(np.prod(shape))
    else:
        width = draw(st.integers(2, 5))
        input_shape = (width,)
    for _ in range(draw(st.integers(0 if image else 1, 3))):
        layer, width = vector_layer(draw, width)
        stack.append(layer)
    outputs = draw(st.integers(2, 3))
    stack.append(layers.Dense(outputs))
    loss = draw(st.sampled_from(["sparse_categorical_crossentropy", "mse"]))
    return stack, input_shape, loss, outputs


def gradients_graph(bundle):
    """The bundle's gradients graph, run by onnxruntime, or (Conv and pooling have no
    double kernels there) by onnx's reference evaluator."""
    return Runner(onnx.load_from_string(bundle.graphs["gradients"]))


def central_differences(f, flat, mask, h):
    """d f / d flat[i] for each i in ``mask``, float64 central differences."""
    out = np.zeros(len(mask))
    for j, i in enumerate(mask):
        old = flat[i]
        step = h * max(1.0, abs(old))
        flat[i] = old + step
        up = f()
        flat[i] = old - step
        down = f()
        flat[i] = old
        out[j] = (up - down) / (2 * step)
    return out


@pytest.mark.parametrize("image", [False, True], ids=["vectors", "images"])
@settings(max_examples=EXAMPLES)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_random_layer_stacks_have_correct_program_gradients(image, data, seed):
    check_stack(*data.draw(stacks(image), label="stack"), seed)


@pytest.mark.parametrize("make,input_shape", [
    (lambda: [layers.Dense(1), layers.LayerNormalization(), layers.Dense(2)], (3,)),
    (lambda: [layers.Conv2D(1, 3, padding="same"), layers.GlobalAveragePooling2D(), layers.LayerNormalization(),
              layers.Dense(2)], (2, 5, 5)),
], ids=["dense", "conv"])
def test_layer_norm_over_one_feature(make, input_shape):
    """Found by the 'full' profile: normalising one feature makes gradient terms cancel
    only after CSE, and the emitted value lost its shape (a scalar fed to ReduceSum)."""
    check_stack(make(), input_shape, "sparse_categorical_crossentropy", 2, seed=3)


def check_stack(stack, input_shape, loss_name, outputs, seed):
    loss = losses.get(loss_name, from_logits=True) if loss_name.startswith("sparse") else losses.get(loss_name)
    model = Sequential(stack, input_shape=input_shape)
    program = compile_model(model, loss, "sgd", dtype="float64", seed=seed)
    bundle = program.bundle()
    m = bundle.manifest
    rng = np.random.default_rng(seed)
    n = 4
    feeds = {"x": rng.normal(size=(n,) + tuple(input_shape))}
    feeds["y"] = rng.integers(0, outputs, n) if loss_name.startswith("sparse") else rng.normal(size=(n, outputs))
    for entry in m["params"] + m["state"]:
        feeds[entry["name"]] = np.array(bundle.state[entry["name"]], np.float64)
    for entry in m["params"]:
        # zero biases under a dead relu put a pre-activation exactly on the kink, where the
        # compiler takes the subgradient 0 and differences see 1/2: move off it
        feeds[entry["name"]] += rng.normal(scale=0.1, size=feeds[entry["name"]].shape)
    for r in m["random_inputs"]:
        feeds[r["name"]] = rng.random((n,) + tuple(r["shape"][1:]))
    graph = gradients_graph(bundle)
    got = graph(feeds)
    sample = 24 if graph.backend == "onnxruntime" else 4      # the reference evaluator is slow
    assert np.isfinite(got["loss"])
    trainable = [e["name"] for e in m["params"] if e["trainable"]]
    assert trainable and all(f"grad/{name}" in got for name in trainable)
    for name in trainable:
        value = feeds[name]
        flat = value.reshape(-1)
        # every entry of small tensors, a sample of big ones
        mask = np.arange(flat.size) if flat.size <= sample else rng.choice(flat.size, sample, replace=False)

        def loss_at():
            return float(graph(feeds)["loss"])

        fd = central_differences(loss_at, flat, mask, 1e-6)
        analytic = got[f"grad/{name}"].reshape(-1)[mask]
        bad = ~np.isclose(analytic, fd, rtol=1e-5, atol=1e-7)
        if bad.any():   # a kink (relu, max pool) inside the step: ask again with a 100x smaller step
            fd[bad] = central_differences(loss_at, flat, mask[bad], 1e-8)
            bad = ~np.isclose(analytic, fd, rtol=1e-4, atol=1e-6)
        assert not bad.any(), (name, [type(l).__name__ for l in stack], analytic[bad], fd[bad])
