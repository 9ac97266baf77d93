"""CLI misuse from the reliability angle: damaged bundles and bad data reach the command
line as one line on stderr and exit status 2, never a traceback, and a failed command
leaves the files it would have replaced intact. (tests/test_cli.py covers the argument
mistakes of each verb; these are the cases that cross the compiler/runtime boundary.)
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from reliability_kit import classification_data, cli, mlp_classifier, one_line_error



@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-rel")
    mlp_classifier().save(str(d / "bundle"))
    x, y = classification_data()
    np.savez(d / "data.npz", x=x, y=y)
    x_nan = x.copy()
    x_nan[5, 2] = np.nan
    np.savez(d / "nan.npz", x=x_nan, y=y)
    np.savez(d / "strings.npz", x=x.astype(str), y=y)
    np.savez(d / "short_y.npz", x=x, y=y[:-3])
    np.savez(d / "rank3.npz", x=x[:, :, None], y=y)
    return d


def _damaged_copy(files, tmp_path, name, change):
    import shutil
    target = tmp_path / "bundle"
    shutil.copytree(files / "bundle", target)
    path = target / name
    path.write_bytes(change(path.read_bytes()))
    return target


def _newer(data):
    m = json.loads(data)
    m["format_version"] = 7
    return json.dumps(m).encode()


@pytest.mark.parametrize("name,change,needles", [
    ("state.bin", lambda d: d[: len(d) // 3], ["state.bin is corrupt", "checksum"]),
    ("train_step.onnx", lambda d: d[:50] + b"\x00" * 8 + d[58:], ["train_step.onnx is corrupt"]),
    ("manifest.json", _newer, ["format version 7", "upgrade symgrad"]),
    ("manifest.json", lambda d: d.replace(b'"float32"', b'"float64"', 1), ["manifest_checksum"]),
], ids=["truncated-state", "zeroed-graph", "newer-version", "edited-manifest"])
@pytest.mark.parametrize("verb", ["train", "export"])
def test_damaged_bundles(capsys, files, tmp_path, name, change, needles, verb):
    bundle = _damaged_copy(files, tmp_path, name, change)
    before = {p: (bundle / p).read_bytes() for p in os.listdir(bundle)}
    out = tmp_path / "model.onnx"
    argv = ["train", bundle, "--data", files / "data.npz", "-q"] if verb == "train" else \
        ["export", bundle, "-o", out]
    one_line_error(*cli(capsys, *argv)[::2], *needles)
    assert {p: (bundle / p).read_bytes() for p in os.listdir(bundle)} == before     # nothing rewritten
    assert not out.exists()


@pytest.mark.parametrize("data,needles", [
    ("nan.npz", ["nan", "(5, 2)", "finite"]),
    ("strings.npz", ["string", "real numbers"]),
    ("short_y.npz", ["x has 40", "y has 37"]),
    ("rank3.npz", ["rank 3", "(N, 4)"]),
])
def test_bad_training_data(capsys, files, data, needles):
    bundle_state = (files / "bundle" / "state.bin").read_bytes()
    one_line_error(*cli(capsys, "train", files / "bundle", "--data", files / data, "-q")[::2], *needles)
    assert (files / "bundle" / "state.bin").read_bytes() == bundle_state


@pytest.mark.parametrize("argv,needles", [
    (["loss", "-e", "sign(y_pred - y_true)"], ["zero gradient", "tanh(k*u)"]),
    (["loss", "-e", "(y_pred > y_true) * y_pred"], ["comparison", "where(cond, a, b)"]),
    (["loss", "-e", "y_pred * log(-2)"], ["imaginary", "real"]),
    (["loss", "-e", "y_pred * 1e999"], ["1e999", "finite"]),
    (["explain", "y_pred > 0"], ["comparison", "where"]),
])
def test_expressions_that_cannot_be_trained(capsys, tmp_path, argv, needles):
    out = tmp_path / "loss.onnx"
    one_line_error(*cli(capsys, *argv, *(["-o", out] if argv[0] == "loss" else []))[::2], *needles)
    assert not out.exists()


def test_a_failed_loss_export_keeps_the_previous_file(capsys, tmp_path):
    out = tmp_path / "loss.onnx"
    assert cli(capsys, "loss", "huber", "-o", out)[0] == 0
    good = out.read_bytes()
    one_line_error(*cli(capsys, "loss", "huber", "-p", "delta=-2", "-o", out)[::2], "delta")
    assert out.read_bytes() == good
    assert [p for p in os.listdir(tmp_path) if p != "loss.onnx"] == []      # no temporary left behind


@pytest.mark.parametrize("argv,needles", [
    (["train", "{d}/bundle", "--data", "{d}/nan.npz", "-q"], ["nan", "finite"]),
    (["loss", "-e", "sign(y_pred)", "-o", "{d}/x.onnx"], ["zero gradient"]),
], ids=["runtime-verb", "compiler-verb"])
def test_a_real_process_exits_2_with_one_line(files, argv, needles):
    """The console entry point in its own process: exit status 2, one stderr line, nothing
    on stdout."""
    code = "import sys; from symgrad.runtime.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code] + [a.replace("{d}", str(files)) for a in argv],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    one_line_error(proc.returncode, proc.stderr, *needles)
