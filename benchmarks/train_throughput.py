"""Training throughput: symgrad's Trainer.fit against a hand-fused ONNX train step (run
the way an expert would: IOBinding, ping-ponged OrtValues, the batch gathered into bound
buffers) and against PyTorch eager when torch is installed (run in a worker process,
interleaved with the onnxruntime runs: see TorchWorker).

Workloads: MLP 784-256-10 at batch 32/64/256 with SGD and Adam, a 3-layer 1024-wide MLP,
and a small CNN on 1x28x28 (Conv 8x3x3 + ReLU, MaxPool 2, Dense 10), declared with the
layer API and, as ``onnx-cnn8-pool-10``, written as an ONNX file and imported with from_onnx.
Two sequence rows run against PyTorch eager only (no hand-fused graph): an LSTM (32 steps of
16 features, LSTM 64, Dense 10) and a transformer block (16 tokens of 32 features: 4-head
MultiHeadAttention, residual + LayerNorm, ReLU feed-forward 64, residual + LayerNorm,
Flatten, Dense 10), both with Adam. ``onnx-resnet8-w8-16-32`` is the imported-model row
(issue 16): a CIFAR-style ResNet-8 on 3x32x32, batch 32, SGD (a 3x3 conv stem, one basic
block per stage at widths 8, 16, 32: Conv + BatchNormalization + Relu, residual Add, 1x1
conv + BN downsample; GlobalAveragePool, Gemm 10), written as ONNX by onnx_models.resnet
and trained by from_onnx with batchnorm="train" (batch statistics, running ones updated,
as PyTorch's train() mode), against the same network in torch.nn (torch_models.resnet);
no hand-fused graph, and not in --quick. Same thread count
for everyone, runs interleaved (A B C A B C ...), medians reported, with the achieved
GFLOP/s (matmul and conv FLOPs) next to the measured peak of a 1024^3 ORT MatMul. A
"bare" column runs symgrad's own compiled train step in the same hand-written loop, so
fit/bare isolates the runtime's overhead from the quality of the compiled graph. Rows
without a hand-fused graph show fit GFLOP/s where their FLOPs are counted (the CNN rows).

    python benchmarks/train_throughput.py            # the table
    python benchmarks/train_throughput.py --quick    # CI smoke run
    python benchmarks/train_throughput.py --json out.json
    python benchmarks/train_throughput.py --readme   # also rewrite README.md's benchmark table

Targets (issues 5 and 7) at MLP 784-256-10, batch 64, SGD: Trainer.fit >= 0.9x the
hand-fused graph and >= 2.5x PyTorch eager.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workers import LineWorker  # noqa: E402  (benchmarks/ is not a package)

F = TensorProto.FLOAT
OPSET = 17
TARGET = ("mlp784-256-10", "sgd", 64)
ADAM = (0.9, 0.999, 1e-7)
SETTLE_S = 0.3


# ------------------------------------------------------------------ workloads

def configs(quick):
    out = [("mlp784-256-10", "sgd", b) for b in (32, 64, 256)] + [("mlp784-256-10", "adam", b) for b in (32, 64, 256)]
    out += [("mlp784-1024x3-10", "sgd", 64), ("mlp784-1024x3-10", "adam", 64), ("cnn8-pool-10", "sgd", 64),
            ("onnx-cnn8-pool-10", "sgd", 64)]
    out += [("cnn16-32-10", "sgd", 64), ("mlp784-256-10/spe8", "sgd", 32), ("mlp784-256-10/spe8", "sgd", 64)]
    out += [(name, "adam", 32) for name in SEQUENCE] + [(RESNET, "sgd", 32)]
    return [c for c in out if c[2] == 64 and (c[0] != "mlp784-1024x3-10" or c[1] == "sgd")] if quick else out


# sequence workloads: symgrad against PyTorch eager (no hand-fused contender)
SEQUENCE = {"lstm64-T32": ((32, 16), 64), "transformer-block-T16": ((16, 32), 4)}
# the two-conv CNN of issue 16 (Conv 16 3x3, pool 2, Conv 32 3x3, pool 2, Dense 10): no hand-fused graph
TWO_CONV = "cnn16-32-10"
# an imported model (issue 16): onnx_models.resnet with these arguments, a CIFAR-style ResNet-8
# (3x3 stem, one basic block per stage), from_onnx against the same network in torch.nn
RESNET = "onnx-resnet8-w8-16-32"
RESNET_ARGS = dict(blocks=(1, 1, 1), widths=(8, 16, 32), classes=10, stem="cifar")
RESNET_IMAGE = (3, 32, 32)


def base_name(name):
    """(workload, steps_per_execution): "mlp784-256-10/spe8" is the MLP compiled with
    steps_per_execution=8 (its hand-fused and PyTorch contenders are the plain MLP's)."""
    base, _, k = name.partition("/spe")
    return base, int(k or 1)


def has_fused(name):
    return name not in SEQUENCE and base_name(name)[0] not in (TWO_CONV, RESNET)


def sizes(name):
    name = base_name(name)[0]
    return {"mlp784-256-10": [784, 256, 10], "mlp784-1024x3-10": [784, 1024, 1024, 1024, 10]}.get(name)


def flops_per_step(name, batch):
    """Multiply-adds x 2 of the matmuls and convolutions: forward, weight gradients and the
    input gradients of every layer but the first."""
    name = base_name(name)[0]
    if name in SEQUENCE:
        return None
    if name == RESNET:
        model = _resnet_onnx()
        from onnx_models import train_flops
        return train_flops(model, batch)
    if name == TWO_CONV:   # forward + weight gradient of both convs, input gradient of the second
        conv1 = 2 * batch * 16 * 26 * 26 * 9
        conv2 = 2 * batch * 32 * 11 * 11 * 9 * 16
        return 2 * conv1 + 3 * conv2 + 3 * 2 * batch * 800 * 10
    if "cnn" in name:
        conv = 2 * batch * 8 * 26 * 26 * 9
        dense = 2 * batch * 8 * 13 * 13 * 10
        return 2 * conv + 3 * dense
    s = sizes(name)
    layers = [2 * batch * a * b for a, b in zip(s[:-1], s[1:])]
    return 2 * sum(layers) + sum(layers[1:])


def input_shape(name):
    name = base_name(name)[0]
    if name in SEQUENCE:
        return SEQUENCE[name][0]
    if name == RESNET:
        return RESNET_IMAGE
    return (1, 28, 28) if "cnn" in name else (784,)


# ------------------------------------------------------------------ hand-fused ONNX

class _G:
    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def n(self, op, ins, out=None, n_out=1, **attrs):
        self.k += 1
        outs = [out] if out else [f"t{self.k}_{j}" for j in range(n_out)]
        self.nodes.append(helper.make_node(op, ins, outs, name=f"n{self.k}", **attrs))
        return outs[0] if n_out == 1 else outs

    def c(self, value, dtype=np.float32):
        self.k += 1
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), f"c{self.k}"))
        return f"c{self.k}"


