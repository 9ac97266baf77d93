"""Read an .npz data file as untrusted input.

Each array's .npy header is read first, and the size it declares is checked against the
bytes the archive really holds before anything is allocated: a file of a few hundred
bytes that declares a shape of 10^12 elements is refused, not allocated. Only plain
numeric arrays are read (no pickled objects).
"""
import math
import os
import zipfile

from numpy.lib import format as npy_format

from symgrad.compiler.errors import DataError

HOW = "write one with numpy.savez(path, x=..., y=..., x_val=..., y_val=...)"
# deflate never expands more than about 1032:1; a member that claims more lies about its size
MAX_DEFLATE_RATIO = 1100
_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError,
                NotImplementedError, MemoryError, OverflowError, TypeError, RuntimeError)


def read_npz(path):
    """{name: array} from the .npz file at ``path``, or a DataError naming what is wrong."""
    try:
        archive = zipfile.ZipFile(path)
    except _READ_ERRORS as exc:
        raise DataError(f"{path} is not an .npz file (not a readable zip archive: {exc}); {HOW}") from None
    with archive:
        data = {}
        for info in archive.infolist():
            if info.is_dir():
                continue
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if not key:
                raise DataError(f"{path} holds {info.filename!r}, which is not a .npy array; {HOW}")
            _check_member_size(path, key, info)
            data[key] = _read_member(path, key, archive, info)
    return data


def _check_member_size(path, key, info):
    total = os.path.getsize(path)
    if info.header_offset + info.compress_size > total:
        raise DataError(f"{path}: array {key!r} claims {info.compress_size:,} bytes beyond the end of the "
                        f"{total:,}-byte file; the archive is truncated or damaged")
    stored = info.compress_type == zipfile.ZIP_STORED
    if (stored and info.file_size > info.compress_size) or \
            info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 1024:
        raise DataError(f"{path}: array {key!r} claims {info.file_size:,} bytes from {info.compress_size:,} "
                        "stored bytes, more than any zip compression gives; the archive is damaged")


def _read_member(path, key, archive, info):
    try:
        with archive.open(info) as f:
            version = npy_format.read_magic(f)
            reader = _HEADER_READERS.get(version)
            if reader is None:
                raise DataError(f"{path}: array {key!r} uses .npy format version {version}; accepted: 1.0, 2.0 "
                                f"(as numpy.savez writes)")
            shape, _, dtype = reader(f)
            header = f.tell()
        if dtype.hasobject:
            raise DataError(f"{path}: array {key!r} holds Python objects ({dtype}); accepted: numeric arrays")
        declared = math.prod(shape) * dtype.itemsize
        if declared > info.file_size - header:
            raise DataError(f"{path}: array {key!r} declares shape {tuple(shape)} of {dtype} ({declared:,} bytes), "
                            f"but the file holds only {max(info.file_size - header, 0):,} bytes for it; "
                            "the file is damaged or forged")
        with archive.open(info) as f:
            return npy_format.read_array(f, allow_pickle=False)
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: array {key!r} cannot be read ({type(exc).__name__}: {exc}); {HOW}") from None
