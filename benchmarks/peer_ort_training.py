"""symgrad against the peer it replaces: onnxruntime-training 1.19.2 (the last release of
onnxruntime's training package), AdamW, MLP 784-256-10, sparse cross-entropy.

The peer needs its own environment: onnxruntime-training and torch (its artifact
generator imports torch), which never enter symgrad's dependencies. Make one, then point
this script at its Python:

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install onnxruntime-training-cpu==1.19.2 "numpy<2" onnx==1.16.2 torch
    python benchmarks/peer_ort_training.py --peer-python /tmp/peer/bin/python

The peer runs in a worker process under that Python (``--worker``): it exports the MLP
from torch, calls ``generate_artifacts`` (AdamW, CrossEntropyLoss) and trains with
``onnxruntime.training.api`` (Module, Optimizer), the loop its documentation shows. This
process trains the same model with symgrad's Trainer.fit (AdamW with PyTorch's defaults,
weight decay 0.01). Epochs alternate between the two (A B A B ...), each timed here from
the outside, with the same thread count; the figure is the median of the per-round
steps/s ratios.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workers import LineWorker  # noqa: E402  (benchmarks/ is not a package)

SIZES = (784, 256, 10)
SETTLE_S = 0.3


# ------------------------------------------------------------------ the peer (worker process)

def worker(batch, threads):
    import onnxruntime as ort
    import torch
    from onnxruntime.training import artifacts
    from onnxruntime.training.api import CheckpointState, Module, Optimizer

    ort.set_default_logger_severity(3)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.ReLU(), torch.nn.Linear(SIZES[1], SIZES[2]))
    folder = tempfile.mkdtemp(prefix="peer-artifacts-")
    path = os.path.join(folder, "mlp.onnx")
    torch.onnx.export(net, torch.randn(batch, SIZES[0]), path, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, dynamo=False,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    import onnx
    model = onnx.load(path)
    params = [init.name for init in model.graph.initializer]
    artifacts.generate_artifacts(model, requires_grad=params, frozen_params=[],
                                 loss=artifacts.LossType.CrossEntropyLoss, optimizer=artifacts.OptimType.AdamW,
                                 artifact_directory=folder)
    state = CheckpointState.load_checkpoint(os.path.join(folder, "checkpoint"))
    module = Module(os.path.join(folder, "training_model.onnx"), state, os.path.join(folder, "eval_model.onnx"),
                    device="cpu")
    optimizer = Optimizer(os.path.join(folder, "optimizer_model.onnx"), module)
    optimizer.set_learning_rate(1e-3)
    module.train()
    rng = np.random.default_rng(0)
    data = {}
    print("ready", ort.__version__, flush=True)
    for line in sys.stdin:
        n = int(line)
        if n not in data:
            data[n] = (rng.random((n, SIZES[0]), dtype=np.float32), rng.integers(0, SIZES[2], n).astype(np.int64))
        x, y = data[n]
        order = rng.permutation(n)
        for i in range(n // batch):
            idx = order[i * batch:(i + 1) * batch]
            module(x[idx], y[idx])
            optimizer.step()
            module.lazy_reset_grad()
        print("done", flush=True)
    return 0


class PeerWorker(LineWorker):
    def __init__(self, python, batch, threads):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        super().__init__([python, os.path.abspath(__file__), "--worker", str(batch), str(threads)],
                         "onnxruntime-training", env=env, timeout=60)
        first = self.proc.stdout.readline().split()
        if not first or first[0] != "ready":
            raise SystemExit("the onnxruntime-training worker did not start (see its error above)")
        self.version = first[1]


# ------------------------------------------------------------------ symgrad (this process)

def symgrad_epoch(batch, threads):
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    from symgrad.runtime import Trainer
    model = Sequential([layers.Dense(SIZES[1], activation="relu"), layers.Dense(SIZES[2])], input_shape=(SIZES[0],))
    program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=optimizers.AdamW(1e-3, weight_decay=0.01), seed=0)
    trainer = Trainer(program, seed=0, intra_op_num_threads=threads)
    return lambda x, y, rng: trainer.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)


def measure(peer_python, batch, threads, reps, steps):
    rng = np.random.default_rng(0)
    peer = PeerWorker(peer_python, batch, threads)
    runners = {"symgrad": symgrad_epoch(batch, threads), "peer": peer.epoch}
    x = rng.random((batch * steps, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[2], len(x))
    for run in runners.values():
        run(x[:batch * 5], y[:batch * 5], rng)
    rates = {k: [] for k in runners}
    for _ in range(reps):
        for key, run in runners.items():
            time.sleep(SETTLE_S)
            t = time.perf_counter()
            run(x, y, rng)
            rates[key].append(steps / (time.perf_counter() - t))
    peer.close()
    ratio = statistics.median(a / b for a, b in zip(rates["symgrad"], rates["peer"]))
    return {k: statistics.median(v) for k, v in rates.items()}, ratio, peer.version


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(int(argv[1]), int(argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", required=True, help="the Python of an environment with onnxruntime-training")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rates, ratio, version = measure(args.peer_python, args.batch, args.threads, args.reps, args.steps)
    print(f"MLP 784-256-10, AdamW, batch {args.batch}, {args.threads} threads, medians of {args.reps} interleaved runs")
    print(f"symgrad Trainer.fit          {rates['symgrad']:8.0f} steps/s")
    print(f"onnxruntime-training {version}  {rates['peer']:8.0f} steps/s")
    print(f"symgrad / onnxruntime-training: {ratio:.2f}x (goal >= 1.2x)")
    if args.json:
        from symgrad.compiler.atomic import write_text
        write_text(args.json, json.dumps({"batch": args.batch, "threads": args.threads, "steps_per_s": rates,
                                          "ratio": ratio, "peer_version": version}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