def _init(shape, rng):
    fan = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
    return (rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan)).astype(np.float32)


def _softmax_xent(g, logits):
    """loss = mean(-log_softmax[y]); d logits = (softmax - onehot(y)) / N."""
    logp = g.n("LogSoftmax", [logits], axis=1)
    picked = g.n("GatherElements", [logp, g.n("Unsqueeze", ["y", g.c([1], np.int64)])], axis=1)
    g.n("Neg", [g.n("ReduceMean", [picked], keepdims=0)], out="loss")
    nf = g.n("Cast", [g.n("Gather", [g.n("Shape", ["x"]), g.c(0, np.int64)])], to=F)
    onehot = g.n("OneHot", ["y", g.c(10, np.int64), g.c([0.0, 1.0])], axis=-1)
    return g.n("Div", [g.n("Sub", [g.n("Exp", [logp]), onehot]), nf])


def _update(g, params, grads, optimizer):
    slots = []
    for p, gr in zip(params, grads):
        if gr is None:          # already updated in place of its gradient (sgd_weight_step)
            continue
        if optimizer == "sgd":
            g.n("Sub", [p, g.n("Mul", ["learning_rate", gr])], out=f"next/{p}")
            continue
        b1, b2, eps = ADAM
        m = g.n("Add", [g.n("Mul", [f"m/{p}", g.c(b1)]), g.n("Mul", [gr, g.c(1 - b1)])], out=f"next/m/{p}")
        v = g.n("Add", [g.n("Mul", [f"v/{p}", g.c(b2)]), g.n("Mul", [g.n("Mul", [gr, gr]), g.c(1 - b2)])],
                out=f"next/v/{p}")
        slots += [f"m/{p}", f"v/{p}"]
        c1 = g.n("Sub", [g.c(1.0), g.n("Pow", [g.c(b1), "step"])])
        c2 = g.n("Sub", [g.c(1.0), g.n("Pow", [g.c(b2), "step"])])
        lr_t = g.n("Div", [g.n("Mul", ["learning_rate", g.n("Sqrt", [c2])]), c1])
        g.n("Sub", [p, g.n("Div", [g.n("Mul", [lr_t, m]), g.n("Add", [g.n("Sqrt", [v]), g.c(eps)])])], out=f"next/{p}")
    return slots


