"""Data-parallel scaling on Ray: steps per second and the share of each step spent in
communication, for the single-process Trainer and RayTrainer with 1, 2 and 4 workers on
this machine; then the all-reduce choice (driver-side averaging against a ring among the
actors, at several gradient sizes) and a cost model for N machines.

RayTrainer runs with shard_transfer="indices" (the default) at every worker count, and
with "rows" at 2 workers, the measurement behind the default; with allreduce="collective"
too when torch is installed (ray.util.collective's gloo backend needs it).

Each contender runs in its own Python process, connected to one Ray cluster that this
script starts (or to RAY_ADDRESS); contenders are interleaved (A B C D A B C D ...) and
medians reported. Workload: MLP 784-256-256-10, float32, Adam, global batch 512, every
worker with one onnxruntime thread.

    python benchmarks/scaling.py              # the tables
    python benchmarks/scaling.py --quick      # CI smoke run (2 workers, 4 steps)
    python benchmarks/scaling.py --json out.json

Communication share: 1 - compute / step time, where compute is the slowest worker's
onnxruntime time (its update and gradients runs), plus the driver's averaging and its own
replica's update; the rest is Ray: serialising the shards and buffers, the object store,
scheduling the calls.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZES = [784, 256, 256, 10]
QUICK_SIZES = [32, 16, 10]          # --quick: a smoke run, not a measurement
BATCH = 512


# ------------------------------------------------------------------ one contender (child process)

def contender(kind, workers, bundle_dir, steps, sizes):
    import ray

    from symgrad.runtime import Trainer
    from symgrad.runtime.distributed import RayTrainer
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * steps, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], len(x))
    if kind == "trainer":
        tr = Trainer.load(bundle_dir, seed=0, intra_op_num_threads=1)
    else:
        ray.init(log_to_driver=False)              # RAY_ADDRESS: the parent's cluster
        tr = RayTrainer.load(bundle_dir, num_workers=workers, seed=0,
                             shard_transfer="rows" if kind == "rows" else "indices",
                             allreduce="collective" if kind == "collective" else "driver")
    tr.fit(x[:BATCH * 3], y[:BATCH * 3], batch_size=BATCH, epochs=1, verbose=0)       # warm up
    if kind != "trainer":
        tr.profile()
    start = time.perf_counter()
    tr.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    wall = time.perf_counter() - start
    out = {"kind": kind, "workers": workers, "steps_per_s": steps / wall}
    if kind != "trainer":
        p = tr.profile()
        n = p["steps"]
        compute = max(p["worker_compute_s"]) / n + (p["average_s"] + p["update_s"]) / n
        step = p["step_s"] / n
        out.update(step_ms=1e3 * step, compute_ms=1e3 * compute, comm_share=max(0.0, 1 - compute / step),
                   worker_ms=1e3 * max(p["worker_compute_s"]) / n, bytes_per_step=p["bytes_per_step"])
        tr.shutdown()
        ray.shutdown()
    print("RESULT " + json.dumps(out))


# ------------------------------------------------------------------ all-reduce: driver vs ring

def allreduce_table(ray, sizes, ks, reps):
    @ray.remote(num_cpus=0)
    class Peer:
        def __init__(self, k, n):
            self.buf = np.ones(n, np.float32)
            self.bounds = np.linspace(0, n, k + 1).astype(int)

        def chunk(self, i):
            return self.buf[self.bounds[i]:self.bounds[i + 1]].copy()

        def add(self, i, data):
            self.buf[self.bounds[i]:self.bounds[i + 1]] += data

        def put(self, i, data):
            self.buf[self.bounds[i]:self.bounds[i + 1]] = data

        def all(self):
            return self.buf

        def set_all(self, data):
            np.copyto(self.buf, data)

    def driver(peers):
        bufs = ray.get([p.all.remote() for p in peers])
        ref = ray.put(sum(bufs[1:], bufs[0].copy()) / len(bufs))
        ray.get([p.set_all.remote(ref) for p in peers])

    def ring(peers):
        k = len(peers)
        for r in range(k - 1):               # reduce-scatter: actor calls from one caller run in order
            refs = [peers[j].chunk.remote((j - r) % k) for j in range(k)]
            for j in range(k):
                peers[(j + 1) % k].add.remote((j - r) % k, refs[j])
        done = []
        for r in range(k - 1):               # all-gather
            refs = [peers[j].chunk.remote((j + 1 - r) % k) for j in range(k)]
            done = [peers[(j + 1) % k].put.remote((j + 1 - r) % k, refs[j]) for j in range(k)]
        ray.get(done + [p.chunk.remote(0) for p in peers])

    rows = []
    for k in ks:
        for nbytes in sizes:
            peers = [Peer.remote(k, nbytes // 4) for _ in range(k)]
            ray.get([p.chunk.remote(0) for p in peers])
            times = {"driver": [], "ring": []}
            for _ in range(reps):
                for name, fn in (("driver", driver), ("ring", ring)):
                    t = time.perf_counter()
                    fn(peers)
                    times[name].append(time.perf_counter() - t)
            for p in peers:
                ray.kill(p)
            rows.append({"workers": k, "bytes": nbytes, **{n: statistics.median(v) * 1e3 for n, v in times.items()}})
    return rows


# ------------------------------------------------------------------ parent

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--json")
    parser.add_argument("--contender", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contender:
        kind, workers, bundle_dir, steps = args.contender
        return contender(kind, int(workers), bundle_dir, int(steps), QUICK_SIZES if args.quick else SIZES)

    import ray

    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    worker_counts = (2,) if args.quick else (1, 2, 4)
    steps = 4 if args.quick else 40
    reps = args.reps or (1 if args.quick else 3)
    started = not os.environ.get("RAY_ADDRESS")
    if started:
        ray.init(num_cpus=max(worker_counts), include_dashboard=False, object_store_memory=300 * 2**20,
                 log_to_driver=False)
    else:
        ray.init(log_to_driver=False)
    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address)

    sizes = QUICK_SIZES if args.quick else SIZES
    model = Sequential([layers.Dense(u, activation="relu") for u in sizes[1:-1]] + [layers.Dense(sizes[-1])],
                       input_shape=(sizes[0],), seed=0)
    program = compile_model(model, losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizers.Adam(1e-3), seed=0)
    results = {}
    with tempfile.TemporaryDirectory(prefix="symgrad-scaling-") as tmp:
        bundle_dir = program.save(os.path.join(tmp, "bundle"))
        runs = [("trainer", 1)] + [("indices", k) for k in worker_counts] + ([] if args.quick else [("rows", 2)])
        if not args.quick and importlib.util.find_spec("torch") is not None:     # ray.util.collective's gloo
            runs += [("collective", k) for k in worker_counts if k > 1]
        for _ in range(reps):
            for kind, k in runs:
                proc = subprocess.run([sys.executable, __file__, "--contender", kind, str(k), bundle_dir, str(steps)]
                                      + (["--quick"] if args.quick else []),
                                      capture_output=True, text=True, env=env, timeout=600)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if proc.returncode or line is None:
                    raise SystemExit(f"{kind} x{k} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
                results.setdefault((kind, k), []).append(json.loads(line[7:]))
        reduce_rows = allreduce_table(ray, [64 * 2**10] if args.quick else [64 * 2**10, 2**20, 8 * 2**20],
                                      (2,) if args.quick else (2, 4), 2 if args.quick else 7)
    if started:
        ray.shutdown()

    def med(key, rows):
        return statistics.median(r[key] for r in rows)

    base = med("steps_per_s", results[("trainer", 1)])
    print(f"MLP {'-'.join(map(str, sizes))} float32 Adam, global batch {BATCH}, {steps} steps, "
          f"median of {reps}; {os.cpu_count()} CPU cores here")
    print("RayTrainer xN: shard_transfer='indices', allreduce='driver' (the defaults); 'rows': each step sends the "
          "rows; 'gloo': allreduce='collective' (when torch is installed)")
    print(f"{'contender':18s} {'steps/s':>8s} {'vs Trainer':>10s} {'step ms':>8s} {'worker ms':>10s} "
          f"{'comm share':>10s}")
    summary = []
    for (kind, k), rows in results.items():
        sps = med("steps_per_s", rows)
        if kind == "trainer":
            print(f"{'Trainer (1 thread)':18s} {sps:8.1f} {1.0:9.2f}x {'':>8s} {'':>10s} {'':>10s}")
            summary.append({"contender": "trainer", "steps_per_s": sps})
            continue
        label = f"RayTrainer x{k}" + {"rows": " rows", "collective": " gloo"}.get(kind, "")
        row = {"contender": f"ray x{k} {kind}", "steps_per_s": sps, "step_ms": med("step_ms", rows),
               "worker_ms": med("worker_ms", rows), "comm_share": med("comm_share", rows),
               "bytes_per_step": rows[0]["bytes_per_step"]}
        summary.append(row)
        print(f"{label:18s} {sps:8.1f} {sps / base:9.2f}x {row['step_ms']:8.1f} "
              f"{row['worker_ms']:10.1f} {100 * row['comm_share']:9.0f}%")
    grad_bytes = summary[1]["bytes_per_step"]
    print(f"\ngradient buffer per worker per step: {grad_bytes / 2**20:.2f} MiB")

    print("\nall-reduce of one buffer per worker (median ms): driver-side averaging vs a ring among the actors")
    print(f"{'workers':>7s} {'bytes':>10s} {'driver ms':>10s} {'ring ms':>8s}")
    for r in reduce_rows:
        print(f"{r['workers']:7d} {r['bytes']:10d} {r['driver']:10.2f} {r['ring']:8.2f}")

    # cost model: N machines, one worker each, driver-side averaging over a network of bandwidth bw
    fewest = min(worker_counts)
    one = next(r for r in summary if r["contender"] == f"ray x{fewest} indices")
    compute_1 = one["worker_ms"] * 1e-3 * fewest     # one worker's compute for the global batch
    print(f"\ncost model (N machines, one worker each): step(N) = {1e3 * compute_1:.1f} ms / N + "
          f"2 N x {grad_bytes / 2**20:.2f} MiB / bandwidth (driver averaging; a ring moves "
          "2 (N-1)/N x the bytes per link but takes 2 (N-1) sequential hops)")
    print(f"{'bandwidth':>12s} {'N where comm = compute':>24s} {'best N':>7s} {'step ms at best N':>18s}")
    model_rows = []
    for gbit in (1, 10, 25, 100):
        bw = gbit * 1e9 / 8
        crossover = (compute_1 * bw / (2 * grad_bytes)) ** 0.5
        best = max(1, round(crossover))
        t = compute_1 / best + 2 * best * grad_bytes / bw
        model_rows.append({"gbit_s": gbit, "crossover_n": crossover, "best_n": best, "step_ms": 1e3 * t})
        print(f"{str(gbit) + ' Gbit/s':>12s} {crossover:24.1f} {best:7d} {1e3 * t:18.1f}")
    if args.json:
        from symgrad.compiler.atomic import write_text
        write_text(args.json, json.dumps({"contenders": summary, "allreduce": reduce_rows, "cost_model": model_rows},
                                         indent=2))


if __name__ == "__main__":
    main()
