"""``compile_model(..., portable=True)``: graphs that every runtime in the README's runtime
matrix runs, not only onnxruntime.

The one op symgrad emits that a listed runtime lacks is the fused SoftmaxCrossEntropyLoss
(primitives/fused.py). tract 0.23 refuses it ("Unimplemented"), onnx2torch 1.5 has no
converter for it, and onnxruntime-web's WebGPU backend falls back to the CPU for it. A
portable graph computes the same cross-entropy as LogSoftmax + GatherElements + Neg, which
all of them run (benchmarks/runtime_matrix.py checks every graph in each; onnx2torch runs
the MLP and MSE programs' portable graphs, tests/test_onnx2torch.py, but its Conv converter
wants the kernel as an initializer, which a training graph's weight input is not).

The default would keep the fused op where onnxruntime runs it faster, but it runs it
slower. benchmarks/fused_ce.py measured both (onnxruntime 1.32 CPU, 1 thread, each lowering
in its own process, 7 interleaved runs x 400 calls, medians in microseconds; the project's
2-core machine was shared with other jobs, so absolute times are inflated, ratios held):

    MLP 64-64-C, batch N     op alone (fused -> lowered)   train_step          eval
    N=64,  C=10              101.6 ->  59.3 (0.58x)        519.6 ->  393.0     182.3 ->  121.8
    N=256, C=10              121.5 ->  75.6 (0.62x)       1454.0 -> 1214.2     450.6 ->  312.5
    N=256, C=100             111.8 ->  82.1 (0.73x)       1410.5 -> 1274.6     384.2 ->  361.5
    N=256, C=1000            684.7 -> 354.5 (0.52x)       6863.9 -> 6600.5    2212.6 -> 1812.0

So FUSED_CE_IS_FASTER is False and every graph gets the lowering; portable=True is the
guarantee that it stays so whatever a later measurement (another provider, another
onnxruntime) decides. The emitter reads the builder's ``portable`` flag (set by
Program._emit) through is_portable; nothing else in the compiler needs to know.
"""

# op type -> the runtimes that lack it (verified here, see shared reference runtimes.md)
AVOIDED_OPS = {
    "SoftmaxCrossEntropyLoss": "tract 0.23 (Unimplemented), onnx2torch 1.5 (no converter)",
}

# benchmarks/fused_ce.py: the fused op is slower in onnxruntime's CPU provider at every
# size measured (table above), so no graph emits it.
FUSED_CE_IS_FASTER = False


def is_portable(builder):
    return bool(getattr(builder, "portable", False))
