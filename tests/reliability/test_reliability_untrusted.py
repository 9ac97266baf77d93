"""Bundles, checkpoints and ONNX files from elsewhere are untrusted input (issue 11,
defects 2, 8 and 9).

Every case is tampered the way an attacker would: edit, then recompute the checksums
(plain sha256: they catch damage, not tampering). Each must give a clean BundleError
(OnnxModelError for a plain ONNX file) with no raw exception chained to it, change
nothing on disk or in a live trainer, and never show the bytes of a local file.
"""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from symgrad.compiler.errors import BundleError, FolderInUseError, OnnxModelError
from symgrad.compiler.untrusted import load_onnx
from symgrad.runtime import Trainer, callbacks
from symgrad.runtime.cli import main as cli_main
from reliability_kit import classification_data, expect_error, mlp_classifier, sigkill_at_marker
from tamper_kit import (SECRET, copy_bundle, folder_bytes, tamper_bundle, tamper_checkpoint, trainer_state,
                        with_external_initializer)

X, Y = classification_data()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained bundle (Adam, so there are slots) and a checkpoint of it."""
    root = tmp_path_factory.mktemp("src")
    tr = Trainer(mlp_classifier(optimizer="adam"), seed=0)
    tr.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    tr.save(str(root / "bundle"))
    tr.save_checkpoint(str(root / "state.ckpt"))
    return root


@pytest.fixture
def project(tmp_path, saved, monkeypatch):
    """The user's folder, with a secret in .env, a downloaded bundle, and the working
    folder set there (onnxruntime resolves external data of an in-memory model from it)."""
    (tmp_path / ".env").write_text(f"TOKEN={SECRET}\n")
    copy_bundle(str(saved / "bundle"), str(tmp_path / "bundle"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _refused(project, cls=BundleError, *fragments):
    before = folder_bytes(str(project))
    message = expect_error(lambda: Trainer.load(str(project / "bundle")), cls, *fragments)
    assert SECRET not in message
    assert folder_bytes(str(project)) == before
    return message


# ------------------------------------------------------------------ defect 2: reading local files


@pytest.mark.parametrize("location", [".env", "../.env", "ABSOLUTE", "state.bin"])
def test_external_data_in_a_bundle_graph_is_refused(project, location):
    """The review's case: an initializer stored as external data at '.env' made
    onnxruntime read the working folder's .env, and predict returned its bytes."""
    if location == "ABSOLUTE":
        location = str(project / ".env")

    def edit(manifest, files):
        files["inference.onnx"] = with_external_initializer(files["inference.onnx"], location, "y_pred")
    tamper_bundle(str(project / "bundle"), edit)
    _refused(project, BundleError, "external data", "inference")


def test_the_cli_never_shows_a_tampered_bundles_local_file(project, capsys):
    tamper_bundle(str(project / "bundle"), lambda m, f: f.update(
        {"inference.onnx": with_external_initializer(f["inference.onnx"], ".env", "y_pred")}))
    before = folder_bytes(str(project))
    for argv in (["export", "bundle", "-o", "m.onnx"], ["inspect", "bundle/inference.onnx"]):
        assert cli_main(argv) == 2
        captured = capsys.readouterr()
        assert SECRET not in captured.out + captured.err and "external data" in captured.err
        assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert folder_bytes(str(project)) == before


@pytest.mark.parametrize("victim", ["state.bin", "train_step.onnx", "manifest.json", "extra"])
def test_symlinks_inside_a_bundle_are_refused(project, victim):
    """A link to a file with the very bytes the checksum expects is still refused: the
    next download could point it at ~/.ssh."""
    bundle = project / "bundle"
    if victim == "extra":
        os.symlink(project / ".env", bundle / "notes.txt")
    else:
        os.rename(bundle / victim, project / f"real-{victim}")
        os.symlink(project / f"real-{victim}", bundle / victim)
    _refused(project, BundleError, "symbolic link")


