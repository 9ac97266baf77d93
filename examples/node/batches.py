"""Write batches for ``train.js`` (and inputs for ``infer.js``) in the simple format that
``bundle.js`` reads: one raw little-endian blob plus a JSON index of dtype, shape,
offset and byte count per tensor. Needs NumPy and symgrad's (sympy-free) atomic writes.

    write_batches("batches.json", [[{"x": xb, "y": yb}, ...], ...],   # epochs of batches
                  learning_rates=..., steps=...)                       # optional, per step
"""
import json
import os

import numpy as np

from symgrad.compiler.atomic import write_bytes


def _pack(arrays, chunks, offset):
    index = {}
    for name, value in arrays.items():
        a = np.array(value, order="C")          # not ascontiguousarray: it makes a 0-d array 1-d
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        raw = a.tobytes()
        index[name] = {"dtype": str(a.dtype.name), "shape": list(a.shape), "offset": offset, "nbytes": len(raw)}
        chunks.append(raw)
        offset += len(raw)
    return index, offset


def _write(index_path, index, chunks):
    blob = os.path.splitext(os.path.basename(index_path))[0] + ".bin"
    index["blob"] = blob
    directory = os.path.dirname(os.path.abspath(index_path))
    # blob first, then the index: a reader that finds the index finds a complete blob
    write_bytes(os.path.join(directory, blob), b"".join(chunks))
    write_bytes(index_path, json.dumps(index).encode())
    return index_path


def write_batches(index_path, epochs, learning_rates=None, steps=None):
    """epochs: list of epochs, each a list of {input name: array}. learning_rates / steps:
    optional flat lists, one value per step, fed as the graph's learning_rate / step."""
    chunks, offset, out, k = [], 0, [], 0
    for batches in epochs:
        entries = []
        for batch in batches:
            inputs, offset = _pack(batch, chunks, offset)
            entry = {"inputs": inputs}
            if learning_rates is not None:
                entry["learning_rate"] = float(learning_rates[k])
            if steps is not None:
                entry["step"] = float(steps[k])
            entries.append(entry)
            k += 1
        out.append(entries)
    return _write(index_path, {"epochs": out}, chunks)


def write_inputs(index_path, arrays):
    """Inputs for ``node infer.js model.onnx INDEX``: {name: array}."""
    chunks = []
    inputs, _ = _pack(arrays, chunks, 0)
    return _write(index_path, {"inputs": inputs}, chunks)
