"""Fused SoftmaxCrossEntropyLoss (the default) against the portable LogSoftmax + GatherElements
lowering (compile_model(..., portable=True)), in onnxruntime on the CPU.

Each contender runs in its own process (this script re-invoked with --worker), the
processes interleaved (A B A B ...), one intra-op thread each; the figure is the median
time of one train_step (and one eval) over the runs. compiler/portable.py records the
result where the choice is made.

    python benchmarks/fused_ce.py            # the table
    python benchmarks/fused_ce.py --quick    # CI smoke run
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


def worker(contender, batch, classes, steps):
    import onnxruntime as ort
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    model = Sequential([layers.Dense(64, activation="relu"), layers.Dense(classes)], input_shape=(64,), seed=0)
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.SGD(0.01), seed=0, portable=contender == "portable")
    rng = np.random.default_rng(0)
    values = {k: np.asarray(v) for k, v in program.state.items()}
    values.update(x=rng.normal(size=(batch, 64)).astype(np.float32),
                  y=rng.integers(0, classes, batch).astype(np.int64),
                  learning_rate=np.array(0.01, np.float32), step=np.array(1, np.float32))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    out = {}
    for kind in ("train_step", "eval"):
        sess = ort.InferenceSession(program.graphs[kind].SerializeToString(), so, providers=["CPUExecutionProvider"])
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
    results = {c: {"train_step": [], "eval": []} for c in CONTENDERS}
    for _ in range(rounds):
        for c in CONTENDERS:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", c, "--batch", str(args.batch),
                                   "--classes", str(args.classes), "--steps", str(steps)],
                                  capture_output=True, text=True, check=True)
            for kind, us in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                results[c][kind].append(us)
    print(f"MLP 64-64-{args.classes}, batch {args.batch}, onnxruntime CPU, 1 thread, median of {rounds} "
          f"interleaved runs x {steps} steps (microseconds per call)")
    print(f"{'lowering':<10} {'train_step':>12} {'eval':>10}")
    med = {c: {k: statistics.median(v) for k, v in r.items()} for c, r in results.items()}
    for c in CONTENDERS:
        print(f"{c:<10} {med[c]['train_step']:>12.1f} {med[c]['eval']:>10.1f}")
    print(f"portable / fused: train_step {med['portable']['train_step'] / med['fused']['train_step']:.3f}x, "
          f"eval {med['portable']['eval'] / med['fused']['eval']:.3f}x")


if __name__ == "__main__":
    sys.exit(main())
