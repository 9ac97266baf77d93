"""``compile_model(..., portable=True)``: graphs that every runtime in the README's runtime
matrix runs, not only onnxruntime.

The one op symgrad emits that a listed runtime lacks is the fused SoftmaxCrossEntropyLoss
(primitives/fused.py). tract 0.23 refuses it ("Unimplemented"), onnx2torch 1.5 has no
converter for it, and onnxruntime-web's WebGPU backend falls back to the CPU for it. A
portable graph computes the same cross-entropy as LogSoftmax + GatherElements + Neg, which
all of them run (benchmarks/runtime_matrix.py checks every graph in each).

The default would keep the fused op where onnxruntime runs it faster, but it runs it
slower. benchmarks/fused_ce.py measured both (onnxruntime 1.32 CPU, 1 thread, the project's
2-core machine shared with other jobs; medians of interleaved runs, microseconds):

    logits (N, C)        op alone: fused  lowered  ratio
    N=64,   C=10                   31.8    15.5    0.49
    N=256,  C=10                   33.2    14.2    0.43
    N=1024, C=10                   80.0    77.9    0.97
    N=256,  C=100                  71.0    43.9    0.62
    N=1024, C=100                 203.4   148.6    0.73
    N=256,  C=1000                253.9   143.7    0.57

    MLP 64-64-10, batch 64:  train_step 338.5 -> 252.3 (0.75x), eval 86.3 -> 61.8 (0.72x)
    MLP 64-64-10, batch 256: train_step 639.6 -> 604.4 (0.94x), eval 186.5 -> 166.3 (0.89x)
    (at 100 classes the whole-graph figures moved by +-20% between repeats: noise on a shared
    machine; the op alone stayed faster lowered)

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
