"""Reading ONNX models that come from elsewhere, without trusting them.

An ONNX file can point outside itself: a tensor stored as *external data* names a file
(``location``) that the loader (onnx, or onnxruntime when it opens the model) reads
relative to the model's folder, or relative to the working folder when the model comes
as bytes. A model handed to symgrad could so make it read ``./.env`` or ``~/.ssh`` and
return the bytes as weights. And a graph may call operators of other domains
(``com.microsoft``...), which symgrad never emits and does not vouch for.

``load_onnx`` is the one door for an ONNX model given to symgrad (importer, CLI): it
refuses symlinks, reads external data only from regular files inside the model's own
folder (and inside their size), and refuses operators outside the standard domain.
Bundle graphs go through ``check_model`` with ``external_data=False``: symgrad never
writes external data, so a bundle graph that has any was not written by symgrad.

Sympy-free: the runtime uses it.
"""
import os
import stat

from .errors import OnnxModelError

STANDARD_DOMAINS = ("", "ai.onnx")


def read_regular_file(path, what, error=OnnxModelError, limit=None):
    """The bytes of ``path``, which must be a regular file and not a symlink."""
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise error(f"{what} {path!r} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {path!r} cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{what} {path!r} is a symbolic link; symgrad does not follow links in files it is given "
                    f"(they can point anywhere); give the path of the real file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise error(f"{what} {path!r} is {kind}; expected a file")
    if limit is not None and st.st_size > limit:
        raise error(f"{what} {path!r} is {st.st_size} bytes, more than the {limit} accepted")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            return f.read()
    except OSError as exc:
        raise error(f"{what} {path!r} cannot be read ({exc.strerror or exc})") from None


def parse(data, where, error=OnnxModelError):
    """A ModelProto from serialized bytes; nothing outside the bytes is read."""
    import onnx
    from google.protobuf.message import DecodeError
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, TypeError, RuntimeError) as exc:
        raise error(f"{where} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, onnx.ModelProto) or not model.HasField("graph"):
        raise error(f"{where} is not an ONNX model (it holds no graph)")
    return model


# ------------------------------------------------------------------ walking the model

def _graphs(graph):
    """``graph`` and every subgraph inside its nodes' attributes (If, Loop, Scan)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for g in attr.graphs:
                yield from _graphs(g)


def _node_tensors(node):
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        for sp in attr.sparse_tensors:
            yield sp.values
            yield sp.indices


def tensors(model):
    """Every TensorProto of ``model``: initializers, sparse initializers and constants in
    attributes, in the main graph, its subgraphs and the model's local functions."""
    for graph in _graphs(model.graph):
        yield from graph.initializer
        for sp in graph.sparse_initializer:
            yield sp.values
            yield sp.indices
        for node in graph.node:
            yield from _node_tensors(node)
    for fn in model.functions:
        for node in fn.node:
            yield from _node_tensors(node)
            for attr in node.attribute:
                for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    for sub in _graphs(g):
                        yield from sub.initializer
                        for n in sub.node:
                            yield from _node_tensors(n)


def _nodes(model):
    for graph in _graphs(model.graph):
        yield from graph.node
    for fn in model.functions:
        for node in fn.node:
            yield node
            for attr in node.attribute:
                for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    for sub in _graphs(g):
                        yield from sub.node


def _is_external(tensor):
    import onnx
    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


# ------------------------------------------------------------------ the checks

def check_domains(model, where, error=OnnxModelError):
    """Only the standard ONNX domain: in the opset imports, in every node, no local functions."""
    other = sorted({o.domain for o in model.opset_import if o.domain not in STANDARD_DOMAINS})
    if other:
        raise error(f"{where} imports operator domain(s) {other}; symgrad accepts the standard ONNX domain only "
                    "(no com.microsoft or other vendor operators)")
    if len(model.functions):
        raise error(f"{where} defines local functions ({', '.join(f.name for f in model.functions)}); symgrad "
                    "accepts graphs of standard ONNX operators only")
    for node in _nodes(model):
        if node.domain not in STANDARD_DOMAINS:
            raise error(f"{where} uses operator {node.domain}.{node.op_type} (node {node.name!r}); symgrad accepts "
                        "the standard ONNX domain only")


def check_external_data(model, where, folder, error=OnnxModelError):
    """Every external-data reference must name a regular file (no symlink) inside
    ``folder`` and lie within it; ``folder=None`` refuses external data altogether.
    Returns the tensors that use external data."""
    external = [t for t in tensors(model) if _is_external(t)]
    if external and folder is None:
        t = external[0]
        loc = next((e.value for e in t.external_data if e.key == "location"), "?")
        raise error(f"{where} stores tensor {t.name!r} as external data (location {loc!r}); symgrad never writes "
                    "external data and does not read it from here")
    root = os.path.realpath(folder) if folder is not None else None
    for t in external:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        bad = f"{where}: tensor {t.name!r} refers to external data at {loc!r}"
        norm = os.path.normpath(loc) if loc else ""
        if not loc or os.path.isabs(loc) or norm.startswith("..") or "\\" in loc or ":" in loc or "\x00" in loc:
            raise error(f"{bad}, outside the model's folder; accepted: a file name inside {folder!r}")
        full = os.path.join(root, norm)
        real = os.path.realpath(full)
        if real != os.path.normpath(full) or real == root or os.path.commonpath([root, real]) != root:
            raise error(f"{bad}, which leads outside the model's folder through a symbolic link")
        try:
            st = os.lstat(full)
        except OSError:
            raise error(f"{bad}, which does not exist in {folder!r}") from None
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{bad}, which is not a regular file")
        try:
            offset = int(info.get("offset", 0))
            length = int(info.get("length", st.st_size - offset))
        except ValueError:
            raise error(f"{bad} with offset {info.get('offset')!r} and length {info.get('length')!r}; "
                        "expected integers") from None
        if offset < 0 or length < 0 or offset + length > st.st_size:
            raise error(f"{bad}, bytes {offset}..{offset + length} of a file of {st.st_size} bytes")
    return external


def check_model(model, where, error=OnnxModelError, external_data_folder=None):
    """The checks every model from elsewhere passes before anything reads or runs it."""
    check_domains(model, where, error)
    return check_external_data(model, where, external_data_folder, error)


def load_onnx(source, what="ONNX model", *, external_data=True):
    """An ``onnx.ModelProto`` read from ``source`` (a path, or a ModelProto) without
    trusting it. Refuses a symlink, a file that is not ONNX, operators outside the
    standard domain, and external data that is not a regular file inside the model's
    folder (a ModelProto given directly may use none). With ``external_data=False`` the
    references are checked but not read (enough to inspect a model). Raises
    OnnxModelError, naming the file and the reference."""
    import onnx
    if isinstance(source, onnx.ModelProto):
        check_model(source, what, OnnxModelError, None)
        return source
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise OnnxModelError(f"{what} must be a file path or an onnx.ModelProto, got {type(source).__name__}")
    path = os.fsdecode(source)
    model = parse(read_regular_file(path, what), f"{what} {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    external = check_model(model, f"{what} {path!r}", OnnxModelError, folder)
    if external and external_data:
        from onnx.external_data_helper import load_external_data_for_tensor
        for t in external:
            try:
                load_external_data_for_tensor(t, folder)
            except (OSError, ValueError) as exc:
                raise OnnxModelError(f"{what} {path!r}: cannot read the external data of tensor {t.name!r} "
                                     f"({exc})") from None
    return model