def fused_graph(name, optimizer, seed=0):
    """(serialized model, {state name: initial array}) of one fused train step."""
    rng = np.random.default_rng(seed)
    g, state, params, grads = _G(), {}, [], []
    if "cnn" in name:
        state = {"K": _init((8, 1, 3, 3), rng), "kb": np.zeros(8, np.float32),
                 "W": _init((8 * 13 * 13, 10), rng), "b": np.zeros(10, np.float32)}
        c = g.n("Conv", ["x", "K", "kb"], kernel_shape=[3, 3])
        r = g.n("Relu", [c])
        pooled = g.n("MaxPool", [r], kernel_shape=[2, 2], strides=[2, 2])
        flat = g.n("Flatten", [pooled], axis=1)
        d = _softmax_xent(g, g.n("Gemm", [flat, "W", "b"]))
        grads = [g.n("Gemm", [flat, d], transA=1), g.n("ReduceSum", [d, g.c([0], np.int64)], keepdims=0)]
        dflat = g.n("Gemm", [d, "W"], transB=1)

        # max-pool gradient, the fastest way we know in ORT: the 4 taps of every 2x2 window as a
        # strided Conv with one-hot kernels, the upstream value where a tap equals the window's
        # max, put back by ConvTranspose with the same kernels (relu' masks ties at 0 below)
        taps = g.c(np.eye(4, dtype=np.float32).reshape(4, 1, 2, 2))
        windows = g.n("Conv", [g.n("Reshape", [r, g.c([-1, 1, 26, 26], np.int64)]), taps], strides=[2, 2])
        is_max = g.n("Equal", [windows, g.n("Reshape", [pooled, g.c([-1, 1, 13, 13], np.int64)])])
        share = g.n("Mul", [g.n("Cast", [is_max], to=F), g.n("Reshape", [dflat, g.c([-1, 1, 13, 13], np.int64)])])
        dr = g.n("Reshape", [g.n("ConvTranspose", [share, taps], strides=[2, 2]), g.c([-1, 8, 26, 26], np.int64)])
        dc = g.n("Mul", [dr, g.n("Cast", [g.n("Greater", [c, g.c(0.0)])], to=F)])
        perm = [1, 0, 2, 3]
        dk = g.n("Conv", [g.n("Transpose", ["x"], perm=perm), g.n("Transpose", [dc], perm=perm)])
        grads = [g.n("Transpose", [dk], perm=perm), g.n("ReduceSum", [dc, g.c([0, 2, 3], np.int64)], keepdims=0)] + grads
        params = ["K", "kb", "W", "b"]
    else:
        s = sizes(name)
        hs, zs = ["x"], []
        for i, (a, b) in enumerate(zip(s[:-1], s[1:])):
            state[f"W{i}"], state[f"b{i}"] = _init((a, b), rng), np.zeros(b, np.float32)
            params += [f"W{i}", f"b{i}"]
            z = g.n("Gemm", [hs[-1], f"W{i}", f"b{i}"])
            zs.append(z)
            hs.append(g.n("Relu", [z]) if i < len(s) - 2 else z)
        d = _softmax_xent(g, hs[-1])
        grads = []
        neg_lr = g.n("Neg", ["learning_rate"]) if optimizer == "sgd" else None
        for i in reversed(range(len(s) - 1)):
            if optimizer == "sgd":   # W + x^T (-lr d): lr scales the small operand, one Add applies it
                g.n("Add", [f"W{i}", g.n("Gemm", [hs[i], g.n("Mul", [d, neg_lr])], transA=1)], out=f"next/W{i}")
                weight_grad = None
            else:
                weight_grad = g.n("Gemm", [hs[i], d], transA=1)
            grads = [weight_grad, g.n("ReduceSum", [d, g.c([0], np.int64)], keepdims=0)] + grads
            if i:
                # relu': Cast + Mul, not Where (onnxruntime's CPU Where is ~10x slower)
                d = g.n("Mul", [g.n("Gemm", [d, f"W{i}"], transB=1),
                                g.n("Cast", [g.n("Greater", [zs[i - 1], g.c(0.0)])], to=F)])
    slots = _update(g, params, grads, optimizer)
    for sname in slots:
        state[sname] = np.zeros_like(state[sname.split("/", 1)[1]])
    vi = helper.make_tensor_value_info
    x_shape = ["N", *input_shape(name)]
    inputs = [vi("x", F, x_shape), vi("y", TensorProto.INT64, ["N"]), vi("learning_rate", F, [])]
    inputs += [vi("step", F, [])] if optimizer == "adam" else []
    inputs += [vi(k, F, list(v.shape)) for k, v in state.items()]
    outputs = [vi("loss", F, [])] + [vi(f"next/{k}", F, list(v.shape)) for k, v in state.items()]
    graph = helper.make_graph(g.nodes, "fused_train_step", inputs, outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    return model.SerializeToString(), state


class FusedRunner:
    """The expert's loop: bound once, two IOBindings (ping-pong), the batch gathered into
    the bound buffer, the loss read from a bound scalar. Runs the hand-fused graph, or
    (``graph=(bytes, state)``) any train step whose state outputs are ``next/<name>``."""

    def __init__(self, name, optimizer, batch, threads, graph=None):
        raw, state = graph or fused_graph(name, optimizer)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])
        self.xb = np.zeros((batch, *input_shape(name)), np.float32)
        self.yb = np.zeros(batch, np.int64)
        self.lr, self.step, self.loss = np.array(0.01, np.float32), np.array(1, np.float32), np.zeros((), np.float32)
        pairs = {k: (ort.OrtValue.ortvalue_from_numpy(v.copy()), ort.OrtValue.ortvalue_from_numpy(v.copy()))
                 for k, v in state.items()}
        names = {i.name for i in self.sess.get_inputs()}
        self.bindings = []
        for p in (0, 1):
            b = self.sess.io_binding()
            for k, buf in (("x", self.xb), ("y", self.yb), ("learning_rate", self.lr), ("step", self.step)):
                if k in names:
                    b.bind_ortvalue_input(k, ort.OrtValue.ortvalue_from_numpy(buf))
            for k, pair in pairs.items():
                b.bind_ortvalue_input(k, pair[p])
                b.bind_ortvalue_output(f"next/{k}", pair[1 - p])
            b.bind_ortvalue_output("loss", ort.OrtValue.ortvalue_from_numpy(self.loss))
            for out in self.sess.get_outputs():          # other outputs (metrics): let ORT allocate
                if out.name != "loss" and not out.name.startswith("next/"):
                    b.bind_output(out.name)
            self.bindings.append(b)
        self.parity, self.t, self.batch = 0, 0, batch

    def epoch(self, x, y, rng):
        bs, sess, binds = self.batch, self.sess, self.bindings
        order = rng.permutation(len(x))
        losses = np.empty(len(x) // bs)
        for i in range(len(losses)):
            idx = order[i * bs:(i + 1) * bs]
            np.take(x, idx, 0, self.xb, "clip")
            np.take(y, idx, 0, self.yb, "clip")
            self.t += 1
            self.step.fill(self.t)
            sess.run_with_iobinding(binds[self.parity])
            self.parity ^= 1
            losses[i] = self.loss
        return losses


# ------------------------------------------------------------------ symgrad and torch

def _symgrad_sequence_model(name):
    from symgrad.compiler import Input, Model, Sequential, layers
    (t, f), width = SEQUENCE[name]
    if name.startswith("lstm"):
        return Sequential([layers.LSTM(width), layers.Dense(10)], input_shape=(t, f))
    x = inp = Input((t, f))
    att = layers.MultiHeadAttention(num_heads=width, key_dim=f // width)(x, x)
    x = layers.LayerNormalization()(layers.Add()([x, att]))
    ff = layers.Dense(f)(layers.Dense(2 * f, activation="relu")(x))
    x = layers.LayerNormalization()(layers.Add()([x, ff]))
    return Model(inp, layers.Dense(10)(layers.Flatten()(x)))


def symgrad_trainer(name, optimizer, threads):
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    from symgrad.runtime import Trainer
    opt = optimizers.SGD(0.01) if optimizer == "sgd" else optimizers.Adam(0.001)
    name, spe = base_name(name)
    if name == RESNET:   # batch statistics in training, as PyTorch's train() mode
        from symgrad.compiler import from_onnx
        program = from_onnx(_resnet_onnx(), loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=opt, batchnorm="train")
        return Trainer(program, seed=0, intra_op_num_threads=threads)
    if name.startswith("onnx-"):   # the same CNN as an ONNX file, imported with from_onnx
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from onnx_models import cnn8
        from symgrad.compiler import from_onnx
        program = from_onnx(cnn8(), loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizer=opt)
        return Trainer(program, seed=0, intra_op_num_threads=threads)
    if name in SEQUENCE:
        program = compile_model(_symgrad_sequence_model(name), optimizer=optimizers.Adam(0.001), seed=0,
                                loss=losses.get("sparse_categorical_crossentropy", from_logits=True))
        return Trainer(program, seed=0, intra_op_num_threads=threads)
    if name == TWO_CONV:
        stack = [layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(2), layers.Conv2D(32, 3, activation="relu"),
                 layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10)]
    elif "cnn" in name:
        stack = [layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10)]
    else:
        s = sizes(name)
        stack = [layers.Dense(u, activation="relu") for u in s[1:-1]] + [layers.Dense(s[-1])]
    program = compile_model(Sequential(stack, input_shape=input_shape(name)), steps_per_execution=spe,
                            loss=losses.get("sparse_categorical_crossentropy", from_logits=True), optimizer=opt, seed=0)
    return Trainer(program, seed=0, intra_op_num_threads=threads)


