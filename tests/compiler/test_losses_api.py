"""The catalogue's surface: names, aliases, parameter checking and its errors, every
reduction, the ONNX checker at opsets 13/17/21, explain() and the generated docs page."""
import re
from pathlib import Path

import numpy as np
import pytest

from symgrad.compiler import Loss, ParameterError, SymgradError, UnknownNameError, losses
from symgrad.compiler.emit import ir_version_for
from symgrad.compiler.losses import docs as docs_module
from oracle import session
from test_losses_catalogue import C, CASES, make_inputs, run

ISSUE_NAMES = """mean_squared_error mean_absolute_error mean_absolute_percentage_error
mean_squared_logarithmic_error huber smooth_l1 log_cosh quantile poisson gaussian_nll binary_crossentropy
binary_focal_crossentropy categorical_crossentropy sparse_categorical_crossentropy
categorical_focal_crossentropy nll kl_divergence hinge squared_hinge categorical_hinge multiclass_hinge
soft_margin poly1_crossentropy cosine_similarity cosine_embedding dice tversky margin_ranking triplet_margin
hinge_embedding absolute_difference cosine_distance mean_pairwise_squared_error sigmoid_cross_entropy
softmax_cross_entropy log_loss ctc circle categorical_generalized_cross_entropy""".split()
REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size", "weighted_mean")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "losses.md"


def test_names_are_the_issue_entries_sorted_snake_case():
    names = losses.names()
    assert names == sorted(names)
    assert set(names) == set(ISSUE_NAMES)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)


@pytest.mark.parametrize("alias,target", [
    ("mse", "mean_squared_error"), ("mae", "mean_absolute_error"), ("mape", "mean_absolute_percentage_error"),
    ("msle", "mean_squared_logarithmic_error"), ("bce", "binary_crossentropy"), ("cce", "categorical_crossentropy"),
    ("scce", "sparse_categorical_crossentropy"), ("kld", "kl_divergence"), ("kullback_leibler_divergence", "kl_divergence"),
    ("logcosh", "log_cosh"), ("pinball", "quantile"), ("MeanSquaredError", "mean_squared_error"),
    ("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy"), ("KLDivergence", "kl_divergence"),
    ("huber_loss", "huber"), ("smooth_l1_loss", "smooth_l1"), ("mse_loss", "mean_squared_error"),
    ("Huber", "huber"), ("binary-crossentropy", "binary_crossentropy"),
])
def test_aliases_and_spellings_resolve(alias, target):
    assert losses.get(alias).name == target


def test_get_binds_parameters_and_records_the_config():
    loss = losses.get("huber", delta=0.5)
    assert isinstance(loss, Loss)
    assert {s.name: v for s, v in loss.params.items()} == {"delta": 0.5}
    assert loss.config == {"delta": 0.5, "reduction": "sum_over_batch_size"}
    assert losses.get(loss) is loss


def test_every_entry_documents_its_convention_and_accepts_every_reduction():
    for name in losses.names():
        assert "Convention" in losses.entry(name).doc, name
        tfjs = losses.entry(name).category == "tfjs"
        for r in REDUCTIONS:
            want = "weighted_mean" if tfjs and r == "mean" else r       # TF.js' MEAN is sum(w*L)/sum(w)
            assert losses.get(name, reduction=r).reduction == want


def test_weighted_entries_default_to_the_pytorch_weighted_mean():
    assert losses.get("scce").reduction == "sum_over_batch_size"
    assert losses.get("scce", class_weight=[1, 2]).reduction == "weighted_mean"
    assert losses.get("nll", ignore_index=-100).reduction == "weighted_mean"
    assert losses.get("cce", class_weight=[1, 2]).reduction == "sum_over_batch_size"


@pytest.mark.parametrize("bad,suggestion", [("hubber", "huber"), ("categorical_crossentropi", "categorical_crossentropy"),
                                            ("msee", "mse"), ("TripletLoss", "triplet_margin")])
def test_unknown_name_suggests_the_closest(bad, suggestion):
    with pytest.raises(UnknownNameError) as info:
        losses.get(bad)
    msg = str(info.value)
    assert isinstance(info.value, SymgradError)
    assert repr(bad) in msg and "Did you mean" in msg and repr(suggestion) in msg
    assert "mean_squared_error" in msg              # the known names are listed


def test_unknown_parameter_lists_the_accepted_ones():
    with pytest.raises(ParameterError) as info:
        losses.get("huber", delt=1.0)
    msg = str(info.value)
    assert "'delt'" in msg and "Did you mean 'delta'" in msg and "delta=1.0" in msg and "reduction" in msg


