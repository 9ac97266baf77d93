"""The artifact bundle: what the compiler produces and the runtime (or any other
language) trains from. A folder with ``manifest.json``, the ONNX graphs and
``state.bin`` (raw little-endian arrays at the offsets the manifest gives).

Sympy-free on purpose: ``symgrad.runtime`` imports it. See docs/internals.md.
"""
import hashlib
import json
import os

import numpy as np

from .atomic import check_replaceable, replace_directory
from .bundle_checks import GRAPH_KINDS, TENSOR_SECTIONS, check_graph, check_manifest, check_state_layout, \
    plain_file_name
from .errors import BundleError
from .untrusted import read_regular_file

FORMAT = "symgrad-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STATE_FILE = "state.bin"
MAX_MANIFEST_BYTES = 64 << 20


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


def manifest_checksum(manifest):
    """sha256 of the manifest itself (its canonical JSON, without this field), so that an
    edited or bit-flipped manifest is caught like a damaged graph."""
    body = {k: v for k, v in manifest.items() if k != "manifest_checksum"}
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))


def owned_entries(folder):
    """(is ``folder`` a symgrad bundle?, the names in it that symgrad wrote).

    A bundle is recognised by its manifest: ``manifest.json`` holding
    ``"format": "symgrad-bundle"``. Ours are the manifest, the files it lists and the
    names Bundle.save always uses; a half-written bundle (no manifest yet) is not
    recognised, but its standard names are still ours (for clearing a killed save's
    temporary folder)."""
    names = {f"{kind}.onnx" for kind in GRAPH_KINDS} | {STATE_FILE}
    try:
        with open(os.path.join(folder, MANIFEST), "rb") as f:
            manifest = json.loads(f.read(MAX_MANIFEST_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return False, names
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return False, names
    graphs = manifest.get("graphs")
    listed = [g.get("file") for g in graphs.values() if isinstance(g, dict)] if isinstance(graphs, dict) else []
    listed.append(manifest.get("state_file"))
    names |= {n for n in listed if plain_file_name(n)}
    return True, names | {MANIFEST}


def unpack_state(manifest, raw, where=STATE_FILE):
    check_state_layout(manifest, len(raw), where)
    arrays = {}
    for section in TENSOR_SECTIONS:
        for entry in manifest.get(section, []):
            start, n = entry["offset"], entry["nbytes"]
            dtype = np.dtype(entry["dtype"]).newbyteorder("<")
            arrays[entry["name"]] = np.frombuffer(raw, dtype=dtype, count=n // dtype.itemsize,
                                                  offset=start).reshape(entry["shape"]).astype(entry["dtype"])
    return arrays


def check_target(path):
    """Raise the ParameterError that Bundle.save would raise for ``path`` (a file, a
    symlink or a non-empty folder that is not a bundle), before any long work."""
    check_replaceable(os.path.abspath(os.fspath(path)), owned_entries, "bundle")


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
        manifest["manifest_checksum"] = manifest_checksum(manifest)
        self.manifest = manifest

        def fill(tmp):
            for name, data in files.items():
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(data)
            with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=2)

        replace_directory(path, fill, owned_entries, what="bundle")
        return os.fspath(path)

    @classmethod
    def load(cls, path):
        """Read and verify a bundle folder; every problem is a BundleError naming the file.

        A save that swaps the folder while this reads can mix files of two bundles; the
        checksums catch the mix, and the read starts over when the folder changed under it."""
        path = os.fspath(path)
        attempts = 5
        for attempt in range(attempts):
            before = _identity(path)
            try:
                return cls._load_once(path)
            except BundleError:
                if attempt == attempts - 1 or _identity(path) == before:
                    raise

    @classmethod
    def _load_once(cls, path):
        """Everything in the folder is untrusted (see bundle_checks.py): no symlinks, a
        manifest that passes check_manifest, files that match their checksums, graphs
        that are what the manifest says, tensors inside the state file."""
        mpath = os.path.join(path, MANIFEST)
        if not os.path.isdir(path):
            raise BundleError(f"no bundle at {path!r}: expected a folder with {MANIFEST}")
        if not os.path.lexists(mpath):
            raise BundleError(f"{path!r} is not a symgrad bundle: {MANIFEST} is missing")
        try:
            links = sorted(n for n in os.listdir(path) if os.path.islink(os.path.join(path, n)))
        except OSError as exc:
            raise BundleError(f"bundle {path!r} cannot be read ({exc.strerror or exc})") from None
        if links:
            raise BundleError(f"bundle {path!r} holds symbolic link(s) {links}; symgrad never writes links in a "
                              "bundle and does not follow them (they can point anywhere)")
        raw_manifest = read_regular_file(mpath, "bundle manifest", BundleError, limit=MAX_MANIFEST_BYTES)
        try:
            manifest = json.loads(raw_manifest.decode("utf-8"), parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BundleError(f"{mpath} is corrupt (not valid JSON: {exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BundleError(f"{mpath} is not a symgrad bundle manifest (format {FORMAT!r} expected)")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise BundleError(f"{mpath} has bundle format version {version!r}; this symgrad reads "
                              f"versions up to {FORMAT_VERSION}: upgrade symgrad to load it")
        if manifest.get("manifest_checksum") != manifest_checksum(manifest):
            why = "has no manifest_checksum" if "manifest_checksum" not in manifest else \
                "does not match its manifest_checksum (it was edited or damaged)"
            raise BundleError(f"{mpath} {why}; re-create the bundle or restore it from a backup")
        check_manifest(manifest, mpath)
        checksums = manifest["checksums"]
        files = {}
        state_file = manifest.get("state_file", STATE_FILE)
        wanted = [g["file"] for g in manifest["graphs"].values()] + [state_file]
        for name in wanted:
            fpath = os.path.join(path, name)
            if not os.path.lexists(fpath):
                raise BundleError(f"bundle {path!r} is incomplete: {name} is missing")
            if name not in checksums:
                raise BundleError(f"{mpath} lists {name} without a checksum; re-create the bundle")
            data = read_regular_file(fpath, f"bundle {path!r}: file", BundleError)
            if sha256(data) != checksums[name]:
                raise BundleError(f"bundle {path!r}: {name} is corrupt (checksum mismatch); "
                                  "re-create the bundle or restore it from a backup")
            files[name] = data
        graphs = {}
        for kind, g in manifest["graphs"].items():
            check_graph(kind, files[g["file"]], manifest, f"bundle {path!r}")
            graphs[kind] = files[g["file"]]
        state = unpack_state(manifest, files[state_file], f"bundle {path!r}: {state_file}")
        return cls(manifest, graphs, state)


def _no_constant(name):
    # json accepts NaN and Infinity by default; no manifest value may be one
    raise ValueError(f"{name} is not a number JSON allows")


def _identity(path):
    """Which folder ``path`` names right now (None when nothing does)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
