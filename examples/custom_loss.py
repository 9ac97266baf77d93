"""User story: a custom loss from an expression.

Declare a loss as a formula over y_true and y_pred, see its derivative (sympy works it
out; nobody writes it by hand), write it as an ONNX model, and run that model in
onnxruntime on data. The loss here is the pseudo-Huber loss with a parameter delta:

    L = delta^2 * (sqrt(1 + ((y_pred - y_true) / delta)^2) - 1)

Run:  python examples/custom_loss.py [--out-dir DIR]
"""
import argparse
import os
import tempfile

import numpy as np
import onnxruntime as ort

from symgrad.compiler import Loss
from symgrad.compiler.atomic import write_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default=None, help="where pseudo_huber.onnx goes (default: a temp folder)")
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("SYMGRAD_SMOKE") == "1",
                        help="accepted for CI; this example is already small")
    args = parser.parse_args(argv)
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="symgrad-custom-loss-")

    # 1. Declare: a string is parsed against a whitelist (no eval); delta is a parameter.
    delta = 1.5
    loss = Loss.from_expression("delta**2 * (sqrt(1 + ((y_pred - y_true)/delta)**2) - 1)",
                                name="pseudo_huber", params={"delta": delta}, reduction="mean")
    print("loss:      ", loss.expression)
    print("derivative:", loss.gradient_expression())
    print("LaTeX:     ", loss.latex())

    # 2. Emit: inputs y_true, y_pred; outputs loss (the mean) and grad_y_pred.
    model = loss.to_onnx(opset=17)
    path = os.path.join(out_dir, "pseudo_huber.onnx")
    write_bytes(path, model.SerializeToString())          # atomic: never half a file
    print(f"wrote {path}: {len(model.graph.node)} nodes, "
          f"inputs {[i.name for i in model.graph.input]}, outputs {[o.name for o in model.graph.output]}")

    # 3. Run it on data in onnxruntime.
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(8, 3)).astype(np.float32)
    y_pred = (y_true + rng.normal(scale=2.0, size=(8, 3))).astype(np.float32)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    value, grad = session.run(["loss", "grad_y_pred"], {"y_true": y_true, "y_pred": y_pred})
    print(f"loss on an 8x3 batch: {float(value):.6f}")

    # 4. Check against the formula written out in NumPy (float64): the ONNX graph computes
    # the same value, and its gradient is d(mean L)/dy_pred = (e / sqrt(1 + (e/delta)^2)) / n.
    e = y_pred.astype(np.float64) - y_true
    ref_value = np.mean(delta ** 2 * (np.sqrt(1 + (e / delta) ** 2) - 1))
    ref_grad = e / np.sqrt(1 + (e / delta) ** 2) / e.size
    print(f"NumPy:                {ref_value:.6f}  (max |grad - NumPy grad| = "
          f"{np.max(np.abs(grad - ref_grad)):.2e})")
    assert abs(float(value) - ref_value) < 1e-5 * max(1.0, abs(ref_value))
    assert np.allclose(grad, ref_grad, rtol=1e-4, atol=1e-7)
    return float(value)


if __name__ == "__main__":
    main()