@pytest.mark.parametrize("name,params,bad", [
    ("huber", {"delta": 0}, "delta"), ("huber", {"delta": -1.0}, "delta"), ("huber", {"delta": float("nan")}, "delta"),
    ("smooth_l1", {"beta": 0}, "beta"),
    ("bce", {"label_smoothing": 1.0}, "label_smoothing"), ("cce", {"label_smoothing": -0.1}, "label_smoothing"),
    ("quantile", {"quantile": 0}, "quantile"), ("quantile", {"quantile": 1.0}, "quantile"),
    ("binary_focal_crossentropy", {"gamma": -1}, "gamma"), ("binary_focal_crossentropy", {"alpha": 1.5}, "alpha"),
    ("triplet_margin", {"margin": "1"}, "margin"), ("triplet_margin", {"p": 0}, "p"),
    ("margin_ranking", {"margin": True}, "margin"), ("cosine_embedding", {"margin": None}, "margin"),
    ("bce", {"from_logits": "yes"}, "from_logits"), ("cce", {"axis": 1.5}, "axis"),
    ("scce", {"class_weight": [1, -1]}, "class_weight"), ("scce", {"class_weight": "balanced"}, "class_weight"),
    ("scce", {"class_weight": {1: 2.0}}, "class_weight"), ("scce", {"ignore_index": 1.5}, "ignore_index"),
    ("cce", {"class_weight": [1, 2], "axis": 1}, "class_weight"), ("bce", {"epsilon": 0.6}, "epsilon"),
    ("multiclass_hinge", {"form": "min"}, "form"), ("tversky", {"alpha": -0.1}, "alpha"),
    ("dice", {"smooth": -1}, "smooth"), ("huber", {"reduction": "avg"}, "reduction"),
])
def test_out_of_range_or_mistyped_parameters_are_named(name, params, bad):
    with pytest.raises(ParameterError) as info:
        losses.get(name, **params)
    assert f"'{bad}" in str(info.value)


def test_a_name_must_be_a_string():
    with pytest.raises(ParameterError, match="string"):
        losses.get(3)
    with pytest.raises(ParameterError, match="existing"):
        losses.get(losses.get("mse"), delta=1.0)


# ---------------------------------------------------------------- opsets
def _first_case(name):
    return next(cid for cid, (n, params, _, _) in CASES.items() if losses.entry(n).name == name)


@pytest.mark.parametrize("name", [n for n in ISSUE_NAMES if n != "ctc"])      # ctc: test_losses_ctc.py
def test_checker_and_runtime_at_opsets_13_17_21(name):
    case = _first_case(name)
    loss = losses.get(CASES[case][0], **CASES[case][1])
    inputs = make_inputs(case)
    results = []
    for opset in (13, 17, 21):
        model = loss.to_onnx(opset=opset, shape=(None, C))
        assert model.opset_import[0].version == opset
        assert model.ir_version == ir_version_for(opset)
        results.append(run(session(model), inputs, dtype=np.float32))   # session: full checker, standard domain
    for other in results[1:]:
        for k, v in results[0].items():
            np.testing.assert_allclose(other[k], v, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- explain and docs
def test_explain_gives_name_parameters_formula_and_derivative():
    text = losses.explain("huber", delta=0.5)
    assert text.startswith("# `huber`")
    assert "`delta=1.0` (a number > 0)" in text           # the default, with what is accepted
    assert "L = mean(Piecewise(" in text and "dL/dy_pred = " in text
    assert r"\frac{\partial \mathcal{L}}{\partial \hat{y}}" in text
    assert losses.explain("bce").startswith("# `binary_crossentropy`")
    assert "dL/dvar = " in losses.explain("gaussian_nll")
    with pytest.raises(UnknownNameError):
        losses.explain("hubber")


def test_docs_page_is_up_to_date():
    assert DOCS.exists(), "generate it: python -m symgrad.compiler.losses.docs"
    assert DOCS.read_text(encoding="utf-8") == losses.render_docs(), \
        "docs/losses.md is stale: python -m symgrad.compiler.losses.docs"


def test_docs_command_writes_and_checks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(docs_module, "render_docs", lambda: "# page\n")
    out = tmp_path / "losses.md"
    assert docs_module.main(["--check", "--output", str(out)]) == 1        # missing
    assert docs_module.main(["--output", str(out)]) == 0
    assert out.read_text() == "# page\n"
    assert docs_module.main(["--check", "--output", str(out)]) == 0
    out.write_text("# edited by hand\n")
    assert docs_module.main(["--check", "--output", str(out)]) == 1
    assert "stale" in capsys.readouterr().err


def test_latex_of_powers_of_tensor_and_stable_functions():
    # sympy hands a Function's exponent to its _latex; a squared sum or sigmoid must print
    tex = Loss.from_expression("sum(y_pred - y_true)**2 + sigmoid(y_pred)**2 + softplus(y_pred)**3").latex()
    assert r"\left(\operatorname{sum}_{-1}\left(\hat{y} - y\right)\right)^{2}" in tex
    assert r"\left(\sigma\left(\hat{y}\right)\right)^{2}" in tex
