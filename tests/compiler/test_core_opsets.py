"""Every emitted model passes the checker at opsets 13, 17 and 21, loads in
onnxruntime and computes the same numbers; ir_version matches the opset."""
import numpy as np
import onnx
import pytest

from symgrad.compiler import Loss, OpsetError
from oracle import run

EXPRESSIONS = [
    "log(cosh(y_pred - y_true))",
    "-sum(y_true*log_softmax(y_pred), axis=-1)",
    "max(Abs(y_pred - y_true), axis=-1) + min(y_pred, axis=-1)**2",
    "logsumexp(y_pred) - mean(y_pred*y_true)",
    "1 - dot(y_true, y_pred)/(norm(y_true)*norm(y_pred) + 1e-7)",
    "Piecewise((0.5*(y_pred-y_true)**2, Abs(y_pred-y_true) < 1), (Abs(y_pred-y_true) - 0.5, True))",
    "softplus(-y_pred*y_true) + erf(y_pred)",
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_opsets_agree(text):
    rng = np.random.default_rng(0)
    yt, yp = rng.uniform(0.1, 1, (4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    loss = Loss.from_expression(text, name="probe")
    results = []
    for opset in (13, 17, 21):
        model = loss.to_onnx(opset=opset, shape=(None, 3), sample_weight=True)
        assert model.opset_import[0].version == opset
        assert model.ir_version <= 10, "onnxruntime 1.31 accepts IR versions up to 13; we stamp the minimum"
        assert model.ir_version == onnx.helper.find_min_ir_version_for([model.opset_import[0]])
        results.append(run(model, y_true=yt, y_pred=yp, sample_weight=np.ones(4, np.float32)))
    for r in results[1:]:
        for k in r:
            np.testing.assert_allclose(r[k], results[0][k], rtol=1e-6, atol=1e-7)


def test_names_come_from_the_declaration():
    model = Loss.from_expression("log(cosh(y_pred - y_true))", name="logcosh").to_onnx()
    names = [n.name for n in model.graph.node]
    assert any(n.startswith("logcosh/forward/") for n in names)
    assert any(n.startswith("logcosh/grad/") for n in names)
    assert [o.name for o in model.graph.output] == ["loss", "grad_y_pred"]
    assert [i.name for i in model.graph.input] == ["y_true", "y_pred"]


@pytest.mark.parametrize("opset", [12, 22, "17", 17.0, None, True])
def test_unsupported_opset(opset):
    with pytest.raises(OpsetError, match="opset .* not supported; accepted: integers 13 to 21"):
        Loss.from_expression("(y_pred - y_true)**2").to_onnx(opset=opset)


def test_unsupported_dtype():
    with pytest.raises(OpsetError, match="float32, float64"):
        Loss.from_expression("(y_pred - y_true)**2").to_onnx(dtype="float16")
