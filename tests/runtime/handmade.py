"""A small artifact bundle built by hand with onnx.helper, following docs/internals.md §3.

The runtime is tested against it independently of the compiler: an MLP
x -> Dense(H, relu) -> [Dropout] -> Dense(C) with sparse softmax cross-entropy,
accuracy, a running-mean state tensor (like BatchNorm statistics) and SGD, momentum or
Adam. ``numpy_reference`` trains the same model in NumPy, so the runtime's results are
checked against an oracle written here and not against the code under test.
"""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from symgrad.compiler.bundle import Bundle

OPSET = 17
F = TensorProto.FLOAT
STATE_MOMENTUM = 0.9
ADAM = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}


class _G:
    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def n(self, op, ins, out=None, **attrs):
        self.k += 1
        out = out or f"t{self.k}"
        self.nodes.append(helper.make_node(op, ins, [out], name=f"n{self.k}_{op}", **attrs))
        return out

    def c(self, value, dtype=np.float32):
        self.k += 1
        name = f"c{self.k}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name


def _forward(g, training, dropout, with_state):
    z1 = g.n("Add", [g.n("MatMul", ["x", "dense/kernel"]), "dense/bias"])
    a = g.n("Relu", [z1])
    scale = None
    if training and dropout:
        keep = g.n("Cast", [g.n("GreaterOrEqual", ["dropout/noise", g.c(dropout)])], to=F)
        scale = g.n("Mul", [keep, g.c(1.0 / (1.0 - dropout))])
        h = g.n("Mul", [a, scale])
    else:
        h = a
    if training and with_state:
        batch_mean = g.n("ReduceMean", [a], axes=[0], keepdims=0)
        g.n("Add", [g.n("Mul", ["stats/mean", g.c(STATE_MOMENTUM)]),
                    g.n("Mul", [batch_mean, g.c(1 - STATE_MOMENTUM)])], out="next/stats/mean")
    logits = g.n("Add", [g.n("MatMul", [h, "dense_1/kernel"]), "dense_1/bias"])
    return z1, h, scale, logits


def _loss_and_metric(g, logits, weighted):
    lse = g.n("ReduceLogSumExp", [logits], axes=[1], keepdims=1)
    y2 = g.n("Unsqueeze", ["y", g.c([1], np.int64)])
    li = g.n("Squeeze", [g.n("Sub", [lse, g.n("GatherElements", [logits, y2], axis=1)]), g.c([1], np.int64)])
    if weighted:
        li = g.n("Mul", [li, "sample_weight"])
    nf = g.n("Cast", [g.n("Gather", [g.n("Shape", ["x"]), g.c(0, np.int64)])], to=F)
    g.n("Div", [g.n("ReduceSum", [li], keepdims=0), nf], out="loss")
    eq = g.n("Cast", [g.n("Equal", [g.n("ArgMax", [logits], axis=1, keepdims=0), "y"])], to=F)
    g.n("ReduceMean", [eq], keepdims=0, out="metric/accuracy")
    return nf, y2


def _backward(g, z1, h, scale, logits, nf, weighted, classes):
    oh = g.n("OneHot", ["y", g.c(classes, np.int64), g.c([0.0, 1.0])], axis=-1)
    d = g.n("Sub", [g.n("Softmax", [logits], axis=1), oh])
    if weighted:
        d = g.n("Mul", [d, g.n("Unsqueeze", ["sample_weight", g.c([1], np.int64)])])
    dl = g.n("Div", [d, nf])
    g.n("MatMul", [g.n("Transpose", [h]), dl], out="grad/dense_1/kernel")
    g.n("ReduceSum", [dl, g.c([0], np.int64)], keepdims=0, out="grad/dense_1/bias")
    dh = g.n("MatMul", [dl, g.n("Transpose", ["dense_1/kernel"])])
    if scale is not None:
        dh = g.n("Mul", [dh, scale])
    dz = g.n("Mul", [dh, g.n("Cast", [g.n("Greater", [z1, g.c(0.0)])], to=F)])
    g.n("MatMul", [g.n("Transpose", ["x"]), dz], out="grad/dense/kernel")
    g.n("ReduceSum", [dz, g.c([0], np.int64)], keepdims=0, out="grad/dense/bias")


