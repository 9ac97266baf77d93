"""Training-state checkpoints: the file format BackupAndRestore writes.

One file, written atomically (temporary name, fsync, rename), so a reader finds the
old checkpoint or the new one, never half of one:

    MAGIC | u64 little-endian header length | header (JSON) | payload | sha256 of all before

The header lists the tensors (name, dtype, shape, offset, nbytes into the payload) and
the metadata: step, learning rate, RNG state, position in the fit loop and the state of
callbacks. The trailing digest makes any truncation or bit flip a BundleError.
"""
import hashlib
import json
import math
import numbers
import os
import struct

import numpy as np

from symgrad.compiler.atomic import write_bytes
from symgrad.compiler.bundle import TENSOR_SECTIONS
from symgrad.compiler.bundle_checks import DTYPES, ITEMSIZE, MAX_DIM, MAX_RANK, check_layout
from symgrad.compiler.errors import BundleError, SymgradError
from symgrad.compiler.untrusted import read_regular_file

MAGIC = b"SYMGRAD-CKPT\n"
FORMAT = "symgrad-checkpoint"
VERSION = 1
_DIGEST = 32


def write_checkpoint(path, tensors, meta):
    """Write ``tensors`` ({name: ndarray}) and ``meta`` (JSON-able dict) to ``path`` atomically."""
    entries, chunks, offset = [], [], 0
    for name, array in tensors.items():
        a = np.array(array, order="C")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        raw = a.tobytes()
        entries.append({"name": name, "dtype": a.dtype.name, "shape": list(a.shape), "offset": offset, "nbytes": len(raw)})
        chunks.append(raw)
        offset += len(raw)
    header = json.dumps({"format": FORMAT, "version": VERSION, "tensors": entries, "meta": meta},
                        allow_nan=True).encode("utf-8")
    body = b"".join([MAGIC, struct.pack("<Q", len(header)), header] + chunks)
    return write_bytes(path, body + hashlib.sha256(body).digest())


