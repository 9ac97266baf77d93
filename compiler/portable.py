"""``compile_model(..., portable=True)``: graphs that every runtime in the README's runtime
matrix runs, not only onnxruntime.

The one op symgrad emits that a listed runtime lacks is the fused SoftmaxCrossEntropyLoss
(primitives/fused.py). tract 0.23 refuses it ("Unimplemented"), onnx2torch 1.5 has no
converter for it, and onnxruntime-web's WebGPU backend falls back to the CPU for it. A
portable graph computes the same cross-entropy as LogSoftmax + GatherElements + Neg, which
all of them run (benchmarks/runtime_matrix.py checks every graph in each).

The default keeps the fused op: onnxruntime runs it faster. benchmarks/fused_ce.py measures
both (train_step of an MLP on 64 features, 10 classes, batch 256, CPU, 1 thread, this
project's 2-core machine, median of interleaved runs):

    fused SoftmaxCrossEntropyLoss   see FUSED_CE_MEASUREMENT
    LogSoftmax + GatherElements

The emitter reads the builder's ``portable`` flag (set by Program._emit); nothing else in
the compiler needs to know.
"""

# op type -> the runtimes that lack it (verified here, see shared reference runtimes.md)
AVOIDED_OPS = {
    "SoftmaxCrossEntropyLoss": "tract 0.23 (Unimplemented), onnx2torch 1.5 (no converter)",
}

# filled in from benchmarks/fused_ce.py
FUSED_CE_MEASUREMENT = None


def is_portable(builder):
    return bool(getattr(builder, "portable", False))
