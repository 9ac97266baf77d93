"""symgrad's graphs in runtimes other than onnxruntime: OpenVINO, tract and onnx.reference.

Every graph (inference, train_step, gradients, update, eval) of three programs (an MLP
with sparse cross-entropy, a CNN with batch norm and categorical cross-entropy, an MSE
regressor; see benchmarks/runtimes_harness.py) runs on fixed feeds in each runtime and
agrees with onnxruntime to 1e-4 (norm-wise relative). tract gets the portable=True
graphs: it lacks SoftmaxCrossEntropyLoss.
"""
import os
import sys

import numpy as np
import onnx
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import runtimes_harness as harness  # noqa: E402
from needs import require  # noqa: E402

TOLERANCE = 1e-4
_CACHE = {}


def _feeds(kind, portable):
    if (kind, portable) not in _CACHE:
        _CACHE[kind, portable] = harness.graph_feeds(harness.load_program(kind, portable=portable))
    return _CACHE[kind, portable]


@pytest.fixture
def fused_if_faster(monkeypatch):
    from symgrad.compiler import portable
    monkeypatch.setattr(portable, "FUSED_CE_IS_FASTER", True)


@pytest.mark.parametrize("runtime", ["OpenVINO", "tract", "onnx.reference"])
@pytest.mark.parametrize("kind", harness.PROGRAMS)
def test_every_graph_agrees_with_onnxruntime(runtime, kind):
    require(harness.available(runtime))
    feeds, graphs = _feeds(kind, portable=runtime == "tract")
    result = harness.compare(runtime, feeds, graphs)
    failed = {k: f"{type(v).__name__}: {str(v)[:300]}" for k, v in result.items() if isinstance(v, Exception)}
    assert not failed, f"{runtime} could not run {kind}: {failed}"
    assert set(result) == set(harness.KINDS)
    assert max(result.values()) < TOLERANCE, result


def test_tract_refuses_the_fused_cross_entropy_that_portable_avoids(fused_if_faster):
    """The reason portable=True exists: if tract learns SoftmaxCrossEntropyLoss, this says so."""
    require(harness.available("tract"))
    feeds, graphs = harness.graph_feeds(harness.load_program("mlp"))
    result = harness.compare("tract", feeds, graphs, kinds=("eval",))
    assert isinstance(result["eval"], Exception) and "SoftmaxCrossEntropyLoss" in str(result["eval"])


def test_compare_catches_a_wrong_output():
    """The harness's figure is not vacuous: a perturbed output shows up."""
    want = {"a": np.array([1.0, -2.0, 4.0])}
    assert harness.relative_difference({"a": want["a"] * 1.0}, want) == 0
    assert harness.relative_difference({"a": want["a"] + [0, 0, 0.04]}, want) == pytest.approx(0.01)
    with pytest.raises(AssertionError, match="missing"):
        harness.relative_difference({}, want)
