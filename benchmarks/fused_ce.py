"""The fused SoftmaxCrossEntropyLoss against the LogSoftmax + GatherElements lowering, in
onnxruntime on the CPU: the measurement behind compiler/portable.FUSED_CE_IS_FASTER.

Each contender runs in its own process (this script re-invoked with --worker), the
processes interleaved (A B A B ...), one intra-op thread each; the figures are median
times of the op alone on (batch, classes) logits, of a train_step and of an eval of an
MLP 64-64-classes. compiler/portable.py records the result where the choice is made.

    python benchmarks/fused_ce.py            # the table
    python benchmarks/fused_ce.py --quick    # CI smoke run
    python benchmarks/fused_ce.py --batch 1024 --classes 100
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

CONTENDERS = ("fused", "portable")


def op_alone(fused):
    """Per-sample cross-entropy of (N, C) logits: the op, or its lowering, and nothing else."""
    from onnx import TensorProto as T, helper
    z = helper.make_tensor_value_info("z", T.FLOAT, ["N", "C"])
    y = helper.make_tensor_value_info("y", T.INT64, ["N"])
    if fused:
        nodes, inits = [helper.make_node("SoftmaxCrossEntropyLoss", ["z", "y"], ["loss"], reduction="none")], []
    else:
        inits = [helper.make_tensor("axis", T.INT64, [1], [-1])]
        nodes = [helper.make_node("LogSoftmax", ["z"], ["log_p"], axis=-1),
                 helper.make_node("Unsqueeze", ["y", "axis"], ["index"]),
                 helper.make_node("GatherElements", ["log_p", "index"], ["picked"], axis=1),
                 helper.make_node("Squeeze", ["picked", "axis"], ["neg"]), helper.make_node("Neg", ["neg"], ["loss"])]
    graph = helper.make_graph(nodes, "ce", [z, y], [helper.make_tensor_value_info("loss", T.FLOAT, ["N"])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def worker(contender, batch, classes, steps):
    import onnxruntime as ort
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers, portable
    portable.FUSED_CE_IS_FASTER = True      # so that the default emits the fused op for "fused"
    model = Sequential([layers.Dense(64, activation="relu"), layers.Dense(classes)], input_shape=(64,), seed=0)
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.SGD(0.01), seed=0, portable=contender == "portable")
    assert ("SoftmaxCrossEntropyLoss" in {n.op_type for n in program.graphs["eval"].graph.node}) == \
        (contender == "fused")
    rng = np.random.default_rng(0)
    values = {k: np.asarray(v) for k, v in program.state.items()}
    values.update(x=rng.normal(size=(batch, 64)).astype(np.float32),
                  y=rng.integers(0, classes, batch).astype(np.int64),
                  learning_rate=np.array(0.01, np.float32), step=np.array(1, np.float32))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    out = {}
    values["z"] = rng.normal(size=(batch, classes)).astype(np.float32)
    graphs = {"op alone": op_alone(contender == "fused"), "train_step": program.graphs["train_step"],
              "eval": program.graphs["eval"]}
    for kind, graph in graphs.items():
        sess = ort.InferenceSession(graph.SerializeToString(), so, providers=["CPUExecutionProvider"])
        feeds = {i.name: values[i.name] for i in sess.get_inputs()}
        for _ in range(20):
            sess.run(None, feeds)
        t0 = time.perf_counter()
        for _ in range(steps):
            sess.run(None, feeds)
        out[kind] = (time.perf_counter() - t0) / steps * 1e6
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", choices=CONTENDERS)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    steps = args.steps or (20 if args.quick else 400)
    if args.worker:
        return worker(args.worker, args.batch, args.classes, steps)
    rounds = 1 if args.quick else 7
    results = {c: {"op alone": [], "train_step": [], "eval": []} for c in CONTENDERS}
    for _ in range(rounds):
        for c in CONTENDERS:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", c, "--batch", str(args.batch),
                                   "--classes", str(args.classes), "--steps", str(steps)],
                                  capture_output=True, text=True, check=True)
            for kind, us in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                results[c][kind].append(us)
    print(f"MLP 64-64-{args.classes}, batch {args.batch}, onnxruntime CPU, 1 thread, median of {rounds} "
          f"interleaved runs x {steps} steps (microseconds per call)")
    print(f"{'lowering':<10} {'op alone':>10} {'train_step':>12} {'eval':>10}")
    med = {c: {k: statistics.median(v) for k, v in r.items()} for c, r in results.items()}
    for c in CONTENDERS:
        print(f"{c:<10} {med[c]['op alone']:>10.1f} {med[c]['train_step']:>12.1f} {med[c]['eval']:>10.1f}")
    print("portable / fused: " + ", ".join(f"{k} {med['portable'][k] / med['fused'][k]:.2f}x"
                                           for k in ("op alone", "train_step", "eval")))


if __name__ == "__main__":
    sys.exit(main())
