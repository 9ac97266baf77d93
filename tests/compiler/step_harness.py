"""One optimizer step of a one-layer model against a NumPy update: the model is compiled
with mean squared error and plain SGD (float64); the reference gradient is the central
difference of mse(reference(x, *weights), y), computed here in NumPy."""
import numpy as np

from symgrad.compiler import Sequential, optimizers
from symgrad.compiler.gradcheck import Runner
from symgrad.compiler.program import compile_model


def check_sgd_step(layers, x, reference, lr=0.1, seed=0, eps=1e-6, rtol=1e-6, atol=1e-8):
    """layers: a layer or a list (a Sequential); reference(x, *weights in model order)."""
    model = Sequential(layers if isinstance(layers, list) else [layers], input_shape=x.shape[1:])
    program = compile_model(model, "mse", optimizers.SGD(lr), dtype="float64")
    weights = [w for w in model.weights]
    ws = [np.asarray(w.initial, dtype=np.float64) for w in weights]
    rng = np.random.default_rng(seed)
    ws = [a + (0.1 * rng.standard_normal(a.shape) if w.trainable else 0) for a, w in zip(ws, weights)]
    y = rng.standard_normal(reference(x, *ws).shape)

    def loss(*args):
        return np.mean((reference(x, *args) - y) ** 2)

    pool = {"x": x, "y": y, "learning_rate": np.array(lr), "step": np.array(1.0)}
    pool.update({w.name: a for w, a in zip(weights, ws)})
    feeds = {n: pool[n] for n in program.manifest["graphs"]["train_step"]["inputs"]}
    out = Runner(program.graphs["train_step"])(feeds)
    assert np.isclose(out["loss"], loss(*ws), rtol=1e-10), (out["loss"], loss(*ws))
    for i, (w, a) in enumerate(zip(weights, ws)):
        if not w.trainable:
            continue
        g = np.zeros_like(a)
        for idx in np.ndindex(*a.shape):
            vals = []
            for sign in (1, -1):
                args = list(ws)
                b = a.copy()
                b[idx] += sign * eps
                args[i] = b
                vals.append(loss(*args))
            g[idx] = (vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(out[f"next/{w.name}"], a - lr * g, rtol=rtol, atol=atol,
                                   err_msg=f"SGD step of {w.name}")
    return out
