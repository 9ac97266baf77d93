"""The artifact bundle: what the compiler produces and the runtime (or any other
language) trains from. A folder with ``manifest.json``, the ONNX graphs and
``state.bin`` (raw little-endian arrays at the offsets the manifest gives).

Sympy-free on purpose: ``symgrad.runtime`` imports it. See docs/internals.md.
"""
import hashlib
import json
import os

import numpy as np

from .atomic import replace_directory
from .errors import BundleError

FORMAT = "symgrad-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STATE_FILE = "state.bin"
GRAPH_KINDS = ("train_step", "gradients", "update", "eval", "inference")
TENSOR_SECTIONS = ("params", "state", "slots")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pack_state(manifest, arrays):
    """Lay out every tensor of the params/state/slots sections in one buffer; fills in
    offset and nbytes in the manifest entries. Returns the bytes."""
    chunks, offset = [], 0
    for section in TENSOR_SECTIONS:
        for entry in manifest.get(section, []):
            # asarray, not ascontiguousarray (which turns a 0-d array 1-d); tobytes() is C order
            a = np.asarray(arrays[entry["name"]], dtype=np.dtype(entry["dtype"]).newbyteorder("<"))
            if list(a.shape) != list(entry["shape"]):
                raise BundleError(f"tensor {entry['name']!r} has shape {list(a.shape)}, the manifest says {entry['shape']}")
            raw = a.tobytes()
            entry["offset"], entry["nbytes"] = offset, len(raw)
            chunks.append(raw)
            offset += len(raw)
    return b"".join(chunks)


def unpack_state(manifest, raw):
    arrays = {}
    for section in TENSOR_SECTIONS:
        for entry in manifest.get(section, []):
            start, n = entry["offset"], entry["nbytes"]
            if start + n > len(raw):
                raise BundleError(f"{STATE_FILE} is truncated: tensor {entry['name']!r} needs bytes "
                                  f"{start}..{start + n}, the file has {len(raw)}")
            dtype = np.dtype(entry["dtype"]).newbyteorder("<")
            arrays[entry["name"]] = np.frombuffer(raw, dtype=dtype, count=n // dtype.itemsize,
                                                  offset=start).reshape(entry["shape"]).astype(entry["dtype"])
    return arrays


class Bundle:
    """manifest (dict), graphs ({kind: serialized ONNX bytes}), state ({name: ndarray})."""

    def __init__(self, manifest, graphs, state):
        self.manifest = manifest
        self.graphs = dict(graphs)
        self.state = dict(state)

    def save(self, path):
        """Write the bundle as a folder, atomically: a reader sees the old bundle or the
        new one, never a mix."""
        manifest = json.loads(json.dumps(self.manifest))
        raw = pack_state(manifest, self.state)
        files = {manifest["graphs"][k]["file"]: self.graphs[k] for k in manifest["graphs"]}
        files[STATE_FILE] = raw
        manifest["state_file"] = STATE_FILE
        manifest["checksums"] = {name: sha256(data) for name, data in sorted(files.items())}
        self.manifest = manifest

        def fill(tmp):
            for name, data in files.items():
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(data)
            with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=2)

        replace_directory(path, fill)
        return os.fspath(path)

    @classmethod
    def load(cls, path):
        """Read and verify a bundle folder; every problem is a BundleError naming the file."""
        path = os.fspath(path)
        mpath = os.path.join(path, MANIFEST)
        if not os.path.isdir(path):
            raise BundleError(f"no bundle at {path!r}: expected a folder with {MANIFEST}")
        if not os.path.isfile(mpath):
            raise BundleError(f"{path!r} is not a symgrad bundle: {MANIFEST} is missing")
        try:
            with open(mpath, encoding="utf-8") as f:
                manifest = json.load(f)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"{mpath} is corrupt (not valid JSON: {exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BundleError(f"{mpath} is not a symgrad bundle manifest (format {FORMAT!r} expected)")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise BundleError(f"{mpath} has bundle format version {version!r}; this symgrad reads "
                              f"versions up to {FORMAT_VERSION}: upgrade symgrad to load it")
        checksums = manifest.get("checksums", {})
        files = {}
        wanted = [g["file"] for g in manifest["graphs"].values()] + [manifest.get("state_file", STATE_FILE)]
        for name in wanted:
            fpath = os.path.join(path, name)
            if not os.path.isfile(fpath):
                raise BundleError(f"bundle {path!r} is incomplete: {name} is missing")
            with open(fpath, "rb") as f:
                data = f.read()
            if name in checksums and sha256(data) != checksums[name]:
                raise BundleError(f"bundle {path!r}: {name} is corrupt (checksum mismatch); "
                                  "re-create the bundle or restore it from a backup")
            files[name] = data
        graphs = {k: files[g["file"]] for k, g in manifest["graphs"].items()}
        state = unpack_state(manifest, files[manifest.get("state_file", STATE_FILE)])
        return cls(manifest, graphs, state)
