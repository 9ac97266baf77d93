"""The ResNet that benchmarks/train_throughput.py imports (onnx_models.resnet: Conv + BN
basic blocks, residual Add, 1x1 downsample, GlobalAveragePool, Gemm), without torch:
its imported inference equals onnxruntime on the original file, its first train step's
loss with batchnorm="train" equals the original with BatchNormalization in training mode,
and Trainer.fit lowers the loss."""
import os
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from symgrad.compiler import from_onnx, losses, optimizers
from symgrad.runtime import Trainer

from oracle import run

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, "benchmarks")
sys.path.insert(0, BENCH)
from onnx_models import resnet  # noqa: E402
from train_throughput import RESNET_ARGS, RESNET_IMAGE  # noqa: E402

XENT = losses.get("sparse_categorical_crossentropy", from_logits=True)


def _with_batchnorm_statistics(m, seed=0):
    """The builder writes identity batch norms (mean 0, var 1, scale 1, shift 0); random
    ones make the comparison see every statistic and which one goes where."""
    rng = np.random.default_rng(seed)
    for t in m.graph.initializer:
        a = numpy_helper.to_array(t)
        if t.name.endswith("running_var"):
            a = rng.uniform(0.5, 1.5, a.shape)
        elif t.name.endswith(("running_mean", "bias")) and a.ndim == 1 and not t.name.startswith("fc"):
            a = 0.2 * rng.standard_normal(a.shape)
        elif t.name.endswith("weight") and a.ndim == 1:
            a = 1 + 0.2 * rng.standard_normal(a.shape)
        else:
            continue
        t.CopyFrom(numpy_helper.from_array(a.astype(np.float32), t.name))
    return m


def _images(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *RESNET_IMAGE)).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_imported_inference_equals_onnxruntime_on_the_original(stem):
    m = _with_batchnorm_statistics(resnet(image=RESNET_IMAGE[-1], **dict(RESNET_ARGS, stem=stem)))
    program = from_onnx(m, loss=XENT, optimizer=optimizers.SGD(0.01), batchnorm="train")
    for kind, graph in program.graphs.items():
        onnx.checker.check_model(graph, full_check=True)
        assert {n.domain for n in graph.graph.node} <= {"", "ai.onnx"}, kind
    x, _ = _images(4)
    want = run(m, input=x)["logits"]          # onnxruntime: running statistics
    got = run(program.inference_model(), x=x)["y_pred"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_first_train_step_normalises_with_batch_statistics():
    m = _with_batchnorm_statistics(resnet(image=RESNET_IMAGE[-1], **RESNET_ARGS))
    x, y = _images(4)
    loss = Trainer(from_onnx(m, loss=XENT, optimizer=optimizers.SGD(0.01), batchnorm="train")).train_on_batch(
        x, y, return_dict=True)["loss"]
    train_mode = onnx.ModelProto()
    train_mode.CopyFrom(m)
    for node in train_mode.graph.node:
        if node.op_type == "BatchNormalization":
            node.attribute.append(onnx.helper.make_attribute("training_mode", 1))
            node.output.extend([node.output[0] + "/mean", node.output[0] + "/var"])
    logits = ReferenceEvaluator(train_mode).run(["logits"], {"input": x})[0].astype(np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-logp[np.arange(len(y)), y].mean(), rel=1e-5)


def test_fit_lowers_the_loss_and_updates_the_running_statistics():
    m = resnet(image=RESNET_IMAGE[-1], **RESNET_ARGS)
    trainer = Trainer(from_onnx(m, loss=XENT, optimizer=optimizers.SGD(0.1), batchnorm="train"), seed=0)
    x, y = _images(32)
    history = trainer.fit(x, y, batch_size=16, epochs=6, verbose=0).history["loss"]
    # random labels and a 0.01-scale classifier: slow, but every epoch lower (PyTorch's twin
    # of this network, same weights and batches, gave the same losses to 4 decimals)
    assert np.all(np.isfinite(history)) and np.all(np.diff(history) < 0), history
    assert history[-1] < history[0] - 0.1, history
    state = trainer.state_dict()
    assert not np.allclose(state["bn1.running_mean"], 0.0)
    assert not np.allclose(state["layer3.0.bn2.running_var"], 1.0)