def _resnet_onnx():
    """The ResNet row's ONNX file (puts benchmarks/ on sys.path for onnx_models)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from onnx_models import resnet
    return resnet(image=RESNET_IMAGE[-1], **RESNET_ARGS)


def torch_available():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def torch_epoch_function(name, optimizer, batch, threads):
    """PyTorch eager: the same model, loss and optimizer, one epoch per call."""
    import torch
    torch.set_num_threads(threads)
    nn = torch.nn
    name = base_name(name)[0]
    if name in SEQUENCE:
        model = _torch_sequence_model(name)
    elif name == RESNET:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_models import resnet
        model = resnet(**RESNET_ARGS).train()
    elif name == TWO_CONV:
        model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 5 * 5, 10))
    elif "cnn" in name:
        model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 13 * 13, 10))
    else:
        s = sizes(name)
        mods = []
        for i, (a, b) in enumerate(zip(s[:-1], s[1:])):
            mods += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(s) - 2 else [])
        model = nn.Sequential(*mods)
    opt = torch.optim.SGD(model.parameters(), lr=0.01) if optimizer == "sgd" else torch.optim.Adam(model.parameters())

    def epoch(x, y, rng):
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(len(x) // batch):
            idx = order[i * batch:(i + 1) * batch]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return epoch


def _torch_sequence_model(name):
    import torch
    nn = torch.nn
    (t, f), width = SEQUENCE[name]
    if name.startswith("lstm"):
        class LastState(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm, self.head = nn.LSTM(f, width, batch_first=True), nn.Linear(width, 10)

            def forward(self, x):
                return self.head(self.lstm(x)[0][:, -1])
        return LastState()

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.att = nn.MultiheadAttention(f, width, batch_first=True)
            self.n1, self.n2 = nn.LayerNorm(f, eps=1e-3), nn.LayerNorm(f, eps=1e-3)
            self.ff = nn.Sequential(nn.Linear(f, 2 * f), nn.ReLU(), nn.Linear(2 * f, f))
            self.head = nn.Linear(t * f, 10)

        def forward(self, x):
            x = self.n1(x + self.att(x, x, x, need_weights=False)[0])
            x = self.n2(x + self.ff(x))
            return self.head(x.flatten(1))
    return Block()


class TorchWorker(LineWorker):
    """PyTorch in a worker process, driven in step with the onnxruntime runs.

    Measured on the 2-core machine: with torch imported into the benchmark process,
    onnxruntime ran ~40% slower (torch's OpenMP runtime and onnxruntime's pool fight over
    the same two cores), and with OMP_WAIT_POLICY=PASSIVE torch ran ~60% slower. A worker
    process keeps each framework's threads its own; the parent still interleaves the runs
    (A B C A B C ...) and times each epoch, so rounds see the same machine load."""

    def __init__(self, name, optimizer, batch, threads):
        super().__init__([sys.executable, os.path.abspath(__file__), "--torch-worker", name, optimizer, str(batch),
                          str(threads)], "PyTorch")


def torch_worker_main(name, optimizer, batch, threads):
    epoch = torch_epoch_function(name, optimizer, int(batch), int(threads))
    rng = np.random.default_rng(0)
    data = {}
    for line in sys.stdin:
        n = int(line)
        if n not in data:  # same shapes as the parent's data; the values do not matter for speed
            data[n] = (rng.random((n, *input_shape(name)), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64))
        epoch(*data[n], rng)
        print("done", flush=True)
    return 0


def matmul_peak(threads, n=1024, reps=7):
    """GFLOP/s of one n^3 float32 MatMul in onnxruntime with ``threads`` threads."""
    vi = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [vi("a", F, [n, n]), vi("b", F, [n, n])], [vi("c", F, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    sess.run(None, {"a": a, "b": a})
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        sess.run(None, {"a": a, "b": a})
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / min(times) / 1e9          # a peak: the best run


# ------------------------------------------------------------------ measurement

def measure(name, optimizer, batch, threads, reps, seconds):
    rng = np.random.default_rng(0)
    trainer = symgrad_trainer(name, optimizer, threads)
    if not has_fused(name):        # no hand-fused graph: symgrad against PyTorch
        fused = bare = None
        runners = {"symgrad": None}
    else:
        fused = FusedRunner(base_name(name)[0], optimizer, batch, threads)
        # the compiled train step in the expert's loop: fit/bare is the runtime's own overhead
        bare = FusedRunner(name, optimizer, batch, threads,
                           graph=(trainer.bundle.graphs["train_step"], trainer.state_dict()))
        runners = {"symgrad": None, "fused": fused.epoch, "bare": bare.epoch}
    worker = TorchWorker(name, optimizer, batch, threads) if torch_available() else None
    if worker is not None:
        runners["torch"] = worker.epoch
    # size the epoch to about `seconds` of fused work
    probe = rng.random((batch * 5, *input_shape(name)), dtype=np.float32)
    probe_y = rng.integers(0, 10, len(probe))
    size_by = fused.epoch if fused is not None else (
        lambda x, y, rng: trainer.fit(x, y, batch_size=batch, epochs=1, verbose=0))
    size_by(probe, probe_y, rng)
    t = time.perf_counter()
    size_by(probe, probe_y, rng)
    per_step = (time.perf_counter() - t) / 5
    steps = int(min(max(seconds / per_step, 10), 2000))
    x = rng.random((batch * steps, *input_shape(name)), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    runners["symgrad"] = lambda x, y, rng: trainer.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)
    for run in runners.values():           # warm-up: sessions, plans, allocator arenas
        run(x[:batch * 3], y[:batch * 3], rng)
    rates = {k: [] for k in runners}
    for _ in range(reps):                  # interleaved: A B C A B C ...
        for key, run in runners.items():
            # let the previous framework's worker threads stop spinning (OpenMP in torch,
            # onnxruntime's pool): on 2 cores a spinning idle pool halves the next runner
            time.sleep(SETTLE_S)
            t = time.perf_counter()
            run(x, y, rng)
            rates[key].append(steps / (time.perf_counter() - t))
    if os.environ.get("SYMGRAD_BENCH_ROUNDS"):   # every round's rates, to see the spread
        print({k: [round(r) for r in v] for k, v in rates.items()}, file=sys.stderr)
    # ratios paired within a round (the runs of one round see the same machine load), then the median
    if worker is not None:
        worker.close()
    ratios = {f"symgrad/{k}": statistics.median(a / b for a, b in zip(rates["symgrad"], rates[k]))
              for k in runners if k != "symgrad"}
    return {k: statistics.median(v) for k, v in rates.items()}, ratios, steps


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--torch-worker"]:
        return torch_worker_main(*argv[1:5])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run: fewer workloads, short runs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--readme", action="store_true", help="rewrite the benchmark table in README.md")
    parser.add_argument("--only", default=None, help="run only the workloads whose name contains this text "
                        "(e.g. --only T for the LSTM and transformer rows)")
    parser.add_argument("--peer-python", default=None, help="the Python of an environment with "
                        "onnxruntime-training 1.19.2: adds the peer row (see benchmarks/peer_ort_training.py)")
    parser.add_argument("--workload", action="append", help="only these workloads (repeatable), e.g. onnx-cnn8-pool-10")
    args = parser.parse_args(argv)
    reps = args.reps or (3 if args.quick else 7)
    seconds = 0.15 if args.quick else 0.6
    peak = matmul_peak(args.threads)
    print(f"threads {args.threads}; onnxruntime {ort.__version__}; ORT MatMul 1024^3 peak {peak:.1f} GFLOP/s; "
          f"medians of {reps} interleaved runs (ratios: medians of the per-round ratios)")
    head = f"{'workload':<21} {'opt':<5} {'batch':>5} {'steps':>5} | {'fit steps/s':>11} {'fused':>9} {'fit/fused':>9}" \
           f" {'fit/bare':>8} {'torch':>9} | {'fit GFLOP/s':>11} {'fused':>7} {'% peak':>6}"
    print(head)
    print("-" * len(head))
    results = []
    chosen = configs(args.quick)
    if args.only:
        chosen = [c for c in configs(False) if args.only in c[0]]
    for name, optimizer, batch in chosen:
        if args.workload and name not in args.workload:
            continue
        rates, ratios, steps = measure(name, optimizer, batch, args.threads, reps, seconds)
        torch_s = f"{rates['torch']:9.0f}" if "torch" in rates else f"{'-':>9}"
        if not has_fused(name):
            vs = f" (fit/torch {ratios['symgrad/torch']:.2f}x)" if "symgrad/torch" in ratios else ""
            flops = flops_per_step(name, batch)
            fit_gf = rates["symgrad"] * flops / 1e9 if flops else None
            gf = f" {fit_gf:11.2f} {'-':>7} {100 * fit_gf / peak:6.1f}" if flops else ""
            print(f"{name:<21} {optimizer:<5} {batch:>5} {steps:>5} | {rates['symgrad']:11.0f} {'-':>9} {'-':>9} "
                  f"{'-':>8} {torch_s} |{gf}{vs}")
            results.append({"workload": name, "optimizer": optimizer, "batch": batch, "steps": steps,
                            "steps_per_s": rates, **({"fit_over_torch": ratios["symgrad/torch"]}
                                                     if "symgrad/torch" in ratios else {}),
                            **({"gflops_fit": fit_gf} if flops else {})})
            continue
        flops = flops_per_step(name, batch)
        fit_gf, fused_gf = rates["symgrad"] * flops / 1e9, rates["fused"] * flops / 1e9
        ratio, overhead = ratios["symgrad/fused"], ratios["symgrad/bare"]
        print(f"{name:<21} {optimizer:<5} {batch:>5} {steps:>5} | {rates['symgrad']:11.0f} {rates['fused']:9.0f} "
              f"{ratio:9.2f} {overhead:8.2f} {torch_s} | {fit_gf:11.2f} {fused_gf:7.2f} {100 * fit_gf / peak:6.1f}")
        results.append({"workload": name, "optimizer": optimizer, "batch": batch, "steps": steps,
                        "steps_per_s": rates, "fit_over_fused": ratio, "fit_over_bare": overhead,
                        "gflops_fit": fit_gf, "gflops_fused": fused_gf})
        if "symgrad/torch" in ratios:
            results[-1]["fit_over_torch"] = ratios["symgrad/torch"]
    peer = None
    if args.peer_python:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from peer_ort_training import measure as peer_measure
        rates, ratio, version = peer_measure(args.peer_python, 64, args.threads, reps, 300)
        peer = {"workload": "mlp784-256-10", "optimizer": "adamw", "batch": 64, "steps_per_s": rates,
                "fit_over_peer": ratio, "peer_version": version}
        print(f"peer: onnxruntime-training {version}, AdamW, batch 64: {rates['peer']:.0f} steps/s, Trainer.fit "
              f"{rates['symgrad']:.0f} steps/s: {ratio:.2f}x (goal >= 1.2x)")
    target = next((r for r in results if (r["workload"], r["optimizer"], r["batch"]) == TARGET), None)
    if target is not None:
        ok = target["fit_over_fused"] >= 0.9
        print(f"\ntarget: Trainer.fit >= 0.9x fused at {TARGET}: {target['fit_over_fused']:.2f}x "
              f"{'PASS' if ok else 'FAIL'}")
        if "fit_over_torch" in target:
            ok = target["fit_over_torch"] >= 2.5
            print(f"target: Trainer.fit >= 2.5x PyTorch eager at {TARGET}: {target['fit_over_torch']:.2f}x "
                  f"{'PASS' if ok else 'FAIL'}")
    print("fit/bare: Trainer.fit against the same compiled train step in the hand-written loop (the runtime's "
          "overhead); fit/fused: against the hand-fused graph (runtime and graph together)")
    if "torch" not in (results[0]["steps_per_s"] if results else {}):
        print("(torch not importable: no PyTorch column)")
    if args.json:
        from symgrad.compiler.atomic import write_text
        write_text(args.json, json.dumps({"threads": args.threads, "peak_gflops": peak, "results": results,
                                          "peer": peer}, indent=2))
    if args.readme:
        update_readme(results, args.threads, peak, peer)
    return 0


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def readme_table(results, threads, peak, peer=None):
    torch_version = None
    if torch_available():
        from importlib.metadata import version
        torch_version = version("torch")
    lines = [f"Measured {datetime.date.today()} on {machine()}, {threads} threads for every framework, "
             f"onnxruntime {ort.__version__}" + (f", PyTorch {torch_version} (CPU)" if torch_version else "")
             + f"; ORT MatMul peak {peak:.0f} GFLOP/s. Medians of interleaved runs "
             "(`python benchmarks/train_throughput.py --readme`).", "",
             "| workload | optimizer | batch | Trainer.fit steps/s | hand-fused ONNX | fit / fused | PyTorch eager | fit / PyTorch | fit GFLOP/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rates = r["steps_per_s"]
        torch_s = f"{rates['torch']:.0f}" if "torch" in rates else "-"
        ratio_t = f"{r['fit_over_torch']:.2f}x" if "fit_over_torch" in r else "-"
        if "fused" not in rates:
            gf = f"{r['gflops_fit']:.1f}" if "gflops_fit" in r else "-"
            lines.append(f"| {r['workload']} | {r['optimizer']} | {r['batch']} | {rates['symgrad']:.0f} | - | - | "
                         f"{torch_s} | {ratio_t} | {gf} |")
            continue
        lines.append(f"| {r['workload']} | {r['optimizer']} | {r['batch']} | {rates['symgrad']:.0f} | "
                     f"{rates['fused']:.0f} | {r['fit_over_fused']:.2f}x | {torch_s} | {ratio_t} | {r['gflops_fit']:.1f} |")
    lines += ["", "`/spe8`: compiled with `steps_per_execution=8` (8 steps per onnxruntime run); its hand-fused "
              "contender is the per-step graph. Rows with `-` have no hand-fused graph."]
    if peer is not None:
        rates = peer["steps_per_s"]
        lines += ["", "| peer (same run) | optimizer | batch | Trainer.fit steps/s | onnxruntime-training "
                  f"{peer['peer_version']} steps/s | fit / peer |", "|---|---|---:|---:|---:|---:|",
                  f"| {peer['workload']} | {peer['optimizer']} | {peer['batch']} | {rates['symgrad']:.0f} | "
                  f"{rates['peer']:.0f} | {peer['fit_over_peer']:.2f}x |"]
    return "\n".join(lines)


def update_readme(results, threads, peak, peer=None):
    from symgrad.compiler.atomic import write_text
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    table = readme_table(results, threads, peak, peer)
    new, n = re.subn(r"(<!-- benchmark-table:start -->\n).*?(\n<!-- benchmark-table:end -->)",
                     lambda m: m.group(1) + table + m.group(2), text, flags=re.S)
    if n != 1:
        print("README.md has no benchmark-table markers; table not written", file=sys.stderr)
        return
    write_text(path, new)
    print("README.md benchmark table updated")


if __name__ == "__main__":
    sys.exit(main())
