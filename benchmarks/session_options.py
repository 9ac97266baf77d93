"""onnxruntime session options for training on the CPU: which settings make
Trainer.fit fastest (issue 16). Each setting trains the same programs (MLP 784-256-10 at
batch 32 and 64 with SGD and Adam; the two-conv CNN at batch 64), the settings'
epochs interleaved (A B C ... A B C ...), medians of the per-round ratios against the
default settings.

    python benchmarks/session_options.py            # the table
    python benchmarks/session_options.py --quick    # a short run

Settings: intra-op threads (1, all cores), the parallel execution mode with two
inter-op threads (a layer's weight gradients do not depend on the gradient it passes
back, so the two can run side by side), the CPU memory arena off, memory patterns off,
and thread spinning off.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

SETTLE_S = 0.2


def program(name, optimizer):
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    if name == "cnn16-32":
        stack = [layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(2),
                 layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10)]
        shape = (1, 28, 28)
    else:
        stack, shape = [layers.Dense(256, activation="relu"), layers.Dense(10)], (784,)
    opt = optimizers.SGD(0.01) if optimizer == "sgd" else optimizers.Adam(1e-3)
    return compile_model(Sequential(stack, input_shape=shape), optimizer=opt, seed=0,
                         loss=losses.get("sparse_categorical_crossentropy", from_logits=True)), shape


def settings(cores):
    return {
        "default": dict(intra_op_num_threads=cores),
        "1 thread": dict(intra_op_num_threads=1),
        "parallel 2x": dict(intra_op_num_threads=cores, inter_op_num_threads=2, execution_mode="parallel"),
        "no arena": dict(intra_op_num_threads=cores, enable_cpu_mem_arena=False),
        "no mem pattern": dict(intra_op_num_threads=cores, enable_mem_pattern=False),
        "no spinning": dict(intra_op_num_threads=cores, config_entries={"session.intra_op.allow_spinning": "0"}),
    }


def trainer(prog, options):
    from symgrad.runtime import Trainer
    return Trainer(prog, seed=0, **options)


def measure(name, optimizer, batch, cores, reps, steps):
    prog, shape = program(name, optimizer)
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, *shape), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    runners = {label: trainer(prog, opts) for label, opts in settings(cores).items()}
    for t in runners.values():
        t.fit(x[:batch * 3], y[:batch * 3], batch_size=batch, epochs=1, verbose=0)
    rates = {k: [] for k in runners}
    for _ in range(reps):
        for label, t in runners.items():
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            t.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            rates[label].append(steps / (time.perf_counter() - start))
    return {k: (statistics.median(v), statistics.median(a / b for a, b in zip(v, rates["default"])))
            for k, v in rates.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    reps = args.reps or (3 if args.quick else 7)
    workloads = [("mlp784-256-10", "sgd", 32), ("mlp784-256-10", "sgd", 64), ("mlp784-256-10", "adam", 64),
                 ("cnn16-32", "sgd", 64)]
    if args.quick:
        workloads = workloads[1:2]
    print(f"onnxruntime {ort.__version__}, {cores} cores; steps/s (ratio to the default), medians of {reps} rounds")
    for name, optimizer, batch in workloads:
        steps = 40 if name.startswith("cnn") else 300
        result = measure(name, optimizer, batch, cores, reps, steps // (3 if args.quick else 1))
        cells = "  ".join(f"{k}: {r:.0f} ({q:.2f}x)" for k, (r, q) in result.items())
        print(f"{name} {optimizer} {batch}: {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
