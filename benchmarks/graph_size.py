"""Node count of our compiled train step against a hand-written fused ONNX train step.

Workload: MLP 784-256-10 (relu), sparse categorical cross-entropy on logits, batch mean,
with SGD and with Adam. The hand graph is what a person fluent in ONNX writes for the
same step: Gemm with bias and transA/transB, Relu, SoftmaxCrossEntropyLoss, the softmax
gradient as exp(log_prob) - one_hot over N, Where for relu', and the optimizer as plain
arithmetic. Before counting, both graphs run on one batch and must agree on the loss and
every updated tensor, so the comparison is between equal computations.

    python benchmarks/graph_size.py           # the table
    python benchmarks/graph_size.py --quick   # CI smoke run (small widths, same graphs)

Goal (issue 4): ours within 1.3x of the hand graph's node count.
"""
import argparse
import collections
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from symgrad.compiler import compile_model, losses, optimizers

GOAL = 1.3
F = TensorProto.FLOAT


# ------------------------------------------------------------------ the hand-written graph

def hand_train_step(sizes, optimizer="sgd", opset=17, fused_loss=True, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """The fused train step for an MLP with one hidden relu layer, written node by node;
    ``fused_loss=False`` writes the loss with LogSoftmax and GatherElements instead of
    SoftmaxCrossEntropyLoss. Returns (model, {node name: section})."""
    n_in, hidden, n_out = sizes
    nodes, sections = [], {}
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array([n_out], np.int64), "depth"),
             numpy_helper.from_array(np.array([0.0, 1.0], np.float32), "off_on"),
             numpy_helper.from_array(np.array([0], np.int64), "axis0")]

    def node(section, op, inputs, outputs, **attrs):
        n = helper.make_node(op, inputs, outputs, name=f"{section}/{op}_{len(nodes)}", **attrs)
        nodes.append(n)
        sections[n.name] = section

    params = {"dense/kernel": (n_in, hidden), "dense/bias": (hidden,),
              "dense_1/kernel": (hidden, n_out), "dense_1/bias": (n_out,)}
    # forward
    node("forward", "Gemm", ["x", "dense/kernel", "dense/bias"], ["z1"])
    node("forward", "Relu", ["z1"], ["h"])
    node("forward", "Gemm", ["h", "dense_1/kernel", "dense_1/bias"], ["logits"])
    if fused_loss:  # mean cross-entropy and the log-probabilities in one op
        node("loss", "SoftmaxCrossEntropyLoss", ["logits", "y"], ["loss", "log_prob"], reduction="mean")
    else:
        inits.append(numpy_helper.from_array(np.array([-1], np.int64), "last"))
        node("loss", "LogSoftmax", ["logits"], ["log_prob"], axis=-1)
        node("loss", "Unsqueeze", ["y", "last"], ["y_col"])
        node("loss", "GatherElements", ["log_prob", "y_col"], ["picked"], axis=1)
        node("loss", "ReduceMean", ["picked"], ["mean_picked"], keepdims=0)
        node("loss", "Neg", ["mean_picked"], ["loss"])
    # backward: d loss / d logits = (softmax - onehot) / N
    node("backward", "Exp", ["log_prob"], ["prob"])
    node("backward", "OneHot", ["y", "depth", "off_on"], ["onehot"], axis=-1)
    node("backward", "Sub", ["prob", "onehot"], ["diff"])
    node("backward", "Shape", ["x"], ["n_i"], start=0, end=1)
    node("backward", "Cast", ["n_i"], ["n"], to=F)
    node("backward", "Div", ["diff", "n"], ["dlogits"])
    node("backward", "Gemm", ["h", "dlogits"], ["grad/dense_1/kernel"], transA=1)
    node("backward", "ReduceSum", ["dlogits", "axis0"], ["grad/dense_1/bias"], keepdims=0)
    node("backward", "Gemm", ["dlogits", "dense_1/kernel"], ["dh"], transB=1)
    node("backward", "Greater", ["z1", "zero"], ["active"])
    node("backward", "Where", ["active", "dh", "zero"], ["dz1"])
    node("backward", "Gemm", ["x", "dz1"], ["grad/dense/kernel"], transA=1)
    node("backward", "ReduceSum", ["dz1", "axis0"], ["grad/dense/bias"], keepdims=0)

    inputs = [helper.make_tensor_value_info("x", F, ["N", n_in]),
              helper.make_tensor_value_info("y", TensorProto.INT64, ["N"]),
              helper.make_tensor_value_info("learning_rate", F, []),
              helper.make_tensor_value_info("step", F, [])]
    inputs += [helper.make_tensor_value_info(p, F, list(s)) for p, s in params.items()]
    outputs = [helper.make_tensor_value_info("loss", F, [])]
    outputs += [helper.make_tensor_value_info(f"next/{p}", F, list(s)) for p, s in params.items()]
    if optimizer == "sgd":
        for p in params:
            node("update", "Mul", ["learning_rate", f"grad/{p}"], [f"step/{p}"])
            node("update", "Sub", [p, f"step/{p}"], [f"next/{p}"])
    else:  # Adam, Keras form: alpha = lr sqrt(1 - b2^t) / (1 - b1^t); p -= alpha m / (sqrt(v) + eps)
        for name, value in {"one": 1.0, "b1": beta_1, "b2": beta_2, "c1": 1 - beta_1, "c2": 1 - beta_2,
                            "eps": epsilon}.items():
            inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
        node("update", "Pow", ["b1", "step"], ["b1t"])
        node("update", "Pow", ["b2", "step"], ["b2t"])
        node("update", "Sub", ["one", "b1t"], ["bc1"])
        node("update", "Sub", ["one", "b2t"], ["bc2"])
        node("update", "Sqrt", ["bc2"], ["sbc2"])
        node("update", "Mul", ["learning_rate", "sbc2"], ["lr_sbc2"])
        node("update", "Div", ["lr_sbc2", "bc1"], ["alpha"])
        for p, s in params.items():
            m, v, g = f"adam/m/{p}", f"adam/v/{p}", f"grad/{p}"
            inputs += [helper.make_tensor_value_info(m, F, list(s)), helper.make_tensor_value_info(v, F, list(s))]
            outputs += [helper.make_tensor_value_info(f"next/{m}", F, list(s)),
                        helper.make_tensor_value_info(f"next/{v}", F, list(s))]
            node("update", "Mul", ["b1", m], [f"{m}/a"])
            node("update", "Mul", ["c1", g], [f"{m}/b"])
            node("update", "Add", [f"{m}/a", f"{m}/b"], [f"next/{m}"])
            node("update", "Mul", [g, g], [f"{v}/g2"])
            node("update", "Mul", ["b2", v], [f"{v}/a"])
            node("update", "Mul", ["c2", f"{v}/g2"], [f"{v}/b"])
            node("update", "Add", [f"{v}/a", f"{v}/b"], [f"next/{v}"])
            node("update", "Sqrt", [f"next/{v}"], [f"{p}/sv"])
            node("update", "Add", [f"{p}/sv", "eps"], [f"{p}/den"])
            node("update", "Mul", ["alpha", f"next/{m}"], [f"{p}/num"])
            node("update", "Div", [f"{p}/num", f"{p}/den"], [f"{p}/delta"])
            node("update", "Sub", [p, f"{p}/delta"], [f"next/{p}"])
    graph = helper.make_graph(nodes, f"hand_{optimizer}", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="hand",
                              ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model, sections


# ------------------------------------------------------------------ our graph

def our_program(sizes, optimizer):
    from symgrad.compiler import Sequential, layers
    model = Sequential([layers.Dense(sizes[1], activation="relu"), layers.Dense(sizes[2])],
                       input_shape=(sizes[0],))
    opt = optimizers.SGD(0.1) if optimizer == "sgd" else optimizers.Adam(1e-3)
    loss = losses.get("sparse_categorical_crossentropy", from_logits=True)
    return compile_model(model, loss, opt)


def our_sections(program):
    loss_name, opt_name = program.loss.name, program.optimizer.name
    out = {}
    for n in program.graphs["train_step"].graph.node:
        if n.name.startswith("grad/"):
            out[n.name] = "backward"
        elif n.name.startswith(loss_name + "/"):
            out[n.name] = "loss"
        elif n.name.startswith(opt_name + "/"):
            out[n.name] = "update"
        else:
            out[n.name] = "forward"
    return out


def agree(program, hand, sizes, batch=32):
    """Run both train steps on one batch; the largest relative difference over all outputs."""
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(batch, sizes[0])).astype(np.float32),
             "y": rng.integers(0, sizes[2], size=batch).astype(np.int64),
             "learning_rate": np.array(0.1, np.float32), "step": np.array(3.0, np.float32)}
    feeds.update({k: (v + rng.uniform(0, 0.01, size=v.shape)).astype(np.float32) for k, v in program.state.items()})
    ours = ort.InferenceSession(program.graphs["train_step"].SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = ort.InferenceSession(hand.SerializeToString(), providers=["CPUExecutionProvider"])
    a = dict(zip([o.name for o in ours.get_outputs()],
                 ours.run(None, {i.name: feeds[i.name] for i in ours.get_inputs()})))
    b = dict(zip([o.name for o in theirs.get_outputs()],
                 theirs.run(None, {i.name: feeds[i.name] for i in theirs.get_inputs()})))
    assert set(b) <= set(a), sorted(set(b) - set(a))
    worst = 0.0
    for k in b:
        worst = max(worst, float(np.max(np.abs(a[k] - b[k]) / (np.abs(b[k]) + 1e-3))))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small widths for a CI smoke run")
    args = parser.parse_args(argv)
    sizes = (32, 16, 10) if args.quick else (784, 256, 10)
    rows = []
    for opt in ("sgd", "adam"):
        t0 = time.perf_counter()
        program = our_program(sizes, opt)
        compile_s = time.perf_counter() - t0
        ours = collections.Counter(our_sections(program).values())
        n_ours = len(program.graphs["train_step"].graph.node)
        for fused in (True, False):
            hand, hand_sections = hand_train_step(sizes, opt, fused_loss=fused)
            diff = agree(program, hand, sizes)
            if diff > 1e-3:
                raise SystemExit(f"{opt}: our train step and the hand graph disagree (max rel diff {diff:.2e})")
            rows.append((opt, "fused" if fused else "plain", n_ours, len(hand.graph.node), ours,
                         collections.Counter(hand_sections.values()), diff, compile_s))

    print(f"MLP {'-'.join(map(str, sizes))}, sparse categorical cross-entropy on logits, opset 17")
    print(f"{'optimizer':<10}{'hand':<7}{'ours':>5}{'hand':>6}{'ratio':>8}  {'<=' + str(GOAL) + 'x':<8}"
          f"{'forward':>9}{'loss':>8}{'backward':>10}{'update':>9}{'max rel diff':>14}{'compile s':>11}")
    for opt, variant, n_ours, n_hand, ours, theirs, diff, compile_s in rows:
        ratio = n_ours / n_hand
        status = ("met" if ratio <= GOAL else "missed") if variant == "fused" else "-"
        split = "".join(f"{f'{ours[s]}/{theirs[s]}':>{w}}" for s, w in
                        (("forward", 9), ("loss", 8), ("backward", 10), ("update", 9)))
        print(f"{opt:<10}{variant:<7}{n_ours:>5}{n_hand:>6}{ratio:>7.2f}x  {status:<8}{split}"
              f"{diff:>14.1e}{compile_s:>11.2f}")
    print("hand 'fused': SoftmaxCrossEntropyLoss (the goal's reference); 'plain': LogSoftmax + GatherElements.\n"
          "sections: ours/hand node counts; max rel diff: the two train steps' outputs on one batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
