"""User story: a custom layer, with a derived backward and with an explicit one.

- ``Swish``: y = x * sigmoid(beta * x) with a trainable beta per feature. Only the
  forward is written; the compiler derives the backward (sympy.diff).
- ``ScaledSoftsign``: y = alpha * x / (1 + |x|) with a trainable alpha, and a
  ``backward(x, y, g)`` written by hand (as torch.autograd.Function's), which the
  compiler uses instead of deriving one.

``gradcheck`` checks both against float64 central finite differences, and catches a
deliberately wrong backward. Then both layers train in a small model.

Run:  python examples/custom_layer.py
"""
import argparse
import os

import numpy as np
import sympy

from symgrad.compiler import Layer, Sequential, compile_model, gradcheck, layers, ops, optimizers
from symgrad.compiler.errors import GradcheckError
from symgrad.runtime import Trainer


class Swish(Layer):
    """x * sigmoid(beta * x); beta has one entry per feature and starts at 1."""

    def build(self, input_shape):
        self.beta = self.add_weight("beta", (input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * ops.sigmoid(self.beta * x)


class ScaledSoftsign(Layer):
    """alpha * x / (1 + |x|) with an explicit backward."""

    def build(self, input_shape):
        self.alpha = self.add_weight("alpha", (input_shape[-1],), initializer="ones")

    def call(self, x):
        return self.alpha * x / (1 + sympy.Abs(x))

    def backward(self, x, y, g):
        # g is dLoss/dy. Return dLoss/dx and {weight: dLoss/dweight}; a per-element
        # gradient for the (features,) weight is summed over the batch by the compiler.
        dx = g * self.alpha / (1 + sympy.Abs(x)) ** 2
        dalpha = g * x / (1 + sympy.Abs(x))
        return dx, {"alpha": dalpha}


class WrongSoftsign(ScaledSoftsign):
    """The same layer with a bug in its backward (the square is missing)."""

    def backward(self, x, y, g):
        return g * self.alpha / (1 + sympy.Abs(x)), {"alpha": g * x / (1 + sympy.Abs(x))}


def check(layer, x):
    errors = gradcheck(layer, x)
    worst = max(errors.values())
    print(f"gradcheck {type(layer).__name__:<15} ok: max |compiled - finite differences| = {worst:.2e} "
          f"over {', '.join(errors)}")
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("SYMGRAD_SMOKE") == "1",
                        help="fewer training epochs (CI size)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    # inputs away from 0, where |x| has no derivative and finite differences mislead
    x = rng.uniform(0.2, 2.0, (4, 5)) * rng.choice([-1.0, 1.0], (4, 5))

    results = {"swish": check(Swish(), x), "softsign": check(ScaledSoftsign(), x)}
    try:
        gradcheck(WrongSoftsign(), x)
        raise SystemExit("gradcheck missed a wrong backward")
    except GradcheckError as exc:
        print(f"gradcheck WrongSoftsign   caught the bug: {str(exc).splitlines()[0][:110]}")

    # both layers in a model: fit y = sin(x0) + x1^2/4 from 3 inputs
    xs = rng.uniform(-2, 2, (256, 3)).astype(np.float32)
    ys = (np.sin(xs[:, :1]) + xs[:, 1:2] ** 2 / 4).astype(np.float32)
    model = Sequential([layers.Dense(16), Swish(), layers.Dense(16), ScaledSoftsign(), layers.Dense(1)],
                       input_shape=(3,), seed=0)
    trainer = Trainer(compile_model(model, loss="mse", optimizer=optimizers.Adam(2e-2), seed=0), seed=0)
    before = trainer.evaluate(xs, ys, verbose=0)
    trainer.fit(xs, ys, epochs=5 if args.smoke else 30, batch_size=32, verbose=0)
    after = trainer.evaluate(xs, ys, verbose=0)
    print(f"training with both layers: mse {before:.4f} -> {after:.4f}")
    assert after < before
    results["mse"] = (before, after)
    return results


if __name__ == "__main__":
    main()