def _update(g, params, optimizer, momentum):
    for p in params:
        grad = f"grad/{p}"
        if optimizer == "sgd":
            g.n("Sub", [p, g.n("Mul", ["learning_rate", grad])], out=f"next/{p}")
        elif optimizer == "momentum":
            v = g.n("Sub", [g.n("Mul", [f"sgd/velocity/{p}", g.c(momentum)]), g.n("Mul", ["learning_rate", grad])],
                    out=f"next/sgd/velocity/{p}")
            g.n("Add", [p, v], out=f"next/{p}")
        else:  # adam
            b1, b2, eps = ADAM["beta_1"], ADAM["beta_2"], ADAM["epsilon"]
            m = g.n("Add", [g.n("Mul", [f"adam/m/{p}", g.c(b1)]), g.n("Mul", [grad, g.c(1 - b1)])], out=f"next/adam/m/{p}")
            v = g.n("Add", [g.n("Mul", [f"adam/v/{p}", g.c(b2)]), g.n("Mul", [g.n("Mul", [grad, grad]), g.c(1 - b2)])],
                    out=f"next/adam/v/{p}")
            c1 = g.n("Sub", [g.c(1.0), g.n("Pow", [g.c(b1), "step"])])
            c2 = g.n("Sub", [g.c(1.0), g.n("Pow", [g.c(b2), "step"])])
            lr_t = g.n("Div", [g.n("Mul", ["learning_rate", g.n("Sqrt", [c2])]), c1])
            upd = g.n("Div", [g.n("Mul", [lr_t, m]), g.n("Add", [g.n("Sqrt", [v]), g.c(eps)])])
            g.n("Sub", [p, upd], out=f"next/{p}")


def _slot_names(params, optimizer):
    if optimizer == "momentum":
        return [f"sgd/velocity/{p}" for p in params]
    if optimizer == "adam":
        return [f"adam/m/{p}" for p in params] + [f"adam/v/{p}" for p in params]
    return []


def make_bundle(in_dim=4, hidden=8, classes=3, optimizer="sgd", learning_rate=0.1, momentum=0.9,
                dropout=0.0, with_state=True, weighted=True, seed=0):
    """Return a Bundle (in memory) for the MLP described in the module docstring."""
    rng = np.random.default_rng(seed)
    shapes = {"dense/kernel": [in_dim, hidden], "dense/bias": [hidden],
              "dense_1/kernel": [hidden, classes], "dense_1/bias": [classes]}
    params = list(shapes)
    arrays = {"dense/kernel": rng.uniform(-1, 1, (in_dim, hidden)) * np.sqrt(6 / (in_dim + hidden)),
              "dense/bias": np.zeros(hidden),
              "dense_1/kernel": rng.uniform(-1, 1, (hidden, classes)) * np.sqrt(6 / (hidden + classes)),
              "dense_1/bias": np.zeros(classes)}
    state = ["stats/mean"] if with_state else []
    if with_state:
        shapes["stats/mean"] = [hidden]
        arrays["stats/mean"] = np.zeros(hidden)
    slots = _slot_names(params, optimizer)
    for s in slots:
        shapes[s] = shapes[s.split("/", 2)[2]]
        arrays[s] = np.zeros(shapes[s])
    arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}

    def vi(name, shape, t=F):
        return helper.make_tensor_value_info(name, t, shape)

    data_in = [vi("x", ["N", in_dim]), vi("y", ["N"], TensorProto.INT64)]
    if weighted:
        data_in.append(vi("sample_weight", ["N"]))
    noise_in = [vi("dropout/noise", ["N", hidden])] if dropout else []
    hyper_in = [vi("learning_rate", []), vi("step", [])]
    p_in = [vi(p, shapes[p]) for p in params]
    s_in = [vi(s, shapes[s]) for s in state]
    o_in = [vi(s, shapes[s]) for s in slots]
    scalars_out = [vi("loss", []), vi("metric/accuracy", [])]
    grads_out = [vi(f"grad/{p}", shapes[p]) for p in params]

    def nexts(names):
        return [vi(f"next/{n}", shapes[n]) for n in names]

    def model(g, name, inputs, outputs):
        graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8,
                                 producer_name="handmade").SerializeToString()

    graphs, meta = {}, {}

    def train_part(g):
        z1, h, scale, logits = _forward(g, True, dropout, with_state)
        nf, _ = _loss_and_metric(g, logits, weighted)
        _backward(g, z1, h, scale, logits, nf, weighted, classes)

    g = _G()
    train_part(g)
    _update(g, params, optimizer, momentum)
    ins = data_in + noise_in + hyper_in + p_in + s_in + o_in
    outs = scalars_out + nexts(params + state + slots)
    graphs["train_step"] = model(g, "train_step", ins, outs)
    meta["train_step"] = (ins, outs, params + state + slots)

    g = _G()
    train_part(g)
    ins = data_in + noise_in + p_in + s_in
    outs = scalars_out + grads_out + nexts(state)
    graphs["gradients"] = model(g, "gradients", ins, outs)
    meta["gradients"] = (ins, outs, state)

    g = _G()
    _update(g, params, optimizer, momentum)
    ins = [vi(f"grad/{p}", shapes[p]) for p in params] + hyper_in + p_in + o_in
    outs = nexts(params + slots)
    graphs["update"] = model(g, "update", ins, outs)
    meta["update"] = (ins, outs, params + slots)

    g = _G()
    _, _, _, logits = _forward(g, False, dropout, with_state)
    _loss_and_metric(g, logits, weighted)
    ins = data_in + p_in
    graphs["eval"] = model(g, "eval", ins, scalars_out)
    meta["eval"] = (ins, scalars_out, [])

    g = _G()
    _, _, _, logits = _forward(g, False, dropout, with_state)
    g.n("Identity", [logits], out="y_pred")
    ins = [data_in[0]] + p_in
    outs = [vi("y_pred", ["N", classes])]
    graphs["inference"] = model(g, "inference", ins, outs)
    meta["inference"] = (ins, outs, [])

    def entry(name, trainable):
        return {"name": name, "shape": shapes[name], "dtype": "float32", "trainable": trainable,
                "layer": name.split("/")[0] if "/" in name else name}

    data = {"x": {"name": "x", "shape": ["N", in_dim], "dtype": "float32"},
            "y": {"name": "y", "shape": ["N"], "dtype": "int64"}}
    if weighted:
        data["sample_weight"] = {"name": "sample_weight", "shape": ["N"], "dtype": "float32"}
    config = {"learning_rate": learning_rate}
    if optimizer == "momentum":
        config["momentum"] = momentum
    if optimizer == "adam":
        config.update(ADAM)
    manifest = {
        "format": "symgrad-bundle", "format_version": 1, "symgrad_version": "0.1.0",
        "opset": OPSET, "dtype": "float32", "data": data,
        "hyper": {"learning_rate": "learning_rate", "step": "step"},
        "params": [entry(p, True) for p in params],
        "state": [entry(s, False) for s in state],
        "slots": [dict(entry(s, False), layer=s.split("/", 2)[2].split("/")[0]) for s in slots],
        "random_inputs": ([{"name": "dropout/noise", "shape": ["N", hidden], "dtype": "float32",
                            "distribution": "uniform"}] if dropout else []),
        "optimizer": {"name": optimizer, "config": config},
        "loss": {"name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size"},
        "metrics": ["accuracy"],
        "graphs": {k: {"file": f"{k}.onnx", "inputs": [i.name for i in ins], "outputs": [o.name for o in outs],
                       "feeds": {f"next/{n}": n for n in fed}}
                   for k, (ins, outs, fed) in meta.items()},
    }
    return Bundle(manifest, graphs, arrays)


