"""NumPy references for the sequence layers, written from Keras 3's equations and weight
layout (keras/src/layers/rnn/*.py, attention/multi_head_attention.py), and a check that
one SGD step of a compiled layer equals w - lr * (finite-difference gradient of the
NumPy reference's loss)."""
import numpy as np

from symgrad.compiler import Sequential, compile_model, optimizers
from symgrad.runtime.trainer import Trainer

from layer_harness import fd_grads


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def np_rnn(x, step, states, go_backwards=False, return_sequences=False):
    """Run ``step(x_t, states) -> states`` (states[0] = output) over axis 1 of x."""
    order = range(x.shape[1])[::-1] if go_backwards else range(x.shape[1])
    outs = []
    for t in order:
        states = step(x[:, t], states)
        outs.append(states[0])
    return (np.stack(outs, 1) if return_sequences else outs[-1]), states


def np_simple_rnn(x, kernel, rk, bias, **kw):
    h0 = np.zeros((x.shape[0], rk.shape[0]))
    return np_rnn(x, lambda xt, s: [np.tanh(xt @ kernel + bias + s[0] @ rk)], [h0], **kw)


def np_lstm(x, kernel, rk, bias, **kw):
    u = rk.shape[0]
    z0 = np.zeros((x.shape[0], u))

    def step(xt, s):
        h, c = s
        z = xt @ kernel + h @ rk + bias
        i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
        c = f * c + i * g
        return [o * np.tanh(c), c]
    return np_rnn(x, step, [z0, z0], **kw)


def np_gru(x, kernel, rk, bias, reset_after=True, **kw):
    u = rk.shape[0]

    def step(xt, s):
        (h,) = s
        if reset_after:
            mx = xt @ kernel + bias[0]
            inner = h @ rk + bias[1]
        else:
            mx = xt @ kernel + bias
            inner = h @ rk[:, :2 * u]
        z = sigmoid(mx[:, :u] + inner[:, :u])
        r = sigmoid(mx[:, u:2 * u] + inner[:, u:2 * u])
        rh = r * inner[:, 2 * u:] if reset_after else (r * h) @ rk[:, 2 * u:]
        hh = np.tanh(mx[:, 2 * u:] + rh)
        return [z * h + (1 - z) * hh]
    return np_rnn(x, step, [np.zeros((x.shape[0], u))], **kw)


def check_sgd_step(layer, xs, forward, lr=0.1, seed=0):
    """One SGD step on mean((layer(x) - y)^2) (float64) == w - lr * FD gradient of the
    same loss through ``forward(*xs, *weights)``."""
    model = Sequential([layer], input_shape=xs[0].shape[1:], seed=seed)
    program = compile_model(model, loss="mse", optimizer=optimizers.SGD(lr), dtype="float64")
    trainer = Trainer(program)
    weights = [np.asarray(w, dtype=np.float64) for w in trainer.get_weights()]
    rng = np.random.default_rng(seed + 1)
    y = rng.standard_normal(np.shape(forward(*xs, *weights)))

    def loss(*ws):
        return np.array(np.mean((forward(*xs, *ws) - y) ** 2))
    grads = fd_grads(loss, weights, range(len(weights)), np.array(1.0))
    trainer.train_on_batch(xs[0], y)
    for name, w, g, new in zip(trainer.weight_names, weights, [grads[i] for i in range(len(weights))],
                               trainer.get_weights()):
        np.testing.assert_allclose(new, w - lr * g, rtol=1e-6, atol=1e-8, err_msg=name)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_mha(query, value, qk, qb, kk, kb, vk, vb, ok, ob, key=None, mask=None, causal=False):
    """Keras MultiHeadAttention: einsum projections with kernels (dim, heads, size)."""
    key = value if key is None else key
    q = np.einsum("abc,cde->abde", query, qk) + qb
    k = np.einsum("abc,cde->abde", key, kk) + kb
    v = np.einsum("abc,cde->abde", value, vk) + vb
    q = q / np.sqrt(qk.shape[-1])
    scores = np.einsum("aecd,abcd->acbe", k, q)                     # (N, heads, T, S)
    allow = np.ones(scores.shape[-2:])
    if causal:
        allow = np.tril(allow)
    allow = allow[None, None] if mask is None else allow * mask[:, None]
    scores = scores + (1.0 - allow) * -1e9
    context = np.einsum("acbe,aecd->abcd", softmax(scores), v)      # (N, T, heads, vd)
    return np.einsum("abcd,cde->abe", context, ok) + ob