@pytest.mark.parametrize("kind", ["train_step", "eval", "inference"])
def test_a_vendor_domain_operator_is_refused(project, kind):
    def edit(manifest, files):
        model = onnx.load_from_string(files[f"{kind}.onnx"])
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        node = next(n for n in model.graph.node if n.op_type == "Relu")
        node.op_type, node.domain = "Gelu", "com.microsoft"     # what onnxruntime would happily run
        files[f"{kind}.onnx"] = model.SerializeToString()
    tamper_bundle(str(project / "bundle"), edit)
    _refused(project, BundleError, "com.microsoft", kind)


# ------------------------------------------------------------------ defect 8: tampered manifests


def _swap(a, b, lists_too):
    def edit(manifest, files):
        files[f"{a}.onnx"], files[f"{b}.onnx"] = files[f"{b}.onnx"], files[f"{a}.onnx"]
        if lists_too:              # the attacker also makes the manifest's lists match
            ga, gb = manifest["graphs"][a], manifest["graphs"][b]
            for key in ("inputs", "outputs", "feeds"):
                ga[key], gb[key] = gb.get(key, {}), ga.get(key, {})
    return edit


MANIFEST_TAMPERING = {
    "train_step swapped for eval": (_swap("train_step", "eval", False), "train_step"),
    "train_step swapped for eval, lists too": (_swap("train_step", "eval", True), "another kind"),
    "inference swapped for eval, lists too": (_swap("inference", "eval", True), "another kind"),
    "learning rate NaN": (lambda m, f: m["trainer"].update(learning_rate=float("nan")), "NaN"),
    "learning rate -1": (lambda m, f: m["trainer"].update(learning_rate=-1), "learning_rate"),
    "optimizer learning rate inf": (lambda m, f: m["optimizer"]["config"].update(learning_rate=1e999), "Infinity"),
    "step -5": (lambda m, f: m["trainer"].update(step=-5), "step"),
    "step 2.5": (lambda m, f: m["trainer"].update(step=2.5), "step"),
    "dtype object": (lambda m, f: m["params"][0].update(dtype="object"), "dtype"),
    "shape negative": (lambda m, f: m["params"][0].update(shape=[-4, 8]), "shape"),
    "shape huge": (lambda m, f: m["params"][0].update(shape=[2 ** 40, 2 ** 40]), "shape"),
    "offset past the end": (lambda m, f: m["params"][1].update(offset=10 ** 9), "state file"),
    "overlapping tensors": (lambda m, f: m["params"][1].update(offset=m["params"][0]["offset"]), "overlap"),
    "nbytes wrong": (lambda m, f: m["params"][0].update(nbytes=4), "nbytes"),
    "graph file outside": (lambda m, f: m["graphs"]["eval"].update(file="../eval.onnx"), "file name"),
    "unknown graph kind": (lambda m, f: m["graphs"].update(evil=dict(m["graphs"]["eval"], file="eval2.onnx")),
                           "evil"),
    "input not in the manifest": (lambda m, f: m["graphs"]["eval"]["inputs"].append("secret_input"), "inputs"),
    "data x missing": (lambda m, f: m["data"].pop("x"), "data"),
    "duplicate tensor name": (lambda m, f: m["slots"][0].update(name=m["params"][0]["name"]), "both"),
    "parameter shape edited": (lambda m, f: m["params"][1].update(shape=[2, 4]), "shape"),
    "manifest is a list": (lambda m, f: (m.clear(), m.update(format="symgrad-bundle", format_version=1,
                                                             graphs=[])), "manifest.json"),
}


@pytest.mark.parametrize("case", list(MANIFEST_TAMPERING))
def test_a_tampered_manifest_is_a_clean_bundle_error(project, case):
    edit, fragment = MANIFEST_TAMPERING[case]
    tamper_bundle(str(project / "bundle"), edit)
    _refused(project, BundleError, fragment)


