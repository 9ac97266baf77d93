"""One contiguous float buffer per worker per step.

A worker's ``gradients`` run writes every ``grad/<param>`` straight into its segment of
the buffer (the graph's outputs are bound to views of it), then appends the new values
of the model state that the step updates (batch-norm statistics) and the scalars (loss,
metrics). Averaging is then one weighted sum over whole buffers, and the averaged
gradients and state travel back to the workers as one message. Segments start on
64-byte boundaries so that every process runs the same vectorised kernels on them.
"""
import numpy as np

from symgrad.compiler.errors import BundleError

from ..session import aligned_zeros

_ALIGN = 64


class Layout:
    """Where each gradient, state tensor and scalar lives in the flat buffer.

    ``grads``: [(graph name "grad/<p>", offset, shape)]; ``state``: [(state name, offset,
    shape)]; ``sync``: the length of the part the workers need back (gradients + state);
    ``scalars``: the offset of the scalar outputs; ``size``: the whole length."""

    def __init__(self, manifest, gradient_outputs, state_outputs, n_scalars):
        entries = {e["name"]: e for s in ("params", "state") for e in manifest.get(s, [])}
        dtypes = {np.dtype(entries[n[5:]]["dtype"]) for n in gradient_outputs if n[5:] in entries}
        dtypes |= {np.dtype(entries[n]["dtype"]) for n in state_outputs if n in entries}
        if len(dtypes) != 1:
            raise BundleError(f"RayTrainer needs one floating-point dtype for every gradient and updated state "
                              f"tensor; this bundle has {sorted(d.name for d in dtypes) or 'none'}")
        self.dtype = dtypes.pop()
        step = _ALIGN // self.dtype.itemsize
        offset = 0

        def place(shape):
            nonlocal offset
            start = offset
            offset += int(np.prod(shape, dtype=np.int64))
            offset = -(-offset // step) * step
            return start

        self.grads = [(n, place(entries[n[5:]]["shape"]), tuple(entries[n[5:]]["shape"])) for n in gradient_outputs]
        self.state = [(n, place(entries[n]["shape"]), tuple(entries[n]["shape"])) for n in state_outputs]
        self.sync = offset
        self.scalars = offset
        self.n_scalars = n_scalars
        self.size = offset + n_scalars

    def new_buffer(self):
        return aligned_zeros((self.size,), self.dtype)

    def view(self, flat, offset, shape):
        """The segment at ``offset`` as an array of ``shape`` sharing ``flat``'s memory."""
        return flat[offset:offset + int(np.prod(shape, dtype=np.int64))].reshape(shape)


def graph_layout(trainer):
    """The Layout of ``trainer``'s bundle: gradients of its ``gradients`` graph, and the
    state tensors that graph updates (its outputs fed back as ``next/<name>``)."""
    m = trainer.manifest
    spec = m["graphs"].get("gradients")
    if spec is None or "update" not in m["graphs"]:
        raise BundleError("RayTrainer needs a bundle with 'gradients' and 'update' graphs (programs compiled by "
                          "symgrad.compiler have them); this one has only " + ", ".join(sorted(m["graphs"])))
    import onnx
    graph = onnx.load_from_string(trainer.bundle.graphs["gradients"]).graph
    outputs = [o.name for o in graph.output]
    feeds = dict(spec.get("feeds") or {})
    for o in outputs:
        if o.startswith("next/") and o not in feeds:
            feeds[o] = o[5:]
    grads = [o for o in outputs if o.startswith("grad/")]
    state = [feeds[o] for o in outputs if o in feeds]
    scalars = [o for o in outputs if o not in feeds and not o.startswith("grad/")
               and len(next(v for v in graph.output if v.name == o).type.tensor_type.shape.dim) == 0]
    return Layout(m, grads, state, len(scalars)), scalars
