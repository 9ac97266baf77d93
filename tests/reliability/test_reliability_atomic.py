"""Files are never half-written.

1. An audit of the source: every place the project writes a file goes through
   compiler/atomic.py (temporary name, fsync, rename), so no writer is forgotten.
2. Each writer (bundles, trainer bundles, checkpoints, exports, CSV logs, ONNX model
   checkpoints, BackupAndRestore, the CLI's outputs, the docs generator) fails in the
   middle of a save (disk full at the fsync, or the rename refused): the previous file or
   folder is intact, byte for byte, and no temporary is left beside it.
3. A bundle save killed with SIGKILL half-way leaves the old bundle loadable and intact;
   a reader racing a writer always loads one whole bundle, never a mix.
4. Manifests carry checksums of every file they list, and of themselves.
"""
import ast
import errno
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from symgrad.compiler import atomic
from symgrad.compiler.bundle import Bundle, manifest_checksum, sha256
from symgrad.runtime import Trainer, callbacks
from symgrad.runtime.cli import main as cli_main
from reliability_kit import classification_data, mlp_classifier, sigkill_at_marker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE_DIRS = ("compiler", "runtime", "examples", "benchmarks")
# calls that write a file by themselves: methods of any object (pathlib, matplotlib,
# NumPy arrays) and functions of libraries (np.save, onnx.save, json.dump(obj, file))
WRITING_METHODS = {"savefig", "savez", "savez_compressed", "savetxt", "tofile", "save_model", "write_text",
                   "write_bytes"}
WRITING_FUNCTIONS = {("np", "save"), ("numpy", "save"), ("onnx", "save"), ("pickle", "dump"),
                     ("json", "dump"), ("torch", "save")}
# the one sanctioned exception: Bundle.save fills a fresh temporary folder that
# atomic.replace_directory swaps in only when complete
ALLOWED = {("compiler/atomic.py", None), ("compiler/bundle.py", "fill")}


def _python_files():
    for top in SOURCE_DIRS:
        for root, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d not in ("node_modules", "__pycache__")]
            for name in files:
                if name.endswith(".py"):
                    yield os.path.join(root, name)


def _writes(tree):
    """(line, enclosing function, what) for each call that opens or writes a file."""
    found = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Call):
                f = child.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
                if name in ("open", "fdopen"):
                    mode = child.args[1] if len(child.args) > 1 else next(
                        (k.value for k in child.keywords if k.arg == "mode"), None)
                    if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax+"):
                        found.append((child.lineno, func, f"{name}(mode={mode.value!r})"))
                elif isinstance(f, ast.Attribute) and owner != "atomic" and (
                        name in WRITING_METHODS or (owner, name) in WRITING_FUNCTIONS):
                    found.append((child.lineno, func, f"{owner or '...'}.{name}()"))
            visit(child, inner)

    visit(tree, None)
    return found


def test_every_file_write_goes_through_atomic():
    offenders = []
    for path in _python_files():
        rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=rel)
        for line, func, what in _writes(tree):
            if (rel, None) in ALLOWED or (rel, func) in ALLOWED:
                continue
            offenders.append(f"{rel}:{line} {what} in {func or 'module'}()")
    assert not offenders, "write these through symgrad.compiler.atomic (write_bytes / write_text / " \
                          "write_with / replace_directory):\n" + "\n".join(offenders)


def test_the_audit_finds_a_plain_write():
    """The audit itself can fail: a direct write is reported, an atomic one is not."""
    code = textwrap.dedent("""
        def save(path, fig, data):
            with open(path, "wb") as f:
                f.write(data)
            fig.savefig(path)
            json.dump(data, open(path, "w"))
            atomic.write_bytes(path, data)
            open(path).read()
            program.save(path)
    """)
    assert [w[2] for w in _writes(ast.parse(code))] == ["open(mode='wb')", "fig.savefig()", "json.dump()",
                                                        "open(mode='w')"]


# ------------------------------------------------------------------ failures in the middle of a save


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail_fsync(monkeypatch):
    real = os.fsync

    def fsync(fd):
        import stat
        if stat.S_ISDIR(os.fstat(fd).st_mode):      # directory syncs are best effort
            return real(fd)
        _disk_full()
    monkeypatch.setattr(os, "fsync", fsync)


def _fail_rename(monkeypatch):
    monkeypatch.setattr(os, "replace", _disk_full)
    monkeypatch.setattr(atomic, "_exchange", _disk_full)


X, Y = classification_data()


@pytest.fixture(scope="module")
def program():
    return mlp_classifier()


def _trainer(program, version):
    tr = Trainer(program, seed=0)
    for _ in range(version):
        tr.train_on_batch(X[:8], Y[:8])
    return tr


def _fit(program, version, cbs):
    tr = Trainer(program, seed=0)
    tr.fit(X, Y, epochs=1 + version, batch_size=8, verbose=0, callbacks=cbs)


def _cli(argv):
    if cli_main([str(a) for a in argv]) != 0:
        raise OSError("the command failed")


