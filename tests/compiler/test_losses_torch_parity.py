"""Optional: every PyTorch class name against torch.nn itself (skipped without torch, which is
never a dependency). The NumPy references in test_losses_pytorch.py are the required oracle;
this checks that those references read PyTorch's documentation the way PyTorch runs it."""
import numpy as np
import pytest

from symgrad.compiler import losses
from test_losses_ctc import LABELS, L, T, C as CTC_C
from test_losses_pytorch import CASES, FEED, _inputs, _run

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")      # KLDivLoss mean warns by design


def _module(name, params):
    kw = {k: torch.tensor(v, dtype=torch.float64) if k in ("weight", "pos_weight") else v for k, v in params.items()}
    return getattr(torch.nn, name.split(".")[-1])(**kw)


def _call(name, module, inputs):
    t = {k: torch.tensor(v) for k, v in inputs.items()}
    cls = name.split(".")[-1]
    if cls in ("MarginRankingLoss", "CosineEmbeddingLoss"):
        return module(t["p"], t["input2"], t["y"])
    if cls == "TripletMarginLoss":
        return module(t["p"], t["positive"], t["negative"])
    if cls == "GaussianNLLLoss":
        return module(t["p"], t["y"], t["var"])
    if cls == "MultiLabelMarginLoss":
        return module(t["p"], t["y"].long())
    return module(t["p"], t["y"])


@pytest.mark.parametrize("case,reduction", [(c, r) for c in CASES for r in ("none", "mean", "sum")])
def test_pytorch_class_equals_torch(case, reduction):
    name, params, _, _ = CASES[case]
    inputs = _inputs(case)
    want = _call(name, _module(name, dict(params, reduction=reduction)), inputs).detach().numpy()
    got = _run(case, reduction, inputs)["loss"]
    np.testing.assert_allclose(np.ravel(got), np.ravel(want), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_loss_equals_torch(reduction):
    rng = np.random.default_rng(0)
    logp = torch.log_softmax(torch.tensor(rng.normal(size=(len(LABELS), T, CTC_C))), -1)
    lengths = (LABELS != 0).sum(1)
    want = torch.nn.CTCLoss(blank=0, reduction=reduction)(
        logp.transpose(0, 1), torch.tensor(LABELS), torch.full((len(LABELS),), T), torch.tensor(lengths))
    model = losses.get("CTCLoss", reduction=reduction, max_label_length=L).to_onnx(dtype="float64",
                                                                                  shape=(None, T, CTC_C))
    from oracle import run
    got = run(model, y_true=LABELS, y_pred=logp.numpy())["loss"]
    np.testing.assert_allclose(np.ravel(got), np.ravel(want.numpy()), rtol=1e-8)
