"""Property test: tampered bundles and checkpoints (issue 11, defect 8).

Each example takes a good bundle or checkpoint and tampers with it as an attacker would,
recomputing every checksum afterwards:

- a manifest value that no valid bundle has (a dtype outside the list, a negative or
  huge shape, an offset outside the state file or onto another tensor, a learning rate
  that is NaN, infinite or negative, a negative step, a graph file outside the folder,
  a graph input the graph lacks, a duplicate name, an unknown graph kind, ...);
- two graphs swapped (with the manifest's lists swapped too, or not);
- an external-data reference in a graph (to .env beside the bundle, a parent folder,
  an absolute path, or a file inside the bundle);
- a file of the bundle replaced by a symlink to a copy with the very same bytes;
- a checkpoint value that no valid checkpoint has (step, learning rate, random state,
  tensor table, position, fingerprint, callback state).

Each must give a clean BundleError (no raw exception chained to it), leave every file
on disk as it was, and (for a checkpoint) leave the live trainer exactly as it was.
A second pair of properties edits any value at random (valid or not): whatever loads
must then train, evaluate and predict, and whatever is refused is a clean SymgradError.

Profiles: 'ci' (default: EXAMPLES and ANY_EXAMPLES below); HYPOTHESIS_PROFILE=full runs 500 each.
"""
import json
import math
import os
import shutil
import tempfile

from hypothesis import HealthCheck, event, given, settings, strategies as st

from symgrad.compiler import SymgradError
from symgrad.compiler.errors import BundleError
from symgrad.runtime import Trainer, callbacks
from reliability_kit import classification_data, mlp_classifier, raw_links
from tamper_kit import (SECRET, folder_bytes, tamper_bundle, tamper_checkpoint, trainer_state,
                        with_external_initializer)

FULL = os.environ.get("HYPOTHESIS_PROFILE") == "full"
EXAMPLES = 500 if FULL else 40
ANY_EXAMPLES = 500 if FULL else 20      # these compile sessions for every accepted edit
X, Y = classification_data(16)
KINDS = ("train_step", "gradients", "update", "eval", "inference")
_CACHE = {}


def source():
    """A saved, trained bundle (Adam: slots too) and a checkpoint with callback states."""
    if not _CACHE:
        root = tempfile.mkdtemp(prefix="symgrad-tamper-src-")
        tr = Trainer(mlp_classifier(optimizer="adam"), seed=0)
        tr.fit(X, Y, epochs=1, batch_size=8, verbose=0)
        tr.save(os.path.join(root, "bundle"))
        from symgrad.runtime import checkpoint
        cbs = [callbacks.EarlyStopping(monitor="loss"), callbacks.ReduceLROnPlateau(monitor="loss")]
        for cb in cbs:
            cb.set_model(tr)
            cb.on_train_begin()
        tensors, meta = checkpoint.capture(tr, {"epoch": 1, "batch": 0}, cbs)
        checkpoint.write_checkpoint(os.path.join(root, "state.ckpt"), tensors, meta)
        _CACHE["root"] = root
    return _CACHE["root"]


def fresh_copy():
    work = tempfile.mkdtemp(prefix="symgrad-tamper-")
    shutil.copytree(os.path.join(source(), "bundle"), os.path.join(work, "bundle"))
    shutil.copy(os.path.join(source(), "state.ckpt"), os.path.join(work, "state.ckpt"))
    with open(os.path.join(work, ".env"), "w") as f:
        f.write(SECRET)
    return work


def assert_clean(exc, cls=BundleError):
    assert isinstance(exc, cls), f"{type(exc).__name__}: {exc}"
    assert not raw_links(exc), [type(e).__name__ for e in raw_links(exc)]
    assert SECRET not in str(exc)


# ------------------------------------------------------------------ invalid values by construction

NOT_A_NUMBER = st.sampled_from([float("nan"), float("inf"), float("-inf"), "0.1", None, True, [], {}])
BAD_RATE = st.one_of(NOT_A_NUMBER, st.floats(max_value=-1e-12, allow_nan=False, allow_infinity=False))
BAD_COUNT = st.one_of(NOT_A_NUMBER, st.integers(max_value=-1), st.floats(0.5, 1e6).filter(lambda v: v != int(v)))
BAD_DTYPE = st.sampled_from(["object", "float128", "<U4", "complex64", "str", "", 3, None, ["float32"]])
BAD_SHAPE = st.one_of(st.sampled_from([None, "4", 4, {"0": 4}]),
                      st.lists(st.integers(-5, 5), min_size=1, max_size=3).map(lambda s: s + [-1]),
                      st.lists(st.integers(1, 3), min_size=1, max_size=2).map(lambda s: s + [2 ** 40]),
                      st.lists(st.integers(1, 3), min_size=9, max_size=10),
                      st.lists(st.integers(1, 3), min_size=1, max_size=2).map(lambda s: s + [1.5]))