def _docs(target, version, monkeypatch):
    from symgrad.compiler.losses import docs
    monkeypatch.setattr(docs, "render_docs", lambda: f"# loss catalogue, version {version}\n")
    docs.main(["--output", str(target)])


WRITERS = {
    "program.save": (True, lambda p, t, v, mp: mlp_classifier(hidden=8 + v).save(str(t))),
    "trainer.save": (True, lambda p, t, v, mp: _trainer(p, v).save(str(t))),
    "save_checkpoint": (False, lambda p, t, v, mp: _trainer(p, v).save_checkpoint(str(t))),
    "export": (False, lambda p, t, v, mp: _trainer(p, v).export(str(t))),
    "CSVLogger": (False, lambda p, t, v, mp: _fit(p, v, [callbacks.CSVLogger(str(t))])),
    "ModelCheckpoint": (False, lambda p, t, v, mp: _fit(p, v, [callbacks.ModelCheckpoint(str(t), monitor="loss")])),
    "BackupAndRestore": (False, lambda p, t, v, mp: _fit(p, v, [callbacks.BackupAndRestore(
        os.path.dirname(t), delete_checkpoint=False)]) if v == 0 else _fit_again(p, t)),
    "cli loss -o": (False, lambda p, t, v, mp: _cli(["loss", "huber", "-p", f"delta={1 + v}", "-o", t])),
    "cli export": (False, lambda p, t, v, mp: _cli(["export", _saved(p, t, v), "-o", t])),
    "losses docs": (False, lambda p, t, v, mp: _docs(t, v, mp)),
}


def _fit_again(program, target):
    """A second BackupAndRestore run over the same folder: it resumes, trains on and
    rewrites training_state.ckpt."""
    _fit(program, 2, [callbacks.BackupAndRestore(os.path.dirname(target), delete_checkpoint=False)])


def _saved(program, target, version):
    folder = os.path.join(os.path.dirname(os.path.dirname(target)), f"src-bundle-{version}")
    _trainer(program, version).save(folder)
    return folder


def _snapshot(target, is_dir):
    if is_dir:
        return {n: open(os.path.join(target, n), "rb").read() for n in sorted(os.listdir(target))}
    with open(target, "rb") as f:
        return f.read()


def _leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith((".tmp-", ".old-"))]


