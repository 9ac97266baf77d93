"""docs/ops.md is generated from the translator registry; `symgrad ops` and `symgrad
artifacts` are the command-line faces of the importer."""
import json
from pathlib import Path

import onnx

from symgrad.compiler.onnx_import import table
from symgrad.compiler.onnx_import.registry import DIFFERENTIABLE, load_families
from symgrad.runtime.cli import main

from onnx_builders import small_cnn

DOCS = Path(__file__).resolve().parents[3] / "docs" / "ops.md"


def test_docs_page_is_up_to_date():
    assert DOCS.exists(), "generate it: python -m symgrad.compiler.onnx_import.table"
    assert DOCS.read_text(encoding="utf-8") == table.render(), \
        "docs/ops.md is stale: python -m symgrad.compiler.onnx_import.table"


def test_table_lists_every_standard_op_once_and_every_registered_op():
    ops = [op for op, _, _ in table.rows()]
    assert len(ops) == len(set(ops))
    assert set(table.standard_ops()) <= set(ops)
    assert set(load_families()) <= set(ops)
    assert {"Conv", "Gemm", "HardSwish", "Reciprocal", "ReduceMax", "Sum"} <= \
        {op for op, status, _ in table.rows() if status == DIFFERENTIABLE}


def test_check_mode_reports_a_stale_page(tmp_path):
    out = tmp_path / "ops.md"
    assert table.main(["--check", "--output", str(out)]) == 1
    assert table.main(["--output", str(out)]) == 0
    assert table.main(["--check", "--output", str(out)]) == 0
    out.write_text("edited by hand\n")
    assert table.main(["--check", "--output", str(out)]) == 1


def test_symgrad_ops_prints_the_table(capsys):
    assert main(["ops", "--status", "differentiable"]) == 0
    out = capsys.readouterr().out
    assert table.headline() in out and "HardSwish" in out and "Det " not in out


def test_symgrad_artifacts_writes_a_bundle(tmp_path, capsys):
    src = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), str(src))
    code = main(["artifacts", str(src), "--loss", "sparse_categorical_crossentropy", "-p", "from_logits=true",
                 "--optimizer", "adamw", "--lr", "1e-3", "--frozen", "conv1.weight", "-o", str(tmp_path / "b")])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    trained = {p["name"] for p in manifest["params"] if p["trainable"]}
    assert "conv1.weight" not in trained and "conv2.weight" in trained
    assert manifest["optimizer"]["name"] == "adamw" and manifest["optimizer"]["config"]["learning_rate"] == 1e-3


def test_symgrad_artifacts_errors_are_one_line(tmp_path, capsys):
    src = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), str(src))
    assert main(["artifacts", str(src), "--loss", "mse", "--frozen", "conv9.weight", "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "conv9.weight" in err
    assert not (tmp_path / "b").exists()
    assert main(["artifacts", str(tmp_path / "missing.onnx"), "--loss", "mse", "-o", str(tmp_path / "b")]) == 2


def test_readme_headline_matches_the_table():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    assert table.headline() in readme, "README.md's op-table headline is stale: paste table.headline()"
