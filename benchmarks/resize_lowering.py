"""Resize's forward lowering: onnxruntime's Resize op against the per-axis matrices
symgrad differentiates through (Gather per axis for nearest, MatMul per axis for linear).
Each contender runs in its own process; the processes are interleaved.

    python benchmarks/resize_lowering.py            # (8, 64, 56, 56) float32, 2x, 5 rounds
    python benchmarks/resize_lowering.py --quick    # smoke size
"""
import argparse
import statistics
import subprocess
import sys
import time

import numpy as np


def build(contender, mode, shape):
    from onnx import TensorProto, helper
    from symgrad.compiler import ir, ops
    from symgrad.compiler.build import build_ir
    from symgrad.compiler.emit import ir_version_for
    from symgrad.compiler.gradcheck import emit_graph
    ctm = "half_pixel" if mode == "linear" else "asymmetric"
    nearest = "floor"
    if contender == "symgrad":
        x = ir.input_value("x", shape)
        y = build_ir(ops.resize(x.sym, scales=(1, 1, 2, 2), mode=mode, coordinate_transformation_mode=ctm,
                                nearest_mode=nearest))
        return emit_graph([("x", x)], [("y", y)], dtype="float32")
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, coordinate_transformation_mode=ctm,
                            nearest_mode=nearest)
    graph = helper.make_graph([node], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[scales])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=ir_version_for(17))


def worker(contender, mode, shape, iters, threads):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(build(contender, mode, shape).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess.run(None, {"x": x})
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, {"x": x})
        times.append(time.perf_counter() - t)
    print(statistics.median(times) * 1e3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", nargs=2)
    args = p.parse_args()
    shape = (2, 8, 16, 16) if args.quick else (8, 64, 56, 56)
    iters = 3 if args.quick else 20
    if args.worker:
        return worker(args.worker[0], args.worker[1], shape, iters, args.threads)
    rounds = 1 if args.quick else args.rounds
    results = {}
    for _ in range(rounds):
        for mode in ("nearest", "linear"):
            for contender in ("onnx Resize", "symgrad"):
                out = subprocess.run([sys.executable, __file__, "--worker", contender.split()[-1] if contender ==
                                      "symgrad" else "onnx", mode, "--threads", str(args.threads)]
                                     + (["--quick"] if args.quick else []), capture_output=True, text=True, check=True)
                results.setdefault((mode, contender), []).append(float(out.stdout.strip()))
    print(f"2x upsampling of {shape} float32, {args.threads} thread(s), median of {rounds} process(es) x {iters} runs")
    print(f"{'mode':8} {'contender':12} {'ms':>8}")
    for (mode, contender), ts in results.items():
        print(f"{mode:8} {contender:12} {statistics.median(ts):8.2f}")


if __name__ == "__main__":
    main()
