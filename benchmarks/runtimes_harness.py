"""Run every graph of symgrad's bundles in other ONNX runtimes and compare with onnxruntime.

Shared by tests/test_runtimes.py (OpenVINO, tract, onnx.reference) and
benchmarks/runtime_matrix.py (those plus onnxruntime-node and onnxruntime-web in
Chromium). Three programs cover the op set the compiler emits for common models:

- ``mlp``: Dense-ReLU-Dense, sparse softmax cross-entropy from logits, Adam;
- ``cnn_bn``: Conv2D-BatchNorm-ReLU-MaxPool-Dense, categorical cross-entropy, SGD with momentum
  (the conv has no bias: a bias feeding batch norm has a true gradient of exactly 0,
  which each runtime rounds differently; see shared/reference/runtimes.md);
- ``mse``: Dense-tanh-Dense regressor, mean squared error, Adam.

Feeds are fixed: the state after two onnxruntime steps (so that optimizer slots are
non-trivial), a seeded batch, and for ``update`` the gradients onnxruntime computed.
The figure per graph is the largest, over its outputs, of max|a - b| / max|b| (b:
onnxruntime's output), a norm-wise relative difference that does not blow up where an
output element happens to be near zero.
"""
import os
import tempfile

import numpy as np
import onnx

KINDS = ("inference", "train_step", "gradients", "update", "eval")
PROGRAMS = ("mlp", "cnn_bn", "mse")
BATCH = 6


def build_program(kind, portable=False):
    from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers
    if kind == "mlp":
        model = Sequential([layers.Dense(16, activation="relu"), layers.Dense(10)], input_shape=(64,), seed=1)
        loss, opt = losses.get("sparse_categorical_crossentropy", from_logits=True), optimizers.Adam(1e-2)
    elif kind == "cnn_bn":
        model = Sequential([layers.Conv2D(4, 3, use_bias=False), layers.BatchNormalization(), layers.ReLU(),
                            layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3)], input_shape=(1, 8, 8), seed=2)
        loss = losses.get("categorical_crossentropy", from_logits=True)
        opt = optimizers.SGD(0.05, momentum=0.9)
    elif kind == "mse":
        model = Sequential([layers.Dense(8, activation="tanh"), layers.Dense(2)], input_shape=(5,), seed=3)
        loss, opt = "mse", optimizers.Adam(1e-2)
    else:
        raise ValueError(f"unknown program {kind!r}; accepted: {', '.join(PROGRAMS)}")
    metrics = ["accuracy"] if kind != "mse" else None
    return compile_model(model, loss=loss, optimizer=opt, metrics=metrics, seed=0, portable=portable)


