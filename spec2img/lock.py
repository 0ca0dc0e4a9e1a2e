"""An exclusive lock on an output folder (IMAGES_DIR, a run folder) for the length of a run.

``flock`` on ``<folder>/.lock``: the kernel drops it when the holder exits, even on ``kill -9``,
so a stale lock never blocks a rerun. The file holds who took it (pid, host, command, time) so a
second run can say one line naming the holder, or wait for it with ``wait=True`` (``--wait``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from .errors import LockError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class FolderLock:
    """``with FolderLock(folder, wait=False):`` holds ``folder``'s lock; :class:`LockError` if taken."""

    def __init__(self, folder: Path, *, wait: bool = False, flag: str = "--wait"):
        self.folder, self.wait, self.flag = Path(folder), wait, flag
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another process"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("time", 0)))
        return f"pid {info.get('pid')} on {info.get('host')} (`{info.get('command', '?')}`, since {started})"

    def acquire(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): no locking
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:  # a full disk, a read-only folder: name the lock file
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not self.wait:
                os.close(fd)
                raise LockError(f"{self.folder}: in use by {self.holder()}; wait for it to finish, "
                                f"or pass {self.flag} to start when it does") from None
            log.warning("%s: in use by %s; waiting (%s)", self.folder, self.holder(), self.flag)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only without its holder's name
            os.ftruncate(fd, 0)
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None

    def __del__(self) -> None:  # a lock held in a local variable ends with its function
        self.release()

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
