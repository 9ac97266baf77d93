"""The bad-input catalogue, runtime side: training data, fit arguments, providers and
session options, callbacks' arguments, bundle and checkpoint loading.

Every case trains (or loads) a real compiled program; each mistake must be a symgrad
error naming the bad value and what is accepted (reliability_kit.expect_error).
"""
import json
import os

import numpy as np
import onnxruntime as ort
import pytest

from symgrad.compiler import BundleError, DataError, OpsetError, ParameterError, ProviderError
from symgrad.compiler.bundle import manifest_checksum
from symgrad.runtime import Trainer, callbacks
from reliability_kit import classification_data, expect_error, mlp_classifier


@pytest.fixture(scope="module")
def program():
    return mlp_classifier()


@pytest.fixture
def trainer(program):
    return Trainer(program, seed=0)


X, Y = classification_data()


def fit(**kwargs):
    def run(tr):
        args = {"x": X, "y": Y, "epochs": 1, "verbose": 0, **kwargs}
        return tr.fit(**args)
    return run


def with_x(change):
    return fit(x=change(X.copy()))


def with_y(change):
    return fit(y=change(Y.copy()))


def _poke(a, value):
    a = a.astype(np.float32)
    a[3, 1] = value
    return a


def _batches():
    yield X[:8], Y[:8]
    yield X[8:16, :3], Y[8:16]


DATA = [
    ("length-mismatch", fit(y=Y[:-5]), DataError, ["x has 40", "y has 35", "same number of samples"]),
    ("feature-count", with_x(lambda x: x[:, :3]), DataError, ["3 features", "expects 4"]),
    ("nan-in-x", with_x(lambda x: _poke(x, np.nan)), DataError, ["nan", "(3, 1)", "finite"]),
    ("inf-in-x", with_x(lambda x: _poke(x, np.inf)), DataError, ["inf", "(3, 1)", "finite"]),
    ("label-too-large", with_y(lambda y: np.where(np.arange(40) == 7, 3, y)), DataError,
     ["label 3", "index 7", "[0, 2]"]),
    ("negative-label", with_y(lambda y: np.where(np.arange(40) == 2, -1, y)), DataError, ["label -1", "[0, 2]"]),
    ("fractional-label", with_y(lambda y: y + 0.5), DataError, ["0.5", "integer class indices"]),
    ("string-x", with_x(lambda x: x.astype(str)), DataError, ["string", "real numbers"]),
    ("object-x", with_x(lambda x: np.array(x.tolist(), dtype=object)), DataError, ["object", "real numbers"]),
    ("ragged-x", fit(x=[[1.0, 2.0], [1.0]], y=Y[:2]), DataError, ["cannot be read as an array", "(N, 4)"]),
    ("empty", fit(x=X[:0], y=Y[:0]), DataError, ["empty", "(0, 4)", "at least one sample"]),
    ("rank-too-high", with_x(lambda x: x[:, :, None]), DataError, ["rank 3", "rank 2", "(N, 4)"]),
    ("rank-too-low", with_x(lambda x: x[:, 0]), DataError, ["rank 1", "(N, 4)"]),
    ("missing-labels", fit(y=None), DataError, ["y", "missing", "(x, y) batches"]),
    # sample weights on a program compiled without them now train through its weighted graph
    # variants (tests/runtime/test_fit_weights.py); a bundle without variants: test_data_validation.py
    ("negative-sample-weight", lambda tr: fit(sample_weight=-np.ones(40))(Trainer(mlp_classifier(sample_weight=True))),
     DataError, ["sample_weight holds -1.0", ">= 0"]),
    ("validation-tuple", fit(validation_data=(X,)), DataError, ["tuple of 1", "(x_val, y_val)"]),
    ("bad-batch-in-iterable", fit(x=_batches(), y=None), DataError, ["x batch", "3 features", "expects 4"]),
    ("predict-features", lambda tr: tr.predict(X[:, :2], verbose=0), DataError, ["2 features", "expects 4"]),
    ("evaluate-labels", lambda tr: tr.evaluate(X, Y + 3, verbose=0), DataError, ["label", "[0, 2]"]),
]

