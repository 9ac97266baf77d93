"""Optional: onnx2torch converts the portable=True training graphs of the MLP and the MSE
regressor (it has no SoftmaxCrossEntropyLoss converter, so the default MLP graphs fail)
and the converted modules compute onnxruntime's outputs. Skips without torch/onnx2torch,
which symgrad never depends on. (Its Conv converter needs the kernel as an initializer,
so the CNN's graphs, whose weights are inputs, do not convert: not an op question.)"""
import os
import sys

import numpy as np
import onnx
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
import runtimes_harness as harness  # noqa: E402

try:
    import torch
    from onnx2torch import convert
except Exception as exc:  # ImportError, or a torchvision built for another torch
    pytest.skip(f"onnx2torch is not usable here ({type(exc).__name__}): pip install torch onnx2torch",
                allow_module_level=True)


@pytest.mark.parametrize("kind", ["mlp", "mse"])
def test_onnx2torch_runs_every_portable_graph(kind):
    feeds, graphs = harness.graph_feeds(harness.load_program(kind, portable=True))
    for g in harness.KINDS:
        model = onnx.load_from_string(graphs[g])
        module = convert(model)
        with torch.no_grad():
            out = module(*[torch.from_numpy(np.array(feeds[g][i.name])) for i in model.graph.input])
        out = out if isinstance(out, (list, tuple)) else [out]
        got = {o.name: r.numpy() for o, r in zip(model.graph.output, out)}
        assert harness.relative_difference(got, harness.run_onnxruntime(graphs[g], feeds[g])) < 1e-4, g