BAD_FILE = st.sampled_from(["../eval.onnx", "/etc/passwd", "", ".", "..", "a/b.onnx", "manifest.json", None, 7,
                            "missing.onnx"])


def _entry(m, data):
    section = data.draw(st.sampled_from(["params", "slots"]))
    return m[section][data.draw(st.integers(0, len(m[section]) - 1))]


def _offset_edit(m, data):
    e = _entry(m, data)
    others = [x for s in ("params", "slots") for x in m[s] if x is not e and x["nbytes"]]
    size = sum(x["nbytes"] for s in ("params", "slots") for x in m[s])
    e["offset"] = data.draw(st.one_of(
        st.integers(max_value=-1), st.integers(size - e["nbytes"] + 1, 2 ** 62), NOT_A_NUMBER,
        st.sampled_from([o["offset"] for o in others])))                  # onto another tensor


def _nbytes_edit(m, data):
    e = _entry(m, data)
    e["nbytes"] = data.draw(st.integers(-10, 10 ** 6).filter(lambda v: v != e["nbytes"]) | NOT_A_NUMBER)


def _graph_lists(m, data):
    g = m["graphs"][data.draw(st.sampled_from(KINDS))]
    key = data.draw(st.sampled_from(["inputs", "outputs"]))
    if data.draw(st.booleans()) and g[key]:
        g[key].pop(data.draw(st.integers(0, len(g[key]) - 1)))
    else:
        g[key].append(data.draw(st.sampled_from(["secret", "grad/nothing", "next/nothing", "metric/x", "loss2"])))


def _duplicate_name(m, data):
    e = _entry(m, data)
    others = [x["name"] for s in ("params", "slots") for x in m[s] if x is not e] + ["x", "y", "learning_rate"]
    e["name"] = data.draw(st.sampled_from(others))


MANIFEST_EDITS = {
    "tensor dtype": lambda m, d: _entry(m, d).update(dtype=d.draw(BAD_DTYPE)),
    "tensor shape": lambda m, d: _entry(m, d).update(shape=d.draw(BAD_SHAPE)),
    "tensor offset": _offset_edit,
    "tensor nbytes": _nbytes_edit,
    "tensor name": _duplicate_name,
    "saved learning rate": lambda m, d: m["trainer"].update(learning_rate=d.draw(BAD_RATE)),
    "optimizer learning rate": lambda m, d: m["optimizer"]["config"].update(learning_rate=d.draw(BAD_RATE)),
    "saved step": lambda m, d: m["trainer"].update(step=d.draw(BAD_COUNT)),
    "graph file": lambda m, d: m["graphs"][d.draw(st.sampled_from(KINDS))].update(file=d.draw(BAD_FILE)),
    "graph lists": _graph_lists,
    "graph kind": lambda m, d: m["graphs"].update({d.draw(st.sampled_from(["evil", "", "train"])): m["graphs"]["eval"]}),
    "no train_step": lambda m, d: m["graphs"].pop("train_step"),
    "data dtype": lambda m, d: m["data"][d.draw(st.sampled_from(["x", "y"]))].update(dtype=d.draw(BAD_DTYPE)),
    "data shape": lambda m, d: m["data"]["x"].update(shape=d.draw(BAD_SHAPE | st.just([3, 4]))),
    "bundle dtype": lambda m, d: m.update(dtype=d.draw(BAD_DTYPE | st.just("int64"))),
    "opset": lambda m, d: m.update(opset=d.draw(NOT_A_NUMBER | st.integers(max_value=6))),
    "section type": lambda m, d: m.update({d.draw(st.sampled_from(["params", "slots", "data", "graphs"])):
                                           d.draw(st.sampled_from([None, 3, "x", {"a": 1}, [1, 2]]))}),
}


def _swap(data):
    a, b = data.draw(st.lists(st.sampled_from(KINDS), min_size=2, max_size=2, unique=True))
    lists_too = data.draw(st.booleans())

    def edit(m, files):
        fa, fb = m["graphs"][a]["file"], m["graphs"][b]["file"]
        files[fa], files[fb] = files[fb], files[fa]
        if lists_too:
            for key in ("inputs", "outputs", "feeds"):
                m["graphs"][a][key], m["graphs"][b][key] = m["graphs"][b].get(key, {}), m["graphs"][a].get(key, {})
    return f"swap {a}<->{b}" + (" with lists" if lists_too else ""), edit


