"""Tampering with bundles and checkpoints the way an attacker would: edit, then
recompute every checksum so that only symgrad's own checks stand in the way."""
import hashlib
import json
import os
import shutil
import struct

from onnx import TensorProto, helper

from symgrad.compiler.bundle import MANIFEST, manifest_checksum, sha256
from symgrad.runtime.checkpoint import MAGIC

SECRET = "SYMGRAD-TEST-SECRET-91d2"


def read_bundle(path):
    with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
        manifest = json.load(f)
    files = {}
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if name != MANIFEST and os.path.isfile(full) and not os.path.islink(full):
            with open(full, "rb") as f:
                files[name] = f.read()
    return manifest, files


def write_bundle(path, manifest, files):
    """Write ``files`` and ``manifest`` with freshly computed checksums (the attacker's step)."""
    for name, data in files.items():
        full = os.path.join(path, name)
        if os.path.islink(full):
            continue
        with open(full, "wb") as f:
            f.write(data)
    graphs = manifest.get("graphs")
    graphs = graphs.values() if isinstance(graphs, dict) else []
    listed = [g.get("file") for g in graphs if isinstance(g, dict)] + [manifest.get("state_file", "state.bin")]
    manifest["checksums"] = {n: sha256(files[n]) for n in listed if isinstance(n, str) and n in files}
    manifest["manifest_checksum"] = manifest_checksum(manifest)
    with open(os.path.join(path, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)


def tamper_bundle(path, edit):
    """``edit(manifest, files)`` changes them in place; checksums are recomputed."""
    manifest, files = read_bundle(path)
    edit(manifest, files)
    write_bundle(path, manifest, files)


def copy_bundle(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def with_external_initializer(model_bytes, location, graph_output=None):
    """The graph with one more initializer whose bytes live in ``location`` (external
    data); ``graph_output`` (a name) is then computed from it, so that running the graph
    would return the file's bytes."""
    import onnx
    model = onnx.load_from_string(model_bytes)
    t = TensorProto()
    t.name, t.data_type = "leak", TensorProto.UINT8
    t.dims.append(len(SECRET) + 6)
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(SECRET) + 6))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    model.graph.initializer.append(t)
    if graph_output is not None:
        model.graph.node.append(helper.make_node("Cast", ["leak"], [graph_output + "_leak"], to=TensorProto.FLOAT))
    return model.SerializeToString()


# ------------------------------------------------------------------ checkpoints


def read_checkpoint_parts(path):
    with open(path, "rb") as f:
        data = f.read()
    body = data[:-32]
    (hlen,) = struct.unpack_from("<Q", body, len(MAGIC))
    start = len(MAGIC) + 8
    header = json.loads(body[start:start + hlen].decode("utf-8"))
    return header, bytes(body[start + hlen:])


def write_checkpoint_parts(path, header, payload):
    raw = json.dumps(header, allow_nan=True).encode("utf-8")
    body = MAGIC + struct.pack("<Q", len(raw)) + raw + payload
    with open(path, "wb") as f:
        f.write(body + hashlib.sha256(body).digest())


def tamper_checkpoint(path, edit):
    """``edit(header, payload) -> payload or None``; the trailing digest is recomputed."""
    header, payload = read_checkpoint_parts(path)
    new = edit(header, payload)
    write_checkpoint_parts(path, header, payload if new is None else new)


def folder_bytes(root):
    """Every file and link under ``root``: the oracle for 'nothing changed on disk'."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    out[rel] = f.read()
            else:
                out[rel] = "dir"
    return out


def trainer_state(trainer, callbacks=()):
    """Everything a restore may change: tensors, step, learning rate, RNG, callback states."""
    state = {k: v.tobytes() for k, v in trainer.state_dict().items()}
    return (state, trainer.step, trainer.learning_rate, json.dumps(trainer.rng.bit_generator.state, default=str),
            [repr(cb.state_dict()) for cb in callbacks])