@pytest.mark.parametrize("fault", [_fail_fsync, _fail_rename], ids=["disk-full-at-fsync", "rename-refused"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_failed_save_keeps_the_previous_file(program, tmp_path, monkeypatch, writer, fault):
    is_dir, write = WRITERS[writer]
    folder = tmp_path / "out"
    folder.mkdir()
    name = {"BackupAndRestore": "training_state.ckpt", "CSVLogger": "log.csv", "losses docs": "losses.md"}.get(
        writer, "bundle" if is_dir else "model.onnx")
    target = str(folder / name)
    write(program, target, 0, monkeypatch)
    old = _snapshot(target, is_dir)
    with monkeypatch.context() as m:
        fault(m)
        with pytest.raises(OSError):
            write(program, target, 1, m)
    assert _snapshot(target, is_dir) == old, "the previous file was damaged"
    assert _leftovers(folder) == [], "a temporary was left behind"
    write(program, target, 1, monkeypatch)          # the control: without the fault the save goes through
    assert _snapshot(target, is_dir) != old


# ------------------------------------------------------------------ SIGKILL and concurrent readers

_STALLED_SAVE = textwrap.dedent("""
    import os, sys, time
    from symgrad.compiler import atomic
    from symgrad.compiler.bundle import Bundle
    src, target, marker = sys.argv[1:4]
    real_fill = None

    def replace_directory(path, fill, *args, **kwargs):
        def slow_fill(tmp):
            fill(tmp)                          # the new bundle is complete in the temporary folder...
            open(marker, "w").close()
            time.sleep(300)                    # ...and the parent kills us before the swap
        return real(path, slow_fill, *args, **kwargs)

    import symgrad.compiler.bundle as bundle_module
    real = atomic.replace_directory
    bundle_module.replace_directory = replace_directory
    Bundle.load(src).save(target)
""")


def test_sigkill_during_a_bundle_save_leaves_the_old_bundle(program, tmp_path):
    old_path, new_src = str(tmp_path / "bundle"), str(tmp_path / "newer")
    program.save(old_path)
    _trainer(program, 3).save(new_src)
    old = _snapshot(old_path, True)
    marker = tmp_path / "stalled"
    proc = subprocess.Popen([sys.executable, "-c", _STALLED_SAVE, new_src, old_path, str(marker)],
                            stderr=subprocess.PIPE, text=True)
    sigkill_at_marker(proc, marker, "bundle save")
    assert _snapshot(old_path, True) == old
    loaded = Bundle.load(old_path)                                 # loadable, and the old state
    for name, value in program.state.items():
        assert np.array_equal(loaded.state[name], value), name
    # the stray temporary folder holds the new bundle; the next save goes through and removes it
    stray = _leftovers(tmp_path)
    assert len(stray) == 1 and os.path.isfile(tmp_path / stray[0] / "manifest.json")
    Bundle.load(new_src).save(old_path)
    assert _snapshot(old_path, True) == _snapshot(new_src, True)
    assert _leftovers(tmp_path) == []


def test_a_reader_racing_a_writer_sees_one_whole_bundle(program, tmp_path):
    path = str(tmp_path / "bundle")
    versions = [_trainer(program, v).save(str(tmp_path / f"v{v}")) and Bundle.load(str(tmp_path / f"v{v}"))
                for v in (0, 1)]
    versions[0].save(path)
    kernels = [v.state["dense/kernel"] for v in versions]
    assert not np.array_equal(*kernels)
    stop, errors = threading.Event(), []

    def writer():
        k = 0
        while not stop.is_set():
            k ^= 1
            versions[k].save(path)
            time.sleep(0.002)              # a busy writer, not one that never lets go of the folder

    thread = threading.Thread(target=writer)
    thread.start()
    seen = set()
    try:
        start = time.monotonic()
        while time.monotonic() < start + 1.0 or (len(seen) < 2 and time.monotonic() < start + 5.0):
            try:
                b = Bundle.load(path)
            except Exception as exc:               # any failure is a torn read
                errors.append(exc)
                continue
            k = next(i for i, kern in enumerate(kernels) if np.array_equal(b.state["dense/kernel"], kern))
            assert b.manifest == versions[k].manifest
            for kind in b.graphs:
                assert b.graphs[kind] == versions[k].graphs[kind]
            seen.add(k)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert seen == {0, 1}, "the race never happened: the test would be weak"


def test_manifests_carry_checksums_of_every_file_and_of_themselves(program, tmp_path):
    path = program.save(str(tmp_path / "bundle"))
    m = Bundle.load(path).manifest
    listed = [g["file"] for g in m["graphs"].values()] + [m["state_file"]]
    # 5 graphs + train_step_weighted and eval_weighted (weights in fit without recompiling) + state
    assert sorted(m["checksums"]) == sorted(listed) and len(listed) == 8
    for name in listed:
        with open(os.path.join(path, name), "rb") as f:
            assert m["checksums"][name] == sha256(f.read())
    assert m["manifest_checksum"] == manifest_checksum(m)
    assert sorted(os.listdir(path)) == sorted(listed + ["manifest.json"])


def test_write_with_for_libraries_that_write_files_themselves(tmp_path):
    """atomic.write_with: the writer gets a temporary path with the same extension (what
    matplotlib's savefig and onnx.save look at); a writer that fails leaves the old file."""
    target = tmp_path / "curve.png"
    seen = []

    def writer(path):
        seen.append(path)
        with open(path, "wb") as f:        # the library's own write
            f.write(b"new image")

    target.write_bytes(b"old image")

    def failing(path):
        with open(path, "wb") as f:
            f.write(b"half an im")
        raise RuntimeError("the library gave up")

    with pytest.raises(RuntimeError):
        atomic.write_with(target, failing)
    assert target.read_bytes() == b"old image" and _leftovers(tmp_path) == []
    atomic.write_with(target, writer)
    assert target.read_bytes() == b"new image" and seen[0].endswith(".png") and seen[0] != str(target)
    assert _leftovers(tmp_path) == []


def test_discard_temporaries_removes_only_the_stale_writes_of_one_file(tmp_path):
    """Only names of the exact form atomic writes use (.tmp-<8 random>-<name>) go; a
    name a user chose that merely looks similar stays."""
    target = tmp_path / "training_state.ckpt"
    for name in (".tmp-abc123yz-training_state.ckpt", ".tmp-q_9w8e7r-training_state.ckpt", ".tmp-x-training_state.ckpt",
                 ".tmp-abcdefgh-other.ckpt", "training_state.ckpt", "notes.tmp-training_state.ckpt"):
        (tmp_path / name).write_bytes(b"x")
    removed = atomic.discard_temporaries(target)
    assert sorted(removed) == [".tmp-abc123yz-training_state.ckpt", ".tmp-q_9w8e7r-training_state.ckpt"]
    assert sorted(os.listdir(tmp_path)) == [".tmp-abcdefgh-other.ckpt", ".tmp-x-training_state.ckpt",
                                           "notes.tmp-training_state.ckpt", "training_state.ckpt"]
    assert atomic.discard_temporaries(tmp_path / "missing" / "f.ckpt") == []


def test_without_an_atomic_swap_a_failed_rename_puts_the_old_bundle_back(program, tmp_path, monkeypatch):
    """Where renameat2 cannot swap (not Linux, some network file systems) the old folder
    is moved aside first; if the new one then cannot take the name, the old one returns."""
    path = program.save(str(tmp_path / "bundle"))
    old = _snapshot(path, True)
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(src).startswith(".tmp-"):       # the new folder taking the name
            _disk_full()
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        _trainer(program, 2).save(path)
    assert _snapshot(path, True) == old and _leftovers(tmp_path) == []
    monkeypatch.setattr(os, "replace", real_replace)
    _trainer(program, 2).save(path)                         # the fallback swap itself works
    assert _snapshot(path, True) != old and _leftovers(tmp_path) == []
    assert Bundle.load(path).manifest["trainer"]["step"] == 2
