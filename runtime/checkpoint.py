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
import os
import struct

import numpy as np

from symgrad.compiler.atomic import write_bytes
from symgrad.compiler.bundle import TENSOR_SECTIONS
from symgrad.compiler.errors import BundleError

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
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BundleError(f"no checkpoint at {path!r}") from None
    except IsADirectoryError:
        raise BundleError(f"checkpoint path {path!r} is a directory; expected a checkpoint file") from None
    if not data.startswith(MAGIC):
        raise BundleError(f"{path!r} is not a symgrad training checkpoint (bad magic bytes)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if len(data) < len(MAGIC) + 8 + _DIGEST or hashlib.sha256(body).digest() != digest:
        raise BundleError(f"checkpoint {path!r} is corrupt or truncated (checksum mismatch)")
    (hlen,) = struct.unpack_from("<Q", body, len(MAGIC))
    start = len(MAGIC) + 8
    try:
        header = json.loads(body[start:start + hlen].decode("utf-8"))
    except ValueError as exc:
        raise BundleError(f"checkpoint {path!r} has an unreadable header ({exc})") from None
    if header.get("format") != FORMAT:
        raise BundleError(f"{path!r} is not a symgrad training checkpoint")
    if not isinstance(header.get("version"), int) or header["version"] > VERSION:
        raise BundleError(f"checkpoint {path!r} has format version {header.get('version')!r}; this symgrad reads "
                          f"versions up to {VERSION}: upgrade symgrad to load it")
    payload = memoryview(body)[start + hlen:]
    tensors = {}
    for e in header["tensors"]:
        dtype = np.dtype(e["dtype"]).newbyteorder("<")
        raw = payload[e["offset"]:e["offset"] + e["nbytes"]]
        tensors[e["name"]] = np.frombuffer(raw, dtype=dtype).reshape(e["shape"]).astype(e["dtype"])
    return tensors, header["meta"]


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
    """Put a captured training state back into ``trainer``; returns the position."""
    if meta.get("fingerprint") != fingerprint(trainer.manifest):
        raise BundleError(f"{source} was written for a different program (its parameters, state, slots or "
                          "optimizer differ from this trainer's); it cannot be restored here")
    for name in trainer._store.entries:
        if f"tensor/{name}" not in tensors:
            raise BundleError(f"{source} lacks tensor {name!r}")
        trainer._store.set(name, tensors[f"tensor/{name}"])
    trainer._step = int(meta["step"])
    trainer.learning_rate = float(meta["learning_rate"])
    rng_state = meta["rng"]
    if rng_state.get("bit_generator") != type(trainer.rng.bit_generator).__name__:
        raise BundleError(f"{source} holds a {rng_state.get('bit_generator')} random state; the trainer uses "
                          f"{type(trainer.rng.bit_generator).__name__}")
    trainer.rng.bit_generator.state = rng_state
    states = meta.get("callbacks", {})
    for key, cb in _callback_keys(callbacks):
        if key in states:
            cb.load_state_dict(_decode(states[key], tensors))
    pos = dict(meta.get("position") or {})
    for name in ("records", "sizes"):
        if pos.get(name):
            pos[name] = tensors[f"position/{name}"]
    return pos