# ---------------------------------------------------------------- NumPy oracle

def numpy_forward(w, x, noise=None, dropout=0.0):
    z1 = x @ w["dense/kernel"] + w["dense/bias"]
    a = np.maximum(z1, 0)
    scale = None
    if noise is not None and dropout:
        scale = (noise >= dropout).astype(x.dtype) / (1 - dropout)
    h = a if scale is None else a * scale
    return z1, a, h, scale, h @ w["dense_1/kernel"] + w["dense_1/bias"]


def numpy_step(w, slots, x, y, sw, lr, step, optimizer="sgd", momentum=0.9, noise=None, dropout=0.0):
    """One training step in float64 NumPy: returns (loss, new weights, new slots)."""
    z1, a, h, scale, logits = numpy_forward(w, x, noise, dropout)
    n, c = logits.shape
    m = logits.max(1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(1, keepdims=True)))[:, 0]
    sw = np.ones(n) if sw is None else sw
    loss = float(np.sum((lse - logits[np.arange(n), y]) * sw) / n)
    p = np.exp(logits - lse[:, None])
    dl = (p - np.eye(c)[y]) * sw[:, None] / n
    dh = dl @ w["dense_1/kernel"].T
    if scale is not None:
        dh = dh * scale
    dz = dh * (z1 > 0)
    grads = {"dense/kernel": x.T @ dz, "dense/bias": dz.sum(0),
             "dense_1/kernel": h.T @ dl, "dense_1/bias": dl.sum(0)}
    new_w, new_s = dict(w), dict(slots)
    if "stats/mean" in w:
        new_w["stats/mean"] = STATE_MOMENTUM * w["stats/mean"] + (1 - STATE_MOMENTUM) * a.mean(0)
    for k, gk in grads.items():
        if optimizer == "sgd":
            new_w[k] = w[k] - lr * gk
        elif optimizer == "momentum":
            v = momentum * slots[f"sgd/velocity/{k}"] - lr * gk
            new_s[f"sgd/velocity/{k}"] = v
            new_w[k] = w[k] + v
        else:
            b1, b2, eps = ADAM["beta_1"], ADAM["beta_2"], ADAM["epsilon"]
            mk = b1 * slots[f"adam/m/{k}"] + (1 - b1) * gk
            vk = b2 * slots[f"adam/v/{k}"] + (1 - b2) * gk * gk
            new_s[f"adam/m/{k}"], new_s[f"adam/v/{k}"] = mk, vk
            lr_t = lr * np.sqrt(1 - b2 ** step) / (1 - b1 ** step)
            new_w[k] = w[k] - lr_t * mk / (np.sqrt(vk) + eps)
    return loss, new_w, new_s


def toy_data(n=60, in_dim=4, classes=3, seed=1):
    """Separable-ish blobs: class k centred at a fixed random point."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, (classes, in_dim))
    y = rng.integers(0, classes, n)
    x = centres[y] + rng.normal(0, 0.7, (n, in_dim))
    return x.astype(np.float32), y.astype(np.int64)