FIT_ARGUMENTS = [
    ("zero-epochs", fit(epochs=0), ParameterError, ["epochs", ">= 1", "0"]),
    ("fractional-epochs", fit(epochs=2.5), ParameterError, ["epochs", "2.5", "integer"]),
    ("zero-batch-size", fit(batch_size=0), ParameterError, ["batch_size", ">= 1", "0"]),
    ("text-batch-size", fit(batch_size="32"), ParameterError, ["batch_size", "'32'", "integer"]),
    ("negative-initial-epoch", fit(initial_epoch=-1), ParameterError, ["initial_epoch", ">= 0", "-1"]),
    ("validation-split-one", fit(validation_split=1.0), ParameterError, ["validation_split", "[0, 1)", "1.0"]),
    ("verbose-level", fit(verbose=5), ParameterError, ["verbose", "0, 1, 2", "5"]),
    ("shuffle-text", fit(shuffle="yes"), ParameterError, ["shuffle", "True or False", "'yes'"]),
    ("callbacks-text", fit(callbacks="early_stopping"), ParameterError, ["callbacks", "str", "Callback"]),
    ("class-weight-list", fit(class_weight=[1, 2]), ParameterError, ["class_weight", "dict", "list"]),
    ("unknown-fit-keyword", fit(epoch=3), ParameterError, ["'epoch'", "epochs"]),
    ("learning-rate-text", lambda tr: setattr(tr, "learning_rate", "fast"), ParameterError,
     ["learning_rate", "'fast'", ">= 0"]),
    ("set-weights-count", lambda tr: tr.set_weights([1, 2]), ParameterError, ["4 arrays", "got 2", "dense/kernel"]),
    ("export-opset", lambda tr: tr.export(os.devnull, opset=10), OpsetError, ["10", "13 to 21"]),
    ("export-to-a-folder", lambda tr: tr.export(os.path.dirname(os.path.abspath(__file__))), ParameterError,
     ["it is a folder", "model.onnx"]),
    ("save-under-a-file", lambda tr: tr.save(os.path.join(os.path.abspath(__file__), "bundle")), ParameterError,
     ["is a file, not a folder", "parent folders"]),
    ("exhausted-generator", fit(x=(b for b in []), y=None), DataError, ["yielded no batches", "steps_per_epoch"]),
]

CALLBACKS = [
    ("early-stopping-mode", lambda tr: callbacks.EarlyStopping(mode="sideways"), ParameterError,
     ["'sideways'", "'auto', 'min' or 'max'"]),
    ("early-stopping-patience", lambda tr: callbacks.EarlyStopping(patience=-2), ParameterError,
     ["patience", ">= 0", "-2"]),
    ("reduce-lr-factor", lambda tr: callbacks.ReduceLROnPlateau(factor=2.0), ParameterError,
     ["factor", "(0, 1)", "2.0"]),
    ("checkpoint-file-type", lambda tr: callbacks.ModelCheckpoint("weights.h5"), ParameterError,
     ["'weights.h5'", "'.onnx'"]),
    ("backup-save-freq", lambda tr: callbacks.BackupAndRestore("backup", save_freq=0), ParameterError,
     ["save_freq", "'epoch' or an integer >= 1", "0"]),
    ("callback-dict-hook", fit(callbacks=[{"onEpochFinish": print}]), ParameterError,
     ["'onEpochFinish'", "on_epoch_end"]),
]

PROVIDERS = [
    ("unknown-provider", lambda tr: Trainer(tr.bundle, provider="tpu"), ProviderError, ["'tpu'", "'cpu', 'cuda'"]),
    ("provider-type", lambda tr: Trainer(tr.bundle, provider=0), ProviderError, ["0", "'cpu', 'cuda'"]),
    ("unknown-session-option", lambda tr: Trainer(tr.bundle, intra_threads=2), ParameterError,
     ["'intra_threads'", "intra_op_num_threads"]),
    ("negative-threads", lambda tr: Trainer(tr.bundle, intra_op_num_threads=-1), ParameterError,
     ["intra_op_num_threads", ">= 0", "-1"]),
    ("trainer-source", lambda tr: Trainer(42), ParameterError, ["int", "Program", "bundle folder"]),
    ("negative-seed", lambda tr: Trainer(tr.bundle, seed=-3), ParameterError, ["seed", ">= 0", "-3"]),
]
if "CUDAExecutionProvider" not in ort.get_available_providers():
    PROVIDERS.append(("cuda-not-installed", lambda tr: Trainer(tr.bundle, provider="cuda"), ProviderError,
                      ["'cuda'", "onnxruntime-gpu", "provider='cpu'"]))

CASES = DATA + FIT_ARGUMENTS + CALLBACKS + PROVIDERS


@pytest.mark.parametrize("fn,cls,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_symgrad_error(trainer, fn, cls, fragments):
    expect_error(lambda: fn(trainer), cls, *fragments)


# ------------------------------------------------------------------ bundles and checkpoints

def _edit_file(name, change):
    def damage(path):
        p = os.path.join(path, name)
        with open(p, "rb") as f:
            data = f.read()
        with open(p, "wb") as f:
            f.write(change(data))
    return damage


def _edit_manifest(change, reseal=False):
    """Edit manifest.json; ``reseal`` recomputes its own checksum (a buggy writer, not a
    damaged file), so that the structural checks behind it are reached."""
    def damage(path):
        p = os.path.join(path, "manifest.json")
        with open(p, encoding="utf-8") as f:
            m = json.load(f)
        change(m)
        if reseal:
            m["manifest_checksum"] = manifest_checksum(m)
        with open(p, "w", encoding="utf-8") as f:
            json.dump(m, f)
    return damage


def _flip(data, at=100):
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:]


