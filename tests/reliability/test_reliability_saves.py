"""Saving never deletes what symgrad did not write (issue 11, defects 1 and 12).

- A bundle save (Program.save, Trainer.save, ``symgrad compile -o``, ``symgrad train -o``)
  replaces only nothing, an empty folder, or a folder that is a symgrad bundle and holds
  nothing else. A non-empty folder of anything else, a regular file or a symlink at the
  target is refused with a SymgradError naming the path, and every file stays byte for byte.
- Temporaries that killed writes left (``.tmp-*`` files and folders) are removed by the
  next successful write to the same place; only ours, and never one a live writer holds.
- A full disk gives an error that names the path.
"""
import errno
import os
import subprocess
import sys
import textwrap

import pytest

from symgrad.compiler import ParameterError, SymgradError
from symgrad.compiler.bundle import Bundle
from symgrad.compiler.errors import SaveError
from symgrad.runtime import Trainer
from symgrad.runtime.cli import main as cli_main
from reliability_kit import expect_error, mlp_classifier

MODEL_PY = textwrap.dedent("""
    import pathlib
    pathlib.Path(__file__).with_name("ran.txt").write_text("the model file ran")   # the target is refused first
    from symgrad.compiler import Sequential, layers, optimizers
    model = Sequential([layers.Dense(3)], input_shape=(4,))
    loss = "mse"
    optimizer = optimizers.SGD(0.1)
""")
SECRET = "SYMGRAD-TEST-SECRET-4f1c"


def tree(root):
    """Every entry under ``root``: file bytes, link targets, folders; the oracle for 'untouched'."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("dir",)
            else:
                with open(full, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


@pytest.fixture(scope="module")
def program():
    return mlp_classifier()


@pytest.fixture
def project(tmp_path):
    """A user's working folder: their model file, a secret, a sub-folder of data."""
    (tmp_path / "model.py").write_text(MODEL_PY)
    (tmp_path / ".env").write_text(f"TOKEN={SECRET}\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("1,2,3\n")
    return tmp_path


def test_cli_compile_into_the_current_folder_deletes_nothing(project, monkeypatch, capsys):
    """The review's case: 'symgrad compile model.py -o .' deleted model.py and every other file."""
    monkeypatch.chdir(project)
    before = tree(project)
    assert cli_main(["compile", "model.py", "-o", "."]) == 2
    err = capsys.readouterr().err
    assert tree(project) == before
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(project) in err and "not a bundle" in err and SECRET not in err


@pytest.mark.parametrize("target", ["model.py", "data", ".env"])
def test_cli_compile_onto_a_file_or_a_foreign_folder_is_refused(project, monkeypatch, capsys, target):
    monkeypatch.chdir(project)
    before = tree(project)
    assert cli_main(["compile", "model.py", "-o", target]) == 2
    err = capsys.readouterr().err
    assert tree(project) == before and target in err and "Traceback" not in err


def test_cli_train_output_onto_a_foreign_folder_is_refused(program, project, monkeypatch, capsys):
    import numpy as np
    monkeypatch.chdir(project)
    program.save("bundle")
    rng = np.random.default_rng(0)
    np.savez("d.npz", x=rng.normal(size=(8, 4)).astype(np.float32), y=rng.integers(0, 3, 8))
    before = tree(project)

    def no_training(*args, **kwargs):
        raise AssertionError("trained before finding that the result has no place")
    monkeypatch.setattr(Trainer, "fit", no_training)
    assert cli_main(["train", "bundle", "--data", "d.npz", "-q", "-o", "data"]) == 2
    assert tree(project) == before and "data" in capsys.readouterr().err


SAVERS = {
    "Program.save": lambda program, path: program.save(path),
    "Trainer.save": lambda program, path: Trainer(program).save(path),
    "Bundle.save": lambda program, path: program.bundle().save(path),
}


@pytest.mark.parametrize("saver", list(SAVERS))
@pytest.mark.parametrize("case", ["foreign-folder", "regular-file", "symlink", "bundle-plus-foreign-file",
                                  "other-manifest"])
def test_a_save_refuses_what_it_did_not_write(program, tmp_path, saver, case):
    target = tmp_path / "out"
    if case == "foreign-folder":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    elif case == "regular-file":
        target.write_bytes(b"my thesis")
    elif case == "symlink":
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", target)
    elif case == "bundle-plus-foreign-file":
        program.save(str(target))
        (target / "README.md").write_text("my notes about this bundle")
    else:                                   # a web app's manifest.json is no symgrad manifest
        target.mkdir()
        (target / "manifest.json").write_text('{"name": "my app", "format": "webapp"}')
        (target / "state.bin").write_bytes(b"app data")
    before = tree(tmp_path)
    expect_error(lambda: SAVERS[saver](program, str(target)), ParameterError, str(target))
    assert tree(tmp_path) == before


@pytest.mark.parametrize("saver", list(SAVERS))
def test_a_save_replaces_a_bundle_and_fills_an_empty_folder(program, tmp_path, saver):
    empty = tmp_path / "empty"
    empty.mkdir()
    SAVERS[saver](program, str(empty))
    Bundle.load(str(empty))
    trained = Trainer(program)
    trained.train_on_batch(*_batch())
    trained.save(str(empty))                # a bundle is replaced as before
    assert Bundle.load(str(empty)).manifest["trainer"]["step"] == 1
    SAVERS[saver](program, str(empty))
    assert sorted(os.listdir(tmp_path)) == ["empty"]


def _batch():
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, 8)


