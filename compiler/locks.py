"""Advisory locks (``fcntl.flock``) that the kernel drops when their process dies.

Two uses:

- a writer holds a lock on its temporary file or folder while it fills it, so that the
  next write to the same place can tell a temporary that a killed write left behind
  (unlocked: remove it) from one another process is filling right now (locked: leave it);
- ``FolderLock``: one process at a time works in a folder (BackupAndRestore's
  ``backup_dir``); a second one is refused with an error naming the folder.

Where ``fcntl`` does not exist (Windows) nothing is locked, and stale temporaries are
left alone rather than risk removing another writer's.
"""
import contextlib
import os

from .errors import FolderInUseError, ParameterError, SaveError

try:
    import fcntl
except ImportError:             # pragma: no cover - not on Linux or macOS
    fcntl = None

LOCK_FILE = ".symgrad-lock"


def hold(path):
    """Open ``path`` (a file or a folder) and lock it exclusively; returns the descriptor
    to close when done (closing releases the lock), or None where locks do not exist."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release(fd):
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def is_abandoned(path):
    """True when nobody holds a lock on ``path``: the writer that made it has died.
    False where locks do not exist, or when ``path`` is gone or cannot be opened."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class FolderLock:
    """An exclusive lock on ``folder`` (through ``folder/.symgrad-lock``), held until
    ``release``; ``what`` names the holder in the error a second process gets."""

    def __init__(self, folder, what):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_FILE)
        self.what = what
        self._fd = None

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        if self._fd is not None or fcntl is None:
            return self
        for _ in range(20):
            try:
                os.makedirs(self.folder, exist_ok=True)
                fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except (FileExistsError, NotADirectoryError):
                raise ParameterError(f"{self.what}: {self.folder!r} is not a folder (a file is in the way); "
                                     "accepted: a folder path") from None
            except OSError as exc:
                err = SaveError(exc.errno, f"{self.what}: cannot lock folder {self.folder!r}: {exc.strerror or exc}")
                err.filename = self.folder
                raise err from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise FolderInUseError(
                    f"{self.what}: folder {self.folder!r} is in use by another process (it holds "
                    f"{LOCK_FILE} there); give each run its own folder, or wait for the other one to finish"
                ) from None
            # the holder before us may have removed the lock file as it let go: a lock on
            # a file that no longer has the name locks nothing; take the new file instead
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return self
            os.close(fd)
        raise FolderInUseError(f"{self.what}: cannot lock folder {self.folder!r} (its {LOCK_FILE} keeps changing)")

    def release(self, remove=False):
        """Let go; with ``remove`` the lock file goes first (only ours, and only while held)."""
        if self._fd is None:
            return
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        release(self._fd)
        self._fd = None
