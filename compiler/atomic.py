"""Files are never half-written: write to a temporary name beside the target, then rename.

Imports nothing heavy, so the runtime uses the same helpers for checkpoints, exports
and CSV logs. A crash (even SIGKILL) at any instant leaves the old file or the new one
under the target name, plus at worst a stray temporary beside it, which the next
successful write to the same target removes (``.tmp-XXXXXXXX-<name>`` for a file,
``.tmp-<name>-XXXXXXXX`` for a folder; only those, and only once the writer that made
one is dead: each writer holds a lock on its temporary, see locks.py).

Nothing is ever deleted that symgrad did not write: ``replace_directory`` replaces a
folder only when its caller recognises every entry as its own.
"""
import contextlib
import ctypes
import errno
import os
import re
import shutil
import stat
import tempfile
import warnings

from . import locks
from .errors import ParameterError, SaveError, SymgradError

# mkstemp/mkdtemp's random part: 8 characters of this alphabet
_RANDOM = "[a-z0-9_]{8}"


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
    for _ in range(_ATTEMPTS):
        # the suffix keeps the extension: writers such as matplotlib pick the format from it
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
        lock = locks.hold(tmp)          # tells later writers that this temporary is in use
        if lock is not None:
            return fd, tmp, directory, lock
        os.close(fd)                    # a cleaner removed it before we locked it: take another
    raise SaveError(errno.EBUSY, f"cannot write {path!r}: its temporary was removed {_ATTEMPTS} times in a row")


_ATTEMPTS = 5


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


def _naming_the_path(exc, path):
    """An OSError of the write (disk full at the fsync, a refused rename) as a SaveError
    whose message names ``path``; the errno stays."""
    if isinstance(exc, SymgradError) or not isinstance(exc, OSError):
        return exc
    reason = exc.strerror or str(exc) or type(exc).__name__
    err = SaveError(exc.errno, f"cannot write {os.fspath(path)!r}: {reason}")
    err.filename = os.fspath(path)
    return err


@contextlib.contextmanager
def _writing(path, lock):
    """Around a write of ``path``: ``lock`` (on its temporary) is released however the write
    ends, and an OSError leaves as a SaveError naming ``path``."""
    try:
        yield
    except BaseException as exc:
        err = _naming_the_path(exc, path)
        if err is exc:
            raise
        raise err from None
    finally:
        locks.release(lock)


