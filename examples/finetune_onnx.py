"""User story: fine-tune a model you already have as ONNX, with your own loss.

1. Load (here: write) an ONNX model: a small convnet whose initializers carry exporter
   names (conv1.weight, ...), as a PyTorch export would.
2. Attach a custom loss written as an expression: cross-entropy on the logits plus a
   small penalty on their size. sympy derives its gradient; nobody writes it by hand.
3. Fine-tune with conv1 frozen, every training graph standard ONNX run by onnxruntime.
4. Export the fine-tuned model and run it in a plain onnxruntime session.

Run:  python examples/finetune_onnx.py [--out-dir DIR] [--smoke]
"""
import argparse
import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from symgrad.compiler import Loss, from_onnx, optimizers
from symgrad.compiler.atomic import write_bytes
from symgrad.runtime import Trainer


def stripes(n, rng):
    """8x8 images of horizontal (class 0) or vertical (class 1) stripes, with noise."""
    y = rng.integers(0, 2, size=n)
    phase = rng.integers(0, 2, size=n)
    grid = (np.arange(8) + phase[:, None]) % 2                      # (n, 8)
    x = np.where(y[:, None, None] == 0, grid[:, :, None], grid[:, None, :]).astype(np.float32)
    x = x + 0.3 * rng.normal(size=x.shape).astype(np.float32)
    return x[:, None], y


def pretrained_model(rng):
    """A convnet as an exporter writes it: Conv -> Relu -> MaxPool -> Conv -> Relu ->
    GlobalAveragePool -> Flatten -> Gemm, initializers named like PyTorch's state_dict."""
    w = {"conv1.weight": rng.normal(0, 0.5, (6, 1, 3, 3)), "conv1.bias": np.zeros(6),
         "conv2.weight": rng.normal(0, 0.3, (8, 6, 3, 3)), "conv2.bias": np.zeros(8),
         "fc.weight": rng.normal(0, 0.3, (2, 8)), "fc.bias": np.zeros(2)}
    nodes = [helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "convnet", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                               ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
                              [numpy_helper.from_array(a.astype(np.float32), n) for n, a in w.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default=None, help="where the .onnx files go (default: a temp folder)")
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("SYMGRAD_SMOKE") == "1",
                        help="fewer epochs (CI)")
    args = parser.parse_args(argv)
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="symgrad-finetune-")
    rng = np.random.default_rng(0)

    # 1. The model you have.
    source = os.path.join(out_dir, "pretrained.onnx")
    write_bytes(source, pretrained_model(rng).SerializeToString())

    # 2. Your loss: cross-entropy on logits plus a small logit penalty (y_true one-hot).
    loss = Loss.from_expression("-sum(y_true * log_softmax(y_pred)) + 0.01 * sum(y_pred**2)",
                                name="ce_with_logit_penalty")
    print("loss:      ", loss.expression)
    print("derivative:", loss.gradient_expression())

    # 3. Fine-tune: conv1 stays as it is; names are the file's.
    program = from_onnx(source, loss=loss, optimizer=optimizers.Adam(0.02), frozen=["conv1.weight"],
                        metrics=["accuracy"])
    print("weights:   ", ", ".join(f"{w.name}{'' if w.trainable else ' (frozen)'}" for w in program.weights))
    x, y = stripes(512, rng)
    xv, yv = stripes(256, rng)
    onehot, onehot_v = np.eye(2, dtype=np.float32)[y], np.eye(2, dtype=np.float32)[yv]
    trainer = Trainer(program)
    history = trainer.fit(x, onehot, epochs=3 if args.smoke else 8, batch_size=32, verbose=0,
                          validation_data=(xv, onehot_v))
    print("train loss per epoch:", " ".join(f"{v:.4f}" for v in history.history["loss"]))

    # 4. Export and run it anywhere onnxruntime runs.
    out = os.path.join(out_dir, "finetuned.onnx")
    trainer.export(out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: xv})[0]
    accuracy = float(np.mean(logits.argmax(axis=1) == yv))
    print(f"wrote {out}")
    print(f"held-out accuracy in onnxruntime: {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