# ------------------------------------------------------------------ temporaries of killed writes

def test_the_next_save_removes_temporaries_of_killed_writes_and_only_those(program, tmp_path):
    bundle = tmp_path / "bundle"
    program.save(str(bundle))
    stale_dir = tmp_path / ".tmp-bundle-k1ll3d_x"          # a killed save's half-filled folder
    stale_dir.mkdir()
    (stale_dir / "train_step.onnx").write_bytes(b"half")
    stale_file = tmp_path / ".tmp-abcd1234-model.onnx"      # a killed export's half-written file
    stale_file.write_bytes(b"half")
    mine = {".tmp-bundle-notes", ".tmp-bundle-backup_1", ".tmp-x-model.onnx", ".tmp-abcdefgh-other.onnx"}
    for name in mine:
        (tmp_path / name).write_text("a user's file that merely looks like ours")
    foreign_dir = tmp_path / ".tmp-bundle-zzzzzzzz"           # our name, but holding a user's file
    foreign_dir.mkdir()
    (foreign_dir / "diary.txt").write_text("mine")
    program.save(str(bundle))
    Trainer(program).export(str(tmp_path / "model.onnx"))
    left = set(os.listdir(tmp_path))
    assert not stale_dir.exists() and not stale_file.exists()
    assert mine <= left and (foreign_dir / "diary.txt").read_text() == "mine"


_HOLDER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_temporary_that_a_live_writer_holds_is_kept(program, tmp_path):
    """Another process still filling its temporary holds a lock on it: the cleanup leaves it."""
    pytest.importorskip("fcntl")
    busy = tmp_path / ".tmp-busy1234-model.onnx"
    busy.write_bytes(b"being written")
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(busy)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        Trainer(program).export(str(tmp_path / "model.onnx"))
        assert busy.read_bytes() == b"being written"
    finally:
        proc.kill()
        proc.wait()
    Trainer(program).export(str(tmp_path / "model.onnx"))      # its writer is dead now: it goes
    assert not busy.exists()


# ------------------------------------------------------------------ disk full


def _disk_full_at_fsync(monkeypatch):
    import stat
    real = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            return real(fd)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("what", ["bundle", "export", "checkpoint"])
def test_a_full_disk_names_the_path(program, tmp_path, monkeypatch, what):
    target = str(tmp_path / {"bundle": "b", "export": "m.onnx", "checkpoint": "c.ckpt"}[what])
    trainer = Trainer(program)
    write = {"bundle": trainer.save, "export": trainer.export, "checkpoint": trainer.save_checkpoint}[what]
    _disk_full_at_fsync(monkeypatch)
    with pytest.raises(SaveError) as info:
        write(target)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, (OSError, SymgradError))
    assert target in str(info.value) and "No space left" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_the_cli_reports_a_full_disk_in_one_line_naming_the_file(program, tmp_path, monkeypatch, capsys):
    program.save(str(tmp_path / "bundle"))
    _disk_full_at_fsync(monkeypatch)
    out = str(tmp_path / "model.onnx")
    assert cli_main(["export", str(tmp_path / "bundle"), "-o", out]) == 2
    err = capsys.readouterr().err
    assert out in err and "No space left" in err and len(err.strip().splitlines()) == 1
