"""Files are never half-written: write to a temporary name beside the target, then rename.

Imports nothing heavy, so the runtime uses the same helpers for checkpoints, exports
and CSV logs. A crash (even SIGKILL) at any instant leaves the old file or the new one
under the target name, plus at worst a stray ``.tmp-*`` beside it.
"""
import contextlib
import ctypes
import os
import shutil
import tempfile

from .errors import ParameterError


def _fsync_dir(directory):
    # the rename itself is durable only once the directory entry is on disk
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _make_parent(path):
    """Create the folder ``path`` goes in; a path that cannot be one is the caller's mistake."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ParameterError(f"cannot write {path!r}: a part of {directory!r} is a file, not a folder; "
                             "accepted: a path whose parent folders are folders (or do not exist yet)") from None
    return directory


def _temp_beside(path):
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ParameterError(f"cannot write {path!r}: it is a folder; accepted: a file path, such as "
                             f"{os.path.join(path, 'model.onnx')!r}")
    directory = _make_parent(path)
    # the suffix keeps the extension: writers such as matplotlib pick the format from it
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    return fd, tmp, directory


def _default_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _commit(tmp, path, directory):
    # mkstemp creates 0600; the finished file gets the mode open() would have given it
    with contextlib.suppress(OSError):
        os.chmod(tmp, _default_mode())
    os.replace(tmp, path)
    _fsync_dir(directory)


def _produce_then_commit(path, produce):
    """Create the temporary beside ``path``, fill it with ``produce(fd, tmp)`` (which must
    fsync it), rename it into place; on any failure remove it and re-raise."""
    fd, tmp, directory = _temp_beside(path)
    try:
        produce(fd, tmp)
        _commit(tmp, path, directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return os.fspath(path)


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (fsync, then rename over the old file)."""
    def produce(fd, tmp):
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return _produce_then_commit(path, produce)


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def write_with(path, writer):
    """Atomically write ``path`` with ``writer(tmp_path)``, for libraries that write files
    themselves (matplotlib's savefig, onnx.save): the target appears only once complete."""
    def produce(fd, tmp):
        os.close(fd)
        writer(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    return _produce_then_commit(path, produce)


def discard_temporaries(path):
    """Remove what a write of ``path`` killed half-way left beside it (``.tmp-*-<name>``).
    Only for a path one writer owns (a BackupAndRestore folder): another process's write
    in progress would lose its temporary. Returns the names removed."""
    path = os.fspath(path)
    directory, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(directory):
            if entry.startswith(".tmp-") and entry.endswith("-" + name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, entry))
                    removed.append(entry)
    return removed


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a, b):
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where
    the platform or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def replace_directory(path, fill):
    """Build a directory with ``fill(tmpdir)`` and swap it in place of ``path``.

    A reader sees either the old directory or the new one: the new one is complete
    (every file fsynced) before it takes the name. On Linux the two trade places in one
    atomic rename; elsewhere the old one is moved aside first and removed after, which
    leaves a short window with neither under the name (the old one survives as
    ``.old-*`` beside it)."""
    path = os.path.abspath(os.fspath(path))
    parent = _make_parent(path)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=parent)
    try:
        fill(tmp)
        for root, _, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    os.fsync(f.fileno())
        _fsync_dir(tmp)
        if os.path.lexists(path) and _exchange(tmp, path):
            _fsync_dir(parent)
            _remove(tmp)                                # now what was at ``path`` before
            return path
        old = None
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=".old-" + os.path.basename(path) + "-", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old:                 # put the old one back rather than leave nothing
                os.replace(old, path)
            raise
        _fsync_dir(parent)
        if old:
            _remove(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
