"""How to emit a recurrent layer: unrolled steps or one ONNX Scan. Measures, for an LSTM
(32 units, 16 features, batch 32, float32) followed by Dense(1) and an MSE loss, at
T = 16, 64 and 256:

- symgrad's unrolled lowering: compile_model time, train_step node count and size, train
  steps/s (Trainer.train_on_batch) and inference steps/s;
- the same LSTM's forward pass as one ONNX Scan (hand-built body with the same weights,
  checked to give the same outputs): node count, size and inference steps/s.

A Scan train step would also need a reverse Scan for the backward pass (its body the
cell's derivative): symgrad does not emit one, so the training comparison is between the
unrolled train step and the forward-only Scan's cost, which bounds what a Scan lowering
could gain per step. The choice and these numbers are recorded at ops_rnn.unroll.

    python benchmarks/rnn_lowering.py [--quick] [--threads 2]
"""
import argparse
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

UNITS, FEATURES, BATCH = 32, 16, 32


def _symgrad(t, threads):
    from symgrad.compiler import Sequential, compile_model, layers, optimizers
    from symgrad.runtime.trainer import Trainer
    start = time.perf_counter()
    model = Sequential([layers.LSTM(UNITS, name="lstm"), layers.Dense(1)], input_shape=(t, FEATURES), seed=0)
    program = compile_model(model, loss="mse", optimizer=optimizers.SGD(0.01))
    compile_s = time.perf_counter() - start
    graph = program.graphs["train_step"]
    trainer = Trainer(program, intra_op_num_threads=threads)
    return program, trainer, compile_s, len(graph.graph.node), graph.ByteSize()


def _scan_lstm(t, weights):
    """The LSTM forward as one Scan over time-major x (T, N, F); Keras gate order."""
    kernel, rk, bias = weights
    u = UNITS
    f32 = TensorProto.FLOAT
    vi = helper.make_tensor_value_info
    body_nodes = [
        helper.make_node("MatMul", ["x_t", "K"], ["xk"]),
        helper.make_node("MatMul", ["h_in", "R"], ["hr"]),
        helper.make_node("Add", ["xk", "hr"], ["s"]),
        helper.make_node("Add", ["s", "B"], ["z"]),
        helper.make_node("Split", ["z", "splits"], ["zi", "zf", "zc", "zo"], axis=1),
        helper.make_node("Sigmoid", ["zi"], ["i"]), helper.make_node("Sigmoid", ["zf"], ["f"]),
        helper.make_node("Tanh", ["zc"], ["g"]), helper.make_node("Sigmoid", ["zo"], ["o"]),
        helper.make_node("Mul", ["f", "c_in"], ["fc"]), helper.make_node("Mul", ["i", "g"], ["ig"]),
        helper.make_node("Add", ["fc", "ig"], ["c_out"]), helper.make_node("Tanh", ["c_out"], ["tc"]),
        helper.make_node("Mul", ["o", "tc"], ["h_out"]),
    ]
    body = helper.make_graph(
        body_nodes, "lstm_step",
        [vi("h_in", f32, ["N", u]), vi("c_in", f32, ["N", u]), vi("x_t", f32, ["N", FEATURES])],
        [vi("h_out", f32, ["N", u]), vi("c_out", f32, ["N", u])],
        initializer=[numpy_helper.from_array(kernel, "K"), numpy_helper.from_array(rk, "R"),
                     numpy_helper.from_array(bias, "B"), numpy_helper.from_array(np.full(4, u, np.int64), "splits")])
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"]),
        helper.make_node("Concat", ["n", "u"], ["state_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["state_shape"], ["h0"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32))),
        helper.make_node("Scan", ["h0", "h0", "xt"], ["h", "c"], num_scan_inputs=1, body=body),
    ]
    graph = helper.make_graph(nodes, "scan_lstm", [vi("x", f32, ["N", t, FEATURES])], [vi("h", f32, ["N", u])],
                              initializer=[numpy_helper.from_array(np.zeros(1, np.int64), "zero"),
                                           numpy_helper.from_array(np.array([u], np.int64), "u")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model


def _rate(fn, seconds):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def measure(t, threads, seconds):
    program, trainer, compile_s, nodes, size = _symgrad(t, threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, t, FEATURES)).astype(np.float32)
    y = rng.standard_normal((BATCH, 1)).astype(np.float32)
    train = _rate(lambda: trainer.train_on_batch(x, y), seconds)
    lstm = [trainer.get_weights()[i] for i in range(3)]
    infer_graph = program.graphs["inference"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    unrolled = ort.InferenceSession(infer_graph.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {"x": x, **dict(zip(trainer.weight_names, trainer.get_weights()))}
    infer = _rate(lambda: unrolled.run(None, feeds), seconds)
    scan_model = _scan_lstm(t, lstm)
    scan = ort.InferenceSession(scan_model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    h_scan = scan.run(None, {"x": x})[0]
    dense_k, dense_b = trainer.get_weights()[3:5]
    assert np.allclose(h_scan @ dense_k + dense_b, unrolled.run(None, feeds)[0], atol=1e-4), "Scan != unrolled"
    scan_rate = _rate(lambda: scan.run(None, {"x": x}), seconds)
    n_scan = len(scan_model.graph.node) + len(scan_model.graph.node[-1].attribute[0].g.node)
    return {"T": t, "compile_s": compile_s, "train_nodes": nodes, "train_kb": size / 1024, "train_steps_s": train,
            "infer_nodes": len(infer_graph.graph.node), "infer_steps_s": infer, "scan_nodes": n_scan,
            "scan_kb": scan_model.ByteSize() / 1024, "scan_infer_steps_s": scan_rate}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="T = 8 only, short runs (CI smoke)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args(argv)
    ts = (8,) if args.quick else (16, 64, 256)
    seconds = 0.2 if args.quick else args.seconds
    print(f"LSTM({UNITS}) on (batch {BATCH}, T, {FEATURES}) + Dense(1), MSE, SGD; {args.threads} threads")
    head = ("T", "compile s", "train nodes", "train KB", "train steps/s", "infer nodes", "infer steps/s",
            "Scan nodes", "Scan KB", "Scan infer steps/s")
    print(" | ".join(head))
    for t in ts:
        r = measure(t, args.threads, seconds)
        print(f"{r['T']} | {r['compile_s']:.2f} | {r['train_nodes']} | {r['train_kb']:.0f} | {r['train_steps_s']:.0f} | "
              f"{r['infer_nodes']} | {r['infer_steps_s']:.0f} | {r['scan_nodes']} | {r['scan_kb']:.0f} | "
              f"{r['scan_infer_steps_s']:.0f}", flush=True)


if __name__ == "__main__":
    main()