def test_a_graph_that_fails_only_when_run_is_a_bundle_error_and_keeps_the_state(project):
    """The signature matches the manifest, but the graph reshapes x to a shape no batch
    fits: onnxruntime fails inside the step. The error names the graph, and the state
    is the one before the step."""
    def edit(manifest, files):
        model = onnx.load_from_string(files["train_step.onnx"])
        node = next(n for n in model.graph.node if "x" in n.input)
        node.input[list(node.input).index("x")] = "x_reshaped"
        model.graph.initializer.append(numpy_helper.from_array(np.array([3, -1], np.int64), "bad_shape"))
        model.graph.node.insert(0, helper.make_node("Reshape", ["x", "bad_shape"], ["x_reshaped"]))
        files["train_step.onnx"] = model.SerializeToString()
    tamper_bundle(str(project / "bundle"), edit)
    tr = Trainer.load(str(project / "bundle"))
    before = trainer_state(tr)
    expect_error(lambda: tr.fit(X, Y, epochs=1, batch_size=8, verbose=0), BundleError, "train_step", "onnxruntime")
    expect_error(lambda: tr.train_on_batch(X[:8], Y[:8]), BundleError, "train_step")
    assert trainer_state(tr)[:3] == before[:3]          # tensors, step, learning rate (the shuffle drew from the RNG)
    assert np.isfinite(tr.evaluate(X, Y, verbose=0)).all()        # the other graphs still work


def test_the_untampered_bundle_loads_and_trains(project):
    """The control: the same fixture without tampering goes through every check."""
    tr = Trainer.load(str(project / "bundle"))
    tr.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    assert tr.step == 10 and np.isfinite(tr.evaluate(X, Y, verbose=0)).all()


# ------------------------------------------------------------------ defect 8: tampered checkpoints


def _tensor_entry(header, prefix="tensor/"):
    return next(e for e in header["tensors"] if e["name"].startswith(prefix))


