"""Loading ONNX files from elsewhere: they are untrusted input.

``load_onnx(source, what)`` takes a path or an ``onnx.ModelProto`` and returns the
model with any external data read in. It refuses external-data locations that leave
the model's folder (absolute paths, ``..``) or go through symbolic links, files that
are not ONNX, and operator domains other than the standard ones; every refusal is a
``SymgradError`` naming the file and what is accepted.
"""
import os

from .errors import SymgradError

_DOMAINS = ("", "ai.onnx")


class UntrustedInputError(SymgradError, ValueError):
    """An ONNX file or bundle from elsewhere that symgrad refuses to read."""


def _external_locations(model):
    from onnx.external_data_helper import _get_all_tensors
    for t in _get_all_tensors(model):
        if t.data_location == 1:  # TensorProto.EXTERNAL
            for entry in t.external_data:
                if entry.key == "location":
                    yield t.name, entry.value


def _check_location(path, folder, tensor, location, what):
    if os.path.isabs(location) or os.path.normpath(location).split(os.sep)[0] == ".." or "\\" in location:
        raise UntrustedInputError(f"{what} {path!r}: tensor {tensor!r} stores its data at {location!r}, outside "
                                  "the model's folder; accepted: relative paths inside that folder")
    full = os.path.join(folder, location)
    real_folder = os.path.realpath(folder)
    probe = folder
    for part in os.path.normpath(location).split(os.sep):
        probe = os.path.join(probe, part)
        if os.path.islink(probe):
            raise UntrustedInputError(f"{what} {path!r}: the external data of tensor {tensor!r} goes through the "
                                      f"symbolic link {probe!r}; accepted: plain files inside the model's folder")
    if os.path.commonpath([os.path.realpath(full), real_folder]) != real_folder:
        raise UntrustedInputError(f"{what} {path!r}: tensor {tensor!r} stores its data outside the model's folder")
    if not os.path.isfile(full):
        raise UntrustedInputError(f"{what} {path!r}: the external data file {location!r} of tensor {tensor!r} "
                                  "does not exist")


def _check_domains(model, label):
    for op in model.opset_import:
        if op.domain not in _DOMAINS:
            raise UntrustedInputError(f"{label} imports the operator domain {op.domain!r}; accepted: the standard "
                                      "ONNX domain only")
    for node in model.graph.node:
        if node.domain not in _DOMAINS:
            raise UntrustedInputError(f"{label}: node {node.name!r} ({node.op_type}) is in the domain "
                                      f"{node.domain!r}; accepted: the standard ONNX domain only")


def load_onnx(source, what="ONNX model"):
    """An ``onnx.ModelProto`` from a path or a ModelProto, with external data loaded safely."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    if isinstance(source, onnx.ModelProto):
        _check_domains(source, what)
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise UntrustedInputError(f"{what}: expected a path to an .onnx file or an onnx.ModelProto, "
                                  f"got {type(source).__name__}")
    path = os.fspath(source)
    if os.path.islink(path):
        raise UntrustedInputError(f"{what} {path!r} is a symbolic link; accepted: a plain .onnx file")
    if not os.path.isfile(path):
        raise UntrustedInputError(f"{what} {path!r} does not exist or is not a file")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise UntrustedInputError(f"{what} {path!r} is not a readable ONNX model ({type(exc).__name__})") from None
    folder = os.path.dirname(os.path.abspath(path))
    locations = list(_external_locations(model))
    for tensor, location in locations:
        _check_location(path, folder, tensor, location, what)
    if locations:
        try:
            load_external_data_for_model(model, folder)
        except Exception as exc:
            raise UntrustedInputError(f"{what} {path!r}: its external data cannot be read ({exc})") from None
    _check_domains(model, f"{what} {path!r}")
    return model
