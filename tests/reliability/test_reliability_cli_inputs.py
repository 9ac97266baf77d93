"""The review's command-line cases that ended in a traceback or a wrong exit status: each
is now one line on stderr and exit status 2, and writes nothing."""
import io
import zipfile

import numpy as np
import pytest

from reliability_kit import cli, one_line_error



def _npz_declaring(path, shape):
    """An .npz whose x.npy header declares ``shape`` but holds 64 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", header.getvalue() + b"\0" * 64)
        z.writestr("y.npy", header.getvalue() + b"\0" * 64)


def test_a_very_long_sum_is_one_line_naming_the_limit(capsys, tmp_path):
    out = tmp_path / "long.onnx"
    rc, _, err = cli(capsys, "loss", "-e", "+".join(["y_pred"] * 3000), "-o", out)
    one_line_error(rc, err, "limit")
    assert not out.exists()


def test_a_long_sum_within_the_limits_compiles(capsys, tmp_path):
    out = tmp_path / "sum.onnx"
    rc, _, err = cli(capsys, "loss", "-e", "+".join(["y_pred"] * 900), "-o", out)
    assert rc == 0, err
    assert out.exists()


def test_a_fake_zip_as_data_is_one_line(capsys, tmp_path):
    fake = tmp_path / "fake.npz"
    fake.write_bytes(b"PK\x03\x04" + b"not really a zip archive" * 10)
    rc, _, err = cli(capsys, "train", tmp_path / "bundle", "--data", fake)
    one_line_error(rc, err, "fake.npz", "zip")


@pytest.mark.parametrize("shape", [(10**6, 10**6), (2**62,)])
def test_an_npz_declaring_a_huge_shape_is_refused_before_allocating(capsys, tmp_path, shape):
    path = tmp_path / "huge.npz"
    _npz_declaring(path, shape)
    rc, _, err = cli(capsys, "train", tmp_path / "bundle", "--data", path)
    one_line_error(rc, err, "huge.npz", "'x'", "declares shape")


def test_an_npz_with_pickled_objects_is_refused(capsys, tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    rc, _, err = cli(capsys, "train", tmp_path / "bundle", "--data", path)
    one_line_error(rc, err, "objects.npz", "Python objects")


@pytest.mark.parametrize("code", ["0", "3", "'bye'"])
def test_a_model_file_that_exits_is_an_error_and_writes_nothing(capsys, tmp_path, code):
    model = tmp_path / "model.py"
    model.write_text(f"import sys\nsys.exit({code})\n")
    out = tmp_path / "bundle"
    rc, _, err = cli(capsys, "compile", model, "-o", out)
    one_line_error(rc, err, "model.py", "sys.exit")
    assert not out.exists()


def test_inspect_of_a_device_says_what_it_is(capsys):
    rc, _, err = cli(capsys, "inspect", "/dev/null")
    line = one_line_error(rc, err, "/dev/null", "not a regular file")
    assert "does not exist" not in line


def test_inspect_of_a_folder_says_it_is_a_folder(capsys, tmp_path):
    rc, _, err = cli(capsys, "inspect", tmp_path)
    one_line_error(rc, err, "is a folder")


def test_a_value_for_y_pred_names_the_problem(capsys, tmp_path):
    rc, _, err = cli(capsys, "loss", "-e", "(y_pred - y_true)**2", "-p", "y_pred=3", "-o", tmp_path / "l.onnx")
    line = one_line_error(rc, err, "'y_pred'", "input of the loss")
    assert "zero gradient" not in line