def _external(data, work):
    kind = data.draw(st.sampled_from(KINDS))
    location = data.draw(st.sampled_from([".env", "../.env", os.path.join(work, ".env"), "state.bin",
                                          "sub/../../.env", "train_step.onnx"]))

    def edit(m, files):
        f = m["graphs"][kind]["file"]
        files[f] = with_external_initializer(files[f], location, data.draw(st.sampled_from([None, "y_pred"])))
    return f"external data in {kind}", edit


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_property_every_tampered_bundle_is_a_clean_bundle_error(data):
    work = fresh_copy()
    bundle = os.path.join(work, "bundle")
    try:
        family = data.draw(st.sampled_from(["manifest", "swap", "external", "symlink"]))
        if family == "manifest":
            name = data.draw(st.sampled_from(sorted(MANIFEST_EDITS)))
            tamper_bundle(bundle, lambda m, files: MANIFEST_EDITS[name](m, data))
        elif family == "swap":
            name, edit = _swap(data)
            tamper_bundle(bundle, edit)
        elif family == "external":
            name, edit = _external(data, work)
            tamper_bundle(bundle, edit)
        else:
            victim = data.draw(st.sampled_from(sorted(os.listdir(bundle))))
            name = f"symlink {victim}"
            os.rename(os.path.join(bundle, victim), os.path.join(work, victim))
            os.symlink(os.path.join(work, victim), os.path.join(bundle, victim))
        event(family)
        before = folder_bytes(work)
        try:
            Trainer.load(bundle)
        except Exception as exc:                    # noqa: BLE001 - the assertion names what it was
            assert_clean(exc)
        else:
            raise AssertionError(f"tampering accepted: {name}")
        assert folder_bytes(work) == before
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ checkpoints


def _tensor_entry(h, data):
    return h["tensors"][data.draw(st.integers(0, len(h["tensors"]) - 1))]


def _ckpt_offset(h, p, data):
    e = _tensor_entry(h, data)
    others = [x["offset"] for x in h["tensors"] if x is not e and x["nbytes"] and e["nbytes"]]
    e["offset"] = data.draw(st.one_of(st.integers(max_value=-1), st.integers(len(p) - e["nbytes"] + 1, 2 ** 62),
                                      NOT_A_NUMBER, *([st.sampled_from(others)] if others else [])))


def _trainer_tensor(h, data):
    return data.draw(st.sampled_from([e for e in h["tensors"] if e["name"].startswith("tensor/")]))