def _remove(name):
    return lambda path: os.remove(os.path.join(path, name))


def _set(m, keys, value):
    for k in keys[:-1]:
        m = m[k]
    m[keys[-1]] = value


BUNDLES = [
    ("bundle-folder-missing", lambda p: os.rename(p, p + "-gone"), ["no bundle at", "folder with manifest.json"]),
    ("manifest-missing", _remove("manifest.json"), ["manifest.json is missing", "not a symgrad bundle"]),
    ("graph-missing", _remove("eval.onnx"), ["eval.onnx is missing", "incomplete"]),
    ("manifest-not-json", _edit_file("manifest.json", lambda d: d[: len(d) // 2]), ["manifest.json", "not valid JSON"]),
    ("manifest-binary", _edit_file("manifest.json", lambda d: b"\xff\xfe" + d), ["manifest.json", "utf-8"]),
    ("manifest-other-format", _edit_manifest(lambda m: _set(m, ["format"], "keras")), ["format 'symgrad-bundle'"]),
    ("manifest-newer-version", _edit_manifest(lambda m: _set(m, ["format_version"], 99)),
     ["format version 99", "versions up to 1", "upgrade symgrad"]),
    ("manifest-edited", _edit_manifest(lambda m: _set(m, ["params", 0, "shape"], [8, 4])),
     ["manifest.json", "manifest_checksum", "re-create the bundle"]),
    ("manifest-unsealed", _edit_manifest(lambda m: m.pop("manifest_checksum")), ["has no manifest_checksum"]),
    ("graph-bit-flip", _edit_file("train_step.onnx", _flip), ["train_step.onnx is corrupt", "checksum"]),
    ("state-truncated", _edit_file("state.bin", lambda d: d[:-4]), ["state.bin is corrupt", "checksum"]),
    ("file-outside-bundle", _edit_manifest(lambda m: _set(m, ["graphs", "eval", "file"], "../eval.onnx"), True),
     ["'../eval.onnx'", "file name inside the bundle folder"]),
    ("tensor-size-mismatch", _edit_manifest(lambda m: _set(m, ["params", 0, "shape"], [99, 99]), True),
     ["'dense/kernel'", "nbytes", "39204"]),
    ("no-file-checksums", _edit_manifest(lambda m: m.pop("checksums"), True), ["no checksums"]),
    ("graphs-not-a-map", _edit_manifest(lambda m: _set(m, ["graphs"], ["train_step.onnx"]), True),
     ["'graphs' is", "a map from graph kind"]),
]


@pytest.mark.parametrize("damage,fragments", [c[1:] for c in BUNDLES], ids=[c[0] for c in BUNDLES])
def test_a_damaged_bundle_is_refused_clearly(program, tmp_path, damage, fragments):
    path = program.save(str(tmp_path / "bundle"))
    damage(path)
    expect_error(lambda: Trainer.load(path), BundleError, *fragments)


CHECKPOINTS = [
    ("checkpoint-missing", None, ["no checkpoint at"]),
    ("checkpoint-garbage", lambda d: b"hello world", ["not a symgrad training checkpoint"]),
    ("checkpoint-truncated", lambda d: d[:-10], ["corrupt or truncated"]),
    ("checkpoint-bit-flip", lambda d: _flip(d, len(d) // 2), ["corrupt or truncated"]),
]


@pytest.mark.parametrize("damage,fragments", [c[1:] for c in CHECKPOINTS], ids=[c[0] for c in CHECKPOINTS])
def test_a_damaged_checkpoint_is_refused_clearly(trainer, tmp_path, damage, fragments):
    path = str(tmp_path / "state.ckpt")
    if damage is not None:
        trainer.save_checkpoint(path)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(damage(data))
    expect_error(lambda: trainer.load_checkpoint(path), BundleError, *fragments)


def test_a_checkpoint_from_a_newer_symgrad_is_refused(trainer, tmp_path, monkeypatch):
    from symgrad.runtime import checkpoint
    monkeypatch.setattr(checkpoint, "VERSION", checkpoint.VERSION + 1)
    path = trainer.save_checkpoint(str(tmp_path / "newer.ckpt"))
    monkeypatch.undo()
    expect_error(lambda: trainer.load_checkpoint(path), BundleError, f"format version {checkpoint.VERSION + 1}",
                 f"versions up to {checkpoint.VERSION}", "upgrade symgrad")


def test_a_checkpoint_of_another_program_is_refused(trainer, tmp_path):
    other = Trainer(mlp_classifier(hidden=5))
    path = other.save_checkpoint(str(tmp_path / "other.ckpt"))
    expect_error(lambda: trainer.load_checkpoint(path), BundleError, "different program", "cannot be restored")


def test_the_runtime_catalogue_is_large_enough():
    total = len(CASES) + len(BUNDLES) + len(CHECKPOINTS) + 2
    assert total >= 55
