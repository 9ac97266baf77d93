"""User story: a tour of the loss catalogue, from scratch.

For every catalogue loss: its formula, its derivative with respect to y_pred (worked
out by sympy), and its value and gradient norm on a small batch, computed by the ONNX
model the loss compiles to, run in onnxruntime.

Run:  python examples/loss_tour.py [--smoke] [--only huber,poisson] [--latex]
"""
import argparse
import os

import numpy as np
import onnxruntime as ort

from symgrad.compiler import losses

SMOKE = ("huber", "sparse_categorical_crossentropy", "triplet_margin")


def sample_inputs(loss, n=4, classes=3, seed=0):
    """A batch that suits the loss: integer labels for sparse losses, probabilities in
    (0, 1) for y_pred and y_true (every catalogue loss is defined there), and positive
    values for extra inputs such as a variance."""
    rng = np.random.default_rng(seed)
    shape = (n,) + tuple(loss.example_shape[1:]) if loss.example_shape else (n, classes)
    y_pred = rng.uniform(0.05, 0.95, shape).astype(np.float32)
    feeds = {"y_pred": y_pred}
    if len(shape) == 3:                 # label sequences (CTC): 3 labels in 1..C-1, then 0 (blank) padding
        labels = np.zeros(shape[:2], np.int64)
        labels[:, :3] = rng.integers(1, shape[-1], (n, 3))
        feeds["y_true"] = labels
    elif loss.labels == "sparse":
        feeds["y_true"] = rng.integers(0, classes, n).astype(np.int64)
    else:
        feeds["y_true"] = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]
    for name in loss.inputs:
        feeds[name] = rng.uniform(0.1, 1.0, (n, classes)).astype(np.float32)
    return feeds


def tour(names, show_latex=False):
    rows = []
    for name in names:
        loss = losses.get(name)
        model = loss.to_onnx(opset=17, shape=loss.example_shape)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        wanted = {i.name for i in session.get_inputs()}
        feeds = {k: v for k, v in sample_inputs(loss).items() if k in wanted}
        outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        value, grad = float(outputs["loss"]), outputs["grad_y_pred"]
        print(f"== {name}  ({loss.reduction})")
        print(f"   L          = {loss.expression}")
        print(f"   dL/dy_pred = {loss.gradient_expression()}")
        if show_latex:
            print(f"   LaTeX: {loss.latex()}")
        print(f"   value on a 4x3 batch = {value:.6f}, |grad_y_pred| = {np.linalg.norm(grad):.6f}")
        assert np.isfinite(value) and np.all(np.isfinite(grad)), name
        rows.append((name, value))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("SYMGRAD_SMOKE") == "1",
                        help=f"only {', '.join(SMOKE)} (CI size)")
    parser.add_argument("--only", help="comma-separated loss names")
    parser.add_argument("--latex", action="store_true", help="also print the LaTeX of each loss")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else (SMOKE if args.smoke else losses.names())
    rows = tour(names, show_latex=args.latex)
    print(f"\n{len(rows)} losses, every value and gradient finite.")
    return rows


if __name__ == "__main__":
    main()