CHECKPOINT_EDITS = {
    "step": lambda h, p, d: h["meta"].update(step=d.draw(BAD_COUNT)),
    "learning rate": lambda h, p, d: h["meta"].update(learning_rate=d.draw(BAD_RATE)),
    "rng kind": lambda h, p, d: h["meta"]["rng"].update(bit_generator=d.draw(st.sampled_from(
        ["MT19937", "Philox", "", None, 3]))),
    "rng state": lambda h, p, d: h["meta"]["rng"].update(state=d.draw(st.sampled_from(
        [None, "x", {}, {"state": "x", "inc": 1}, {"state": -1}, {"state": 1, "inc": "y"}, [1, 2]]))),
    "rng": lambda h, p, d: h["meta"].update(rng=d.draw(NOT_A_NUMBER)),
    "fingerprint": lambda h, p, d: h["meta"].update(fingerprint=d.draw(st.sampled_from(["", "sha256:0", None, 1]))),
    "tensor dtype": lambda h, p, d: _tensor_entry(h, d).update(dtype=d.draw(BAD_DTYPE)),
    "tensor shape": lambda h, p, d: _tensor_entry(h, d).update(shape=d.draw(BAD_SHAPE)),
    "trainer tensor reshaped": lambda h, p, d: _trainer_tensor(h, d).update(
        shape=[_trainer_tensor(h, d)["nbytes"] // 4 + 1]),
    "tensor offset": _ckpt_offset,
    "tensor missing": lambda h, p, d: h["tensors"].remove(_trainer_tensor(h, d)),
    "tensor table": lambda h, p, d: h.update(tensors=d.draw(st.sampled_from([None, 3, {}, "x", [1], [{}]]))),
    "meta": lambda h, p, d: h.update(meta=d.draw(st.sampled_from([None, 3, [], "x"]))),
    "position epoch": lambda h, p, d: h["meta"]["position"].update(epoch=d.draw(BAD_COUNT)),
    "position batch": lambda h, p, d: h["meta"]["position"].update(batch=d.draw(BAD_COUNT | st.integers(1, 9))),
    "position": lambda h, p, d: h["meta"].update(position=d.draw(st.sampled_from([3, "x", [1]]))),
    "callback state": lambda h, p, d: h["meta"]["callbacks"][d.draw(st.sampled_from(
        ["EarlyStopping#0", "ReduceLROnPlateau#0"]))].update(d.draw(st.sampled_from(
            [{"wait": "x"}, {"best": "x"}, {"best": {}}, {"wait": True}, {"extra": 1}]))),
    "callback states": lambda h, p, d: h["meta"].update(callbacks=d.draw(st.sampled_from([3, "x", [1]]))),
}


def _live_trainer():
    tr = Trainer(mlp_classifier(optimizer="adam"), seed=7)
    tr.train_on_batch(X[:8], Y[:8])
    tr.learning_rate = 0.125
    cbs = [callbacks.EarlyStopping(monitor="loss"), callbacks.ReduceLROnPlateau(monitor="loss")]
    for cb in cbs:
        cb.set_model(tr)
        cb.on_train_begin()
    return tr, cbs


_LIVE = {}


def live_trainer():
    """One live trainer for all examples: a refused restore must leave it as it was, so
    it stays valid from one example to the next (a changed one fails the next example)."""
    if not _LIVE:
        _LIVE["t"] = _live_trainer()
    return _LIVE["t"]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_property_every_tampered_checkpoint_is_refused_and_changes_nothing(data):
    from symgrad.runtime import checkpoint
    work = fresh_copy()
    path = os.path.join(work, "state.ckpt")
    try:
        name = data.draw(st.sampled_from(sorted(CHECKPOINT_EDITS)))
        event(name)
        tamper_checkpoint(path, lambda h, p: CHECKPOINT_EDITS[name](h, p, data))
        tr, cbs = live_trainer()
        before, on_disk = trainer_state(tr, cbs), folder_bytes(work)
        try:
            tensors, meta = checkpoint.read_checkpoint(path)
            checkpoint.restore(tr, tensors, meta, cbs, source=f"checkpoint {path!r}")
        except Exception as exc:                    # noqa: BLE001
            assert_clean(exc)
        else:
            raise AssertionError(f"tampering accepted: {name}")
        assert trainer_state(tr, cbs) == before, "a refused restore changed the trainer"
        assert folder_bytes(work) == on_disk
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ any edit: refused cleanly, or it works


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("checksums", "manifest_checksum"):
                yield path + (k,)
                yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield path + (i,)
            yield from _leaves(v, path + (i,))


ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.floats(allow_nan=False),
                      st.text(max_size=6), st.lists(st.integers(-2, 4), max_size=3),
                      st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _works(tr):
    tr.train_on_batch(X[:8], Y[:8])
    tr.evaluate(X, Y, verbose=0)
    tr.predict(X, verbose=0)


@settings(max_examples=ANY_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_property_any_manifest_edit_is_refused_cleanly_or_works(data):
    work = fresh_copy()
    bundle = os.path.join(work, "bundle")
    try:
        with open(os.path.join(bundle, "manifest.json")) as f:
            paths = list(_leaves(json.load(f)))
        where = data.draw(st.sampled_from(paths))
        value = data.draw(ANY_VALUE)
        tamper_bundle(bundle, lambda m, files: _set(m, where, value))
        try:
            tr = Trainer.load(bundle)
        except Exception as exc:                    # noqa: BLE001
            assert_clean(exc)
            event("refused")
            return
        event("accepted")
        try:
            _works(tr)
        except Exception as exc:                    # noqa: BLE001
            assert isinstance(exc, SymgradError) and not raw_links(exc), \
                f"edit {where} = {value!r} loaded, then {type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@settings(max_examples=ANY_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_property_any_checkpoint_edit_is_refused_cleanly_or_works(data):
    from symgrad.runtime import checkpoint
    from tamper_kit import read_checkpoint_parts
    work = fresh_copy()
    path = os.path.join(work, "state.ckpt")
    try:
        header, _ = read_checkpoint_parts(path)
        where = data.draw(st.sampled_from(list(_leaves(header))))
        value = data.draw(ANY_VALUE)
        tamper_checkpoint(path, lambda h, p: _set(h, where, value))
        tr, cbs = live_trainer()        # an accepted restore leaves it valid for the next example
        before = trainer_state(tr, cbs)
        try:
            tensors, meta = checkpoint.read_checkpoint(path)
            checkpoint.restore(tr, tensors, meta, cbs, source="checkpoint")
        except Exception as exc:                    # noqa: BLE001
            assert_clean(exc)
            assert trainer_state(tr, cbs) == before
            event("refused")
            return
        event("accepted")
        assert math.isfinite(tr.learning_rate) and tr.learning_rate >= 0 and tr.step >= 0
        _works(tr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