def _produce_then_commit(path, produce):
    """Create the temporary beside ``path``, fill it with ``produce(fd, tmp)`` (which must
    fsync it), rename it into place; on any failure remove it and re-raise. Once the
    write went through, temporaries that killed writes of ``path`` left are removed."""
    fd, tmp, directory, lock = _temp_beside(path)
    with _writing(path, lock):
        try:
            produce(fd, tmp)
            _commit(tmp, path, directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    discard_temporaries(path)
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


def _temporaries(path, pattern):
    directory, name = os.path.dirname(os.path.abspath(path)), os.path.basename(os.path.abspath(path))
    wanted = re.compile(pattern.replace("{name}", re.escape(name)))
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    return [(e, os.path.join(directory, e)) for e in sorted(entries) if wanted.fullmatch(e)]


def discard_temporaries(path):
    """Remove the temporary files that writes of ``path`` killed half-way left beside it
    (``.tmp-XXXXXXXX-<name>``, regular files nobody holds a lock on). Returns the names removed."""
    removed = []
    def unlink(full):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(full)
        return True

    for entry, full in _temporaries(path, r"\.tmp-" + _RANDOM + r"-{name}"):
        try:
            if stat.S_ISREG(os.lstat(full).st_mode) and locks.remove_if_abandoned(full, unlink):
                removed.append(entry)
        except OSError:
            continue
    return removed


def discard_temporary_folders(path, owned):
    """Remove the temporary folders that replacements of ``path`` killed half-way left
    beside it (``.tmp-<name>-XXXXXXXX`` nobody holds a lock on): the entries ``owned``
    recognises, then the folder if that empties it. Returns the names removed."""
    removed = []
    for entry, full in _temporaries(path, r"\.tmp-{name}-" + _RANDOM):
        try:
            if stat.S_ISDIR(os.lstat(full).st_mode) and locks.remove_if_abandoned(
                    full, lambda f: _remove_owned(f, owned)):
                removed.append(entry)
        except OSError:
            continue
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


def _remove_owned(folder, owned):
    """Delete the entries of ``folder`` that ``owned`` claims (regular files and symlinks
    only, never what a link points to), then the folder if that leaves it empty. True
    when the folder is gone."""
    _, names = owned(folder)
    for name in names:
        full = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if not stat.S_ISDIR(os.lstat(full).st_mode):
                os.unlink(full)
    try:
        os.rmdir(folder)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def check_replaceable(path, owned, what="folder"):
    """Refuse (ParameterError naming ``path``) to replace anything but nothing, an empty
    folder, or a folder that ``owned`` recognises (``owned(folder) -> (recognised,
    names)``) and whose every entry is one of ``names``."""
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):    # nothing there (_make_parent judges the parents)
        return
    except OSError as exc:
        raise ParameterError(f"cannot write {what} {path!r}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ParameterError(f"cannot write {what} {path!r}: it is a symbolic link; symgrad replaces only a "
                             f"{what} it wrote itself (give the path of a new or empty folder)")
    if not stat.S_ISDIR(st.st_mode):
        raise ParameterError(f"cannot write {what} {path!r}: a file of that name exists and symgrad does not "
                             f"delete files it did not write; choose a new folder name or move the file away")
    try:
        entries = set(os.listdir(path))
    except OSError as exc:
        raise ParameterError(f"cannot write {what} {path!r}: {exc.strerror or exc}") from None
    if not entries:
        return
    recognised, names = owned(path)
    if not recognised:
        raise ParameterError(f"cannot write {what} {path!r}: the folder is not empty and is not a {what} "
                             f"(it holds {_some(entries)}); symgrad replaces only a {what} it wrote itself. "
                             "Choose a new or empty folder")
    foreign = sorted(e for e in entries if e not in names or stat.S_ISDIR(os.lstat(os.path.join(path, e)).st_mode))
    if foreign:
        raise ParameterError(f"cannot write {what} {path!r}: besides the {what} it holds {_some(foreign)}, which "
                             "symgrad did not write and will not delete; move them away or choose another folder")


def _some(names, limit=5):
    names = sorted(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def replace_directory(path, fill, owned, what="folder"):
    """Build a directory with ``fill(tmpdir)`` and swap it in place of ``path``.

    ``owned(folder) -> (recognised, names)`` says whether a folder is one this writer
    made, and which of its entries it wrote: ``path`` is replaced only when it does not
    exist, is empty, or is recognised and holds nothing else (``check_replaceable``); of
    the old folder only those entries are deleted.

    A reader sees either the old directory or the new one: the new one is complete
    (every file fsynced) before it takes the name. On Linux the two trade places in one
    atomic rename; elsewhere the old one is moved aside first and removed after, which
    leaves a short window with neither under the name (the old one survives as
    ``.old-*`` beside it, and is never removed by a later write)."""
    path = os.path.abspath(os.fspath(path))
    check_replaceable(path, owned, what)
    parent = _make_parent(path)
    for _ in range(_ATTEMPTS):
        tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=parent)
        lock = locks.hold(tmp)
        if lock is not None:
            break
    else:
        raise SaveError(errno.EBUSY, f"cannot write {path!r}: its temporary folder was removed {_ATTEMPTS} times")
    progress = {"swapped": False}
    with _writing(path, lock):
        try:
            _swap_in(path, tmp, parent, fill, owned, what, progress)
        except BaseException:
            if not progress["swapped"]:     # only then is ``tmp`` still the folder fill() made
                shutil.rmtree(tmp, ignore_errors=True)
            raise
    discard_temporary_folders(path, owned)
    return path


def _swap_in(path, tmp, parent, fill, owned, what, progress):
    fill(tmp)
    for root, _, files in os.walk(tmp):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(tmp)
    if os.path.lexists(path) and _exchange(tmp, path):
        progress["swapped"] = True
        _fsync_dir(parent)
        _discard_old(tmp, owned, path, what)            # now what was at ``path`` before
        return
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
    progress["swapped"] = True
    _fsync_dir(parent)
    if old:
        _discard_old(old, owned, path, what)


def _discard_old(folder, owned, path, what):
    if not _remove_owned(folder, owned):
        # something appeared in the old folder after it was checked: keep it all
        warnings.warn(f"the previous {what} at {path!r} held files symgrad did not write; they were kept in "
                      f"{folder!r}", stacklevel=4)
