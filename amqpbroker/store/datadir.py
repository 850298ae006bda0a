"""The data directory: where it is, who holds it, and whether its database file is usable.

Every check here fails with a one-line StoreError naming the path and the cause, and none of
them writes to an existing database file: a file the broker cannot use is left as it is for
the operator to inspect, never replaced by a new empty database.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import platformdirs

from amqpbroker.store.base import StoreError

DB_FILE = "amqpbroker.sqlite3"
LOCK_FILE = "amqpbroker.lock"
# The first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"


def default_data_dir() -> Path:
    """The per-user data directory (e.g. ~/.local/share/amqpbroker on Linux)."""
    return Path(platformdirs.user_data_dir("amqpbroker", appauthor=False))


class DataDirLocked(StoreError):
    """Another store (a running broker, most likely) holds the data dir; ``pid`` is the
    holder's process id as it wrote it, or "unknown"."""

    def __init__(self, message: str, pid: str) -> None:
        super().__init__(message)
        self.pid = pid


def startup_error(data_dir: Path, cause: str) -> StoreError:
    return StoreError(f"cannot open data dir {data_dir}: {cause}")


def os_cause(exc: OSError) -> str:
    """Name an OSError the way an operator reads it: the cause first, then the file."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        cause = "permission denied"
    else:
        cause = (exc.strerror or type(exc).__name__).lower()
    return f"{cause} ({exc.filename})" if exc.filename else cause


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data dir if it does not exist; fail if it is not a usable directory."""
    if data_dir.exists() and not data_dir.is_dir():
        raise startup_error(data_dir, "it is a file, not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        # mkdir(exist_ok) does not tell us whether we may enter the directory; listing does.
        os.listdir(data_dir)
    except NotADirectoryError as exc:
        # The error names the path being created; the operator needs the file in the way.
        blocker = next((p for p in data_dir.parents if p.exists()), data_dir)
        raise startup_error(data_dir, f"{blocker} is a file, not a directory") from exc
    except OSError as exc:
        raise startup_error(data_dir, os_cause(exc)) from exc
    # SQLite creates its -wal and -shm files beside the database; without this check a
    # read-only dir would only show up later as "unable to open database file".
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise startup_error(data_dir, f"permission denied (cannot create files in {data_dir})")


class DataDirLock:
    """An exclusive flock on the data dir's lock file, which also holds the holder's pid.

    flock locks belong to the open file, so the lock holds against another store in this
    process too, and the kernel drops it when the process dies however it dies. The lock file
    is never deleted: unlinking a lock file races with the next process opening it.
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        path = data_dir / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise startup_error(data_dir, os_cause(exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(
                str(startup_error(data_dir, f"locked by another broker process (pid {holder})")),
                holder,
            ) from None
        except OSError as exc:
            os.close(fd)
            raise startup_error(data_dir, os_cause(exc)) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd)

    def release(self, *, clean: bool) -> None:
        """Unlock. ``clean`` also clears the pid so that a stale pid is never reported; a
        simulated crash leaves it, as a killed process would."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if clean:
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor of the open file releases the flock


def _read_pid(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    # The holder writes its pid just after it gets the lock; between the two it is unknown.
    return text if text.isdigit() else "unknown"


def check_db_file(data_dir: Path, path: Path) -> bool:
    """Fail unless ``path`` is absent, empty, or an SQLite file we may read and write.
    Returns whether it holds data (then the caller checks its integrity)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise startup_error(data_dir, f"{path} is a directory, not a database file") from None
    except OSError as exc:
        raise startup_error(data_dir, os_cause(exc)) from exc
    try:
        magic = os.pread(fd, len(SQLITE_MAGIC), 0)
    except OSError as exc:
        raise startup_error(data_dir, os_cause(exc)) from exc
    finally:
        os.close(fd)
    if not magic:
        return False
    if magic != SQLITE_MAGIC:
        raise startup_error(data_dir, f"{path} is not an SQLite database; left untouched")
    return True
