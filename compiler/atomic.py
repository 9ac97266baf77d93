"""Files are never half-written: write to a temporary name beside the target, then rename.

Imports nothing heavy, so the runtime uses the same helpers for checkpoints, exports
and CSV logs.
"""
import contextlib
import os
import shutil
import tempfile


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (fsync, then rename over the old file)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def replace_directory(path, fill):
    """Build a directory with ``fill(tmpdir)`` and swap it in place of ``path``.

    A reader sees either the old directory or the new one: the new one is complete
    before it takes the name, and the old one is moved aside first and removed after."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=parent)
    try:
        fill(tmp)
        for root, _, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    os.fsync(f.fileno())
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=".old-" + os.path.basename(path) + "-", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