def batch(kind, n=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "mlp":
        return rng.normal(size=(n, 64)).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)
    if kind == "cnn_bn":
        return rng.normal(size=(n, 1, 8, 8)).astype(np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return rng.normal(size=(n, 5)).astype(np.float32), rng.normal(size=(n, 2)).astype(np.float32)


def graph_feeds(program):
    """({kind: {input name: array}}, {kind: onnx bytes}) for one program, with onnxruntime's
    gradients as the update graph's ``grad/*`` inputs."""
    from symgrad.runtime import Trainer
    name = program._harness_kind
    x, y = batch(name)
    trainer = Trainer(program, seed=0)
    for s in range(2):
        xs, ys = batch(name, seed=10 + s)
        trainer.train_on_batch(xs, ys)
    state = trainer.state_dict()
    manifest, graphs = trainer.manifest, {k: program.graphs[k].SerializeToString() for k in KINDS}
    values = dict(state, x=x, y=y, learning_rate=np.float32(trainer.learning_rate),
                  step=np.float32(trainer.step + 1))
    grads = run_onnxruntime(graphs["gradients"], _pick(manifest, "gradients", values))
    values.update({k: v for k, v in grads.items() if k.startswith("grad/")})
    feeds = {k: _pick(manifest, k, values) for k in KINDS}
    return feeds, graphs


def _pick(manifest, kind, values):
    return {n: np.asarray(values[n]) for n in manifest["graphs"][kind]["inputs"]}


def load_program(kind, portable=False):
    program = build_program(kind, portable=portable)
    program._harness_kind = kind
    return program


# ------------------------------------------------------------------ runtimes
def run_onnxruntime(model_bytes, feeds):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def run_reference(model_bytes, feeds):
    from onnx.reference import ReferenceEvaluator
    model = onnx.load_from_string(model_bytes)
    names = [o.name for o in model.graph.output]
    return dict(zip(names, ReferenceEvaluator(model).run(names, feeds)))


def run_openvino(model_bytes, feeds):
    """OpenVINO needs static shapes: the symbolic batch dimension is fixed to the feed's."""
    import openvino as ov
    core = ov.Core()
    model = core.read_model(model_bytes, b"")
    model.reshape({inp.get_any_name(): ov.PartialShape(list(np.shape(feeds[inp.get_any_name()])))
                   for inp in model.inputs})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    for i, inp in enumerate(compiled.inputs):   # np.ascontiguousarray would make a 0-d array 1-d
        request.set_input_tensor(i, ov.Tensor(np.array(feeds[inp.get_any_name()], order="C")))
    request.infer()
    names = [o.name for o in onnx.load_from_string(model_bytes).graph.output]   # by position: OpenVINO
    return {n: np.array(request.get_output_tensor(i).data) for i, n in enumerate(names)}  # merges aliases


_TRACT_TYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.int64): "i64"}


def run_tract(model_bytes, feeds):
    """tract wants every input's shape and type as a fact; its outputs come back by position."""
    import tract
    from symgrad.compiler.atomic import write_bytes
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bytes(os.path.join(tmp, "model.onnx"), model_bytes)
        model = tract.onnx().load(path)
        order = [model.input_name(i) for i in range(model.input_count())]
        for i, name in enumerate(order):
            a = np.asarray(feeds[name])
            model.set_input_fact(i, ",".join([str(d) for d in a.shape] + [_TRACT_TYPES[a.dtype]]))
        runnable = model.into_model().into_runnable()
        outs = runnable.run([np.array(feeds[n], order="C") for n in order])  # keeps 0-d arrays 0-d
    names = [o.name for o in onnx.load_from_string(model_bytes).graph.output]
    return {n: o.to_numpy() for n, o in zip(names, outs)}


PYTHON_RUNTIMES = {"onnx.reference": run_reference, "OpenVINO": run_openvino, "tract": run_tract}


def available(runtime):
    """None when ``runtime`` can run here, else the reason it cannot."""
    module = {"OpenVINO": "openvino", "tract": "tract", "onnx.reference": "onnx.reference"}[runtime]
    try:
        __import__(module)
    except ImportError:
        extra = {"openvino": "pip install 'symgrad[openvino]'", "tract": "pip install tract"}.get(module, "")
        return f"{module} is not installed ({extra})"
    return None


def relative_difference(got, want):
    """max over outputs of max|a - b| / max|b|; raises when an output is missing or misshapen."""
    worst = 0.0
    for name, b in want.items():
        if name not in got:
            raise AssertionError(f"output {name!r} is missing")
        a = np.asarray(got[name], dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise AssertionError(f"output {name!r} has shape {a.shape}, onnxruntime's is {b.shape}")
        scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30)
        worst = max(worst, float(np.max(np.abs(a - b))) / scale if b.size else 0.0)
    return worst


def compare(runtime, feeds, graphs, kinds=KINDS):
    """{graph kind: relative difference, or the exception it raised}."""
    run = PYTHON_RUNTIMES[runtime]
    out = {}
    for kind in kinds:
        want = run_onnxruntime(graphs[kind], feeds[kind])
        try:
            out[kind] = relative_difference(run(graphs[kind], feeds[kind]), want)
        except Exception as exc:  # another runtime's refusal is the result we report
            out[kind] = exc
    return out
