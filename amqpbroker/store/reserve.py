"""A file of zeros kept beside the database so acks can be committed on a full disk.

When the disk fills, every commit fails, including the ones that record acks, and
without those nothing can ever be deleted to free space: the broker would wait for
an operator. So the store keeps ``RESERVE_BYTES`` allocated in the data dir and
gives them up the first time a commit fails: the retry (publishers are blocked by
then, so it is mostly acks) has room, the drained rows become free pages that
``SQLiteStore.reclaim`` returns to the filesystem, and once the disk alarm clears the
reserve is taken again.

Resource handling: ``take`` and ``release`` raise nothing; a reserve that cannot be
allocated (the disk is already full) is simply absent until the next ``take``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

RESERVE_FILE: Final = "disk-reserve"
# Room for a commit of acks and the vacuum after it: the WAL of a batch of tens of
# thousands of deletions is a few MB.
RESERVE_BYTES: Final = 8 * 1024 * 1024
_CHUNK = 1024 * 1024


class DiskReserve:
    def __init__(self, data_dir: Path, size: int = RESERVE_BYTES) -> None:
        self.path = data_dir / RESERVE_FILE
        self.size = size

    @property
    def held(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    @property
    def shortfall(self) -> int:
        """Bytes the reserve lacks (the disk alarm counts them as already used)."""
        try:
            return max(0, self.size - self.path.stat().st_size)
        except OSError:
            return self.size

    def take(self) -> bool:
        """Allocate the reserve (written zeros, so a filesystem without fallocate, like
        tmpfs on old kernels, really holds the blocks); False if there is no room."""
        if self.held:
            return True
        zeros = bytes(_CHUNK)
        try:
            with open(self.path, "wb") as f:
                for _ in range(self.size // _CHUNK):
                    f.write(zeros)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            self.release()
            return False
        return True

    def release(self) -> bool:
        """Give the reserve back to the filesystem; True if there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError:
            with contextlib.suppress(OSError):
                os.truncate(self.path, 0)
        return True