def read_checkpoint(path):
    """Return (tensors, meta); every problem is a BundleError naming the file."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise BundleError(f"no checkpoint at {path!r}")
    if os.path.isdir(path) and not os.path.islink(path):
        raise BundleError(f"checkpoint path {path!r} is a directory; expected a checkpoint file")
    data = read_regular_file(path, "checkpoint", BundleError)
    if not data.startswith(MAGIC):
        raise BundleError(f"{path!r} is not a symgrad training checkpoint (bad magic bytes)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if len(data) < len(MAGIC) + 8 + _DIGEST or hashlib.sha256(body).digest() != digest:
        raise BundleError(f"checkpoint {path!r} is corrupt or truncated (checksum mismatch)")
    (hlen,) = struct.unpack_from("<Q", body, len(MAGIC))
    start = len(MAGIC) + 8
    if hlen > len(body) - start:
        raise BundleError(f"checkpoint {path!r} declares a header of {hlen} bytes in a file of {len(data)}")
    try:
        header = json.loads(body[start:start + hlen].decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"checkpoint {path!r} has an unreadable header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BundleError(f"{path!r} is not a symgrad training checkpoint")
    if not isinstance(header.get("version"), int) or header["version"] > VERSION:
        raise BundleError(f"checkpoint {path!r} has format version {header.get('version')!r}; this symgrad reads "
                          f"versions up to {VERSION}: upgrade symgrad to load it")
    payload = memoryview(body)[start + hlen:]
    entries = _check_entries(header.get("tensors"), len(payload), f"checkpoint {path!r}")
    if not isinstance(header.get("meta"), dict):
        raise BundleError(f"checkpoint {path!r} has metadata {type(header.get('meta')).__name__}; expected a map")
    tensors = {}
    for e in entries:
        dtype = np.dtype(e["dtype"]).newbyteorder("<")
        raw = payload[e["offset"]:e["offset"] + e["nbytes"]]
        tensors[e["name"]] = np.frombuffer(raw, dtype=dtype).reshape(e["shape"]).astype(e["dtype"])
    return tensors, header["meta"]


def _check_entries(entries, size, where):
    """The tensor table of a checkpoint: distinct names, dtypes from the fixed list,
    sane shapes, sizes that match, inside the payload and not overlapping."""
    def bad(what, accepted):
        raise BundleError(f"{where}: {what}; expected {accepted}")

    if not isinstance(entries, list):
        bad(f"its tensor table is {type(entries).__name__}", "a list")
    names = set()
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or e["name"] in names:
            bad(f"tensor entry {str(e)[:80]}", "entries with a distinct name, dtype, shape, offset and nbytes")
        names.add(e["name"])
        shape, dtype = e.get("shape"), e.get("dtype")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            bad(f"tensor {e['name']!r} has dtype {dtype!r}", f"one of {', '.join(DTYPES)}")
        if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(
                _is_int(d) and 0 <= d < MAX_DIM for d in shape):
            bad(f"tensor {e['name']!r} has shape {shape!r}", f"at most {MAX_RANK} integers in [0, 2**31)")
        for key in ("offset", "nbytes"):
            if not _is_int(e.get(key)) or e[key] < 0:
                bad(f"tensor {e['name']!r} has {key} {e.get(key)!r}", "an integer >= 0")
        want = math.prod(shape) * ITEMSIZE[dtype]
        if e["nbytes"] != want:
            bad(f"tensor {e['name']!r} has nbytes {e['nbytes']} for shape {shape} of {dtype}", f"{want}")
    check_layout(entries, size, where, "payload")
    return entries


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def fingerprint(manifest):
    """What a checkpoint must match to be restored: the names, shapes and dtypes of the
    trained tensors and the optimizer."""
    key = [(s, e["name"], list(e["shape"]), e["dtype"]) for s in TENSOR_SECTIONS for e in manifest.get(s, [])]
    key.append(manifest.get("optimizer", {}).get("name"))
    return "sha256:" + hashlib.sha256(json.dumps(key).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ callback state

def _encode(obj, tensors, key):
    if isinstance(obj, np.ndarray):
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {str(k): _encode(v, tensors, f"{key}/{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, tensors, f"{key}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _decode(obj, tensors):
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def _callback_keys(callbacks):
    seen = {}
    for cb in callbacks:
        name = type(cb).__name__
        seen[name] = seen.get(name, -1) + 1
        yield f"{name}#{seen[name]}", cb


# ------------------------------------------------------------------ training state

def capture(trainer, position, callbacks=()):
    """(tensors, meta) for the full training state of ``trainer`` at ``position``
    ({"epoch", "batch", ...}: where the fit loop resumes)."""
    tensors = {f"tensor/{name}": trainer._store.get(name) for name in trainer._store.entries}
    cb_states = {}
    for key, cb in _callback_keys(callbacks):
        state = cb.state_dict()
        if state is not None:
            cb_states[key] = _encode(state, tensors, f"callback/{key}")
    pos = dict(position)
    for name in ("records", "sizes"):
        if pos.get(name) is not None:
            tensors[f"position/{name}"] = np.asarray(pos.pop(name))
            pos[name] = True
    meta = {"kind": "training-state", "fingerprint": fingerprint(trainer.manifest), "step": trainer._step,
            "learning_rate": trainer.learning_rate, "rng": trainer.rng.bit_generator.state,
            "position": pos, "callbacks": cb_states}
    return tensors, meta


def restore(trainer, tensors, meta, callbacks=(), source="checkpoint"):
    """Put a captured training state back into ``trainer``; returns the position.

    All or nothing: every value is checked (and the callbacks' states tried) before the
    trainer changes, so a checkpoint refused half-way leaves the trainer as it was."""
    def bad(what, accepted):
        raise BundleError(f"{source}: {what}; expected {accepted}")

    if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint(trainer.manifest):
        raise BundleError(f"{source} was written for a different program (its parameters, state, slots or "
                          "optimizer differ from this trainer's); it cannot be restored here")
    staged = {}
    for name, entry in trainer._store.entries.items():
        value = tensors.get(f"tensor/{name}")
        if value is None:
            raise BundleError(f"{source} lacks tensor {name!r}")
        if list(value.shape) != list(entry["shape"]) or value.dtype != np.dtype(entry["dtype"]):
            bad(f"tensor {name!r} is {value.dtype}{list(value.shape)}", f"{entry['dtype']}{list(entry['shape'])}")
        staged[name] = value
    step, lr = meta.get("step"), meta.get("learning_rate")
    if not _is_int(step) or step < 0:
        bad(f"step is {step!r}", "an integer >= 0")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr < 0:
        bad(f"learning_rate is {lr!r}", "a finite number >= 0")
    rng_state = _check_rng(trainer, meta.get("rng"), source, "random state")
    pos = _check_position(trainer, meta.get("position"), tensors, source)
    states = meta.get("callbacks", {})
    if not isinstance(states, dict):
        bad(f"callback states are {type(states).__name__}", "a map")
    _restore_callbacks(callbacks, states, tensors, source)
    # nothing below can fail: the trainer changes only now
    for name, value in staged.items():
        trainer._store.set(name, value)
    trainer._step = int(step)
    trainer.learning_rate = float(lr)
    trainer.rng.bit_generator.state = rng_state
    return pos


def _check_rng(trainer, state, source, what):
    """``state`` if it is a valid state of the trainer's bit generator (tried on a spare one)."""
    kind = type(trainer.rng.bit_generator).__name__
    if not isinstance(state, dict) or state.get("bit_generator") != kind:
        got = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
        raise BundleError(f"{source} holds a {got} {what}; the trainer uses {kind}")
    try:
        spare = type(trainer.rng.bit_generator)()
        spare.state = state
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise BundleError(f"{source}: its {what} is not a valid {kind} state ({exc})") from None
    return state


def _check_position(trainer, position, tensors, source):
    """Where the fit loop resumes: epoch and batch counts, and for a mid-epoch
    checkpoint the records of the batches done and the random state of the epoch."""
    def bad(what, accepted):
        raise BundleError(f"{source}: {what}; expected {accepted}")

    if position is not None and not isinstance(position, dict):
        bad(f"position is {type(position).__name__}", "a map")
    pos = dict(position or {})
    for key in ("epoch", "batch"):
        if key in pos and (not _is_int(pos[key]) or pos[key] < 0):
            bad(f"position {key} is {pos[key]!r}", "an integer >= 0")
    for name in ("records", "sizes"):
        if pos.get(name):
            if f"position/{name}" not in tensors:
                raise BundleError(f"{source} lacks tensor 'position/{name}'")
            pos[name] = tensors[f"position/{name}"]
    if pos.get("batch"):
        records, sizes = pos.get("records"), pos.get("sizes")
        widths = {len(gs.scalar_names) for kind, gs in trainer._graphs.items() if kind in ("train_step", "gradients")}
        if not isinstance(records, np.ndarray) or not isinstance(sizes, np.ndarray) or records.ndim != 2 \
                or sizes.ndim != 1 or len(records) != pos["batch"] or len(sizes) != pos["batch"] \
                or sizes.dtype.kind not in "iu" or records.dtype.kind != "f" or (sizes < 1).any() \
                or (widths and records.shape[1] not in widths):
            bad("the records of the batches done in its epoch do not match its batch count",
                f"{pos['batch']} rows of loss and metric values and {pos['batch']} batch sizes >= 1")
        _check_rng(trainer, pos.get("rng_epoch"), source, "epoch random state")
        if not isinstance(pos.get("data"), dict):
            bad(f"position data is {pos.get('data')!r}", "the data's size, batch_size and shuffle")
    return pos


def _same_form(saved, current):
    """True when a callback's saved state has the form of its current one: the same
    keys, and at each key a number for a number, a string for a string, a list, map or
    array for the same (None stands for "nothing yet" either way)."""
    if not isinstance(current, dict):
        return True
    if not isinstance(saved, dict) or set(saved) != set(current):
        return False
    for key, now in current.items():
        then = saved[key]
        if then is None:
            continue
        if now is None:          # "nothing yet": the saved value may be a number, array or list
            if isinstance(then, bool) or not isinstance(then, (numbers.Real, np.ndarray, list)):
                return False
            continue
        if isinstance(now, numbers.Real):
            if isinstance(then, bool) != isinstance(now, bool) or not isinstance(then, numbers.Real):
                return False
        elif isinstance(now, (str, list, dict, np.ndarray)):
            kind = list if isinstance(now, (list, tuple)) else type(now)
            if not isinstance(then, kind):
                return False
    return True


def _restore_callbacks(callbacks, states, tensors, source):
    """Load each callback's saved state; if any cannot take its state, put back the
    states they had and raise, so that no callback is left half-restored."""
    plan = []
    for key, cb in _callback_keys(callbacks):
        if key not in states:
            continue
        try:
            state = _decode(states[key], tensors)
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{source}: the state of callback {key} refers to a missing tensor ({exc})") from None
        current = cb.state_dict()
        if current is not None and not _same_form(state, current):
            raise BundleError(f"{source}: the saved state of callback {key} does not have the form this "
                              f"{type(cb).__name__} keeps ({sorted(current) if isinstance(current, dict) else '?'})")
        plan.append((key, cb, state, current))
    done = []
    try:
        for key, cb, state, current in plan:
            cb.load_state_dict(state)
            done.append((cb, current))
    except SymgradError:
        _put_back(done)
        raise
    except Exception as exc:                 # a callback's own code met a value it cannot use
        _put_back(done)
        raise BundleError(f"{source}: callback {key} cannot take its saved state "
                          f"({type(exc).__name__}: {exc})") from None


def _put_back(done):
    for cb, previous in reversed(done):
        if previous is not None:
            cb.load_state_dict(previous)