CHECKPOINT_TAMPERING = {
    "learning rate NaN": (lambda h, p: h["meta"].update(learning_rate=float("nan")), "learning_rate"),
    "learning rate -1": (lambda h, p: h["meta"].update(learning_rate=-1.0), "learning_rate"),
    "step -5": (lambda h, p: h["meta"].update(step=-5), "step"),
    "step a string": (lambda h, p: h["meta"].update(step="7"), "step"),
    "rng of another kind": (lambda h, p: h["meta"]["rng"].update(bit_generator="MT19937"), "MT19937"),
    "rng state junk": (lambda h, p: h["meta"]["rng"].update(state={"state": "x", "inc": []}), "random state"),
    "dtype object": (lambda h, p: _tensor_entry(h).update(dtype="object"), "dtype"),
    "shape of another tensor": (lambda h, p: _tensor_entry(h).update(shape=[_tensor_entry(h)["nbytes"] // 4]),
                                "tensor"),
    "offset past the end": (lambda h, p: _tensor_entry(h).update(offset=len(p)), "payload"),
    "overlapping tensors": (lambda h, p: h["tensors"][1].update(offset=h["tensors"][0]["offset"]), "overlap"),
    "tensor missing": (lambda h, p: h.update(tensors=h["tensors"][1:]), "lacks"),
    "position epoch -1": (lambda h, p: h["meta"]["position"].update(epoch=-1), "epoch"),
    "position batch without records": (lambda h, p: h["meta"]["position"].update(batch=3), "batch"),
    "fingerprint of another program": (lambda h, p: h["meta"].update(fingerprint="sha256:0"), "different program"),
    "meta a list": (lambda h, p: h.update(meta=[]), "metadata"),
    "tensor table junk": (lambda h, p: h.update(tensors={"a": 1}), "tensor table"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_TAMPERING))
def test_a_tampered_checkpoint_is_refused_and_the_trainer_is_untouched(saved, tmp_path, case):
    edit, fragment = CHECKPOINT_TAMPERING[case]
    path = tmp_path / "state.ckpt"
    path.write_bytes((saved / "state.ckpt").read_bytes())
    tamper_checkpoint(str(path), edit)
    live = Trainer(mlp_classifier(optimizer="adam"), seed=3)
    live.train_on_batch(X[:8], Y[:8])
    live.learning_rate = 0.25
    before, on_disk = trainer_state(live), path.read_bytes()
    expect_error(lambda: live.load_checkpoint(str(path)), BundleError, fragment)
    assert trainer_state(live) == before and path.read_bytes() == on_disk
    live.train_on_batch(X[:8], Y[:8])                 # and it still trains
    assert live.step == 2


class Picky(callbacks.Callback):
    """A callback whose own load_state_dict refuses values it cannot use."""

    def __init__(self):
        super().__init__()
        self.n = 1

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        if state["n"] > 10:
            raise ValueError(f"n={state['n']} is too large")
        self.n = state["n"]


@pytest.mark.parametrize("case", ["load_state_dict raises", "wrong form"])
def test_a_restore_refused_by_a_callback_puts_every_callback_back(case):
    """All or nothing: a callback that cannot take its state (found after another one
    was loaded) leaves the trainer and every callback as they were."""
    from symgrad.runtime import checkpoint
    tr = Trainer(mlp_classifier(optimizer="adam"), seed=0)
    stop, plateau, picky = callbacks.EarlyStopping(monitor="loss", patience=3), \
        callbacks.ReduceLROnPlateau(monitor="loss"), Picky()
    cbs = [stop, plateau, picky]
    stop.wait, plateau.wait = 1, 1
    tensors, meta = checkpoint.capture(tr, {"epoch": 1, "batch": 0}, cbs)
    meta["callbacks"]["EarlyStopping#0"]["wait"] = 2
    if case == "load_state_dict raises":
        meta["callbacks"]["Picky#0"]["n"] = 11
    else:
        meta["callbacks"]["ReduceLROnPlateau#0"]["best"] = "not a number"
    tr.train_on_batch(X[:8], Y[:8])
    before = trainer_state(tr, cbs)
    expect_error(lambda: checkpoint.restore(tr, tensors, meta, cbs, source="ckpt"), BundleError,
                 "Picky" if case == "load_state_dict raises" else "ReduceLROnPlateau")
    assert trainer_state(tr, cbs) == before and stop.wait == 1


# ------------------------------------------------------------------ plain ONNX files (importer, CLI)


def _onnx_with_initializer(folder, location=None, symlink=False):
    """y = x + w, with w stored inline or as external data at ``location``."""
    w = np.arange(4, dtype=np.float32)
    init = numpy_helper.from_array(w, "w")
    if location is not None:
        target = folder / "weights.bin"
        target.write_bytes(w.tobytes())
        if symlink:
            os.symlink(target, folder / location)
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", "16")):
            e = init.external_data.add()
            e.key, e.value = k, v
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_load_onnx_reads_external_data_inside_the_models_folder(tmp_path):
    model = load_onnx(str(_onnx_with_initializer(tmp_path, "weights.bin")))
    w = numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_array_equal(w, np.arange(4, dtype=np.float32))
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("location,fragment", [
    ("../.env", "outside"), ("ABSOLUTE", "outside"), ("sub/../../.env", "outside"),
    ("linked.bin", "symbolic link"), ("missing.bin", "does not exist")])
def test_load_onnx_refuses_external_data_that_leaves_the_folder(tmp_path, location, fragment):
    (tmp_path / ".env").write_text(SECRET)
    folder = tmp_path / "m"
    folder.mkdir()
    if location == "ABSOLUTE":
        location = str(tmp_path / ".env")
    path = _onnx_with_initializer(folder, location, symlink=location == "linked.bin")
    message = expect_error(lambda: load_onnx(str(path)), OnnxModelError, fragment, str(path))
    assert SECRET not in message


def test_load_onnx_refuses_symlinks_vendor_ops_and_in_memory_external_data(tmp_path):
    path = _onnx_with_initializer(tmp_path)
    os.symlink(path, tmp_path / "link.onnx")
    expect_error(lambda: load_onnx(str(tmp_path / "link.onnx")), OnnxModelError, "symbolic link")
    model = onnx.load(str(path))
    model.graph.node[0].domain = "com.microsoft"
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    expect_error(lambda: load_onnx(model), OnnxModelError, "com.microsoft")
    external = onnx.load(str(_onnx_with_initializer(tmp_path / "..", None)))
    external.graph.initializer[0].data_location = TensorProto.EXTERNAL
    e = external.graph.initializer[0].external_data.add()
    e.key, e.value = "location", ".env"
    expect_error(lambda: load_onnx(external), OnnxModelError, "external data")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07junk that is no protobuf" * 3)
    expect_error(lambda: load_onnx(str(tmp_path / "junk.onnx")), OnnxModelError, "not an ONNX model")
    expect_error(lambda: load_onnx(str(tmp_path)), OnnxModelError, "folder")


def test_cli_inspect_refuses_a_model_that_reads_a_local_file(tmp_path, capsys):
    (tmp_path / ".env").write_text(SECRET)
    folder = tmp_path / "m"
    folder.mkdir()
    path = _onnx_with_initializer(folder, "../.env")
    assert cli_main(["inspect", str(path)]) == 2
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err and "outside" in captured.err
    ok = _onnx_with_initializer(tmp_path / "m", "weights.bin")
    assert cli_main(["inspect", str(ok)]) == 0 and "initializers: 1" in capsys.readouterr().out


# ------------------------------------------------------------------ defect 9: one run per backup folder

_FIT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from symgrad.compiler.errors import FolderInUseError
    from symgrad.runtime import Trainer, callbacks
    bundle, backup, marker = sys.argv[1:4]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (np.abs(x[:, 0] * 2).astype(np.int64) % 3)

    class Stall(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if marker != "-":
                open(marker, "w").close()
                time.sleep(300)

    try:
        Trainer.load(bundle, seed=0).fit(x, y, epochs=2, batch_size=8, verbose=0,
                                         callbacks=[callbacks.BackupAndRestore(backup), Stall()])
    except FolderInUseError as exc:
        print(exc)
        sys.exit(3)
""")


def test_two_processes_on_one_backup_folder_the_second_is_refused(saved, tmp_path):
    backup, marker = tmp_path / "backup", tmp_path / "stalled"
    bundle = str(saved / "bundle")
    first = subprocess.Popen([sys.executable, "-c", _FIT, bundle, str(backup), str(marker)],
                             stderr=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        while not marker.exists():
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() - start < 120, "the first run never reached its first epoch end"
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-c", _FIT, bundle, str(backup), "-"], capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 3, second.stderr
        assert str(backup) in second.stdout and "in use" in second.stdout and "Traceback" not in second.stderr
    finally:
        sigkill_at_marker(first, marker, "fit")
    # the kernel dropped the dead run's lock: a new run takes the folder and resumes from its state
    again = subprocess.run([sys.executable, "-c", _FIT, bundle, str(backup), "-"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not backup.exists() or os.listdir(backup) == []


def test_a_fit_that_raises_lets_go_of_the_folder(saved, tmp_path):
    """The lock is released however the fit ends, so a retry in the same process works."""
    class Boom(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    tr = Trainer.load(str(saved / "bundle"), seed=0)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(X, Y, epochs=2, batch_size=8, verbose=0, callbacks=[callbacks.BackupAndRestore(tmp_path / "b"), Boom()])
    tr.fit(X, Y, epochs=2, batch_size=8, verbose=0, callbacks=[callbacks.BackupAndRestore(tmp_path / "b")])
    assert not (tmp_path / "b").exists()


def test_the_lock_refuses_a_second_holder_in_one_process(tmp_path):
    from symgrad.compiler.locks import FolderLock
    a = FolderLock(tmp_path / "f", "A").acquire()
    expect_error(lambda: FolderLock(tmp_path / "f", "B").acquire(), FolderInUseError, str(tmp_path / "f"), "B")
    a.release(remove=True)
    FolderLock(tmp_path / "f", "B").acquire().release()
