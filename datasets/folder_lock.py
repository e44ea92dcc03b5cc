"""One writer per folder: an advisory lock (``flock``) on a file inside the folder.

The operating system drops the lock when its holder exits, however it exits (SIGKILL included),
so a lock left by a dead process is never in force: the next writer takes it over, and says
whose it was. The file holds the holder's PID, host, start time and command, so a refused writer
can name it. The file is never deleted (unlinking a lock file lets two writers hold locks on
two different files); releasing empties it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from datasets.errors import UserError

LOCK_FILE = ".flowhash-lock"


class FolderBusyError(UserError, RuntimeError):
    """Another process holds the folder's lock."""


def _holder(text: str) -> dict:
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    if not holder:
        return "a process that left no record"
    command = " ".join(holder.get("argv") or [])
    return (f"PID {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
            + (f": {command}" if command else ""))


@contextlib.contextmanager
def folder_lock(root: Path | str, what: str, quiet: bool = False) -> Iterator[Path]:
    """Hold ``root``'s lock for the block (the folder is created if needed); ``what`` names the
    folder's kind in messages ("run folder", "embedding store", "query-set folder").

    Raises :class:`FolderBusyError` naming the holder's PID when another process holds it. A lock
    record left by a process that no longer holds the lock (killed, crashed) is taken over, with a
    line saying so unless ``quiet``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path.read_text(errors="replace"))
            raise FolderBusyError(f"{root}: this {what} is in use by another process ({_describe(holder)}); "
                                  f"one writer at a time. Wait for it to finish, stop it, or choose another "
                                  f"folder") from None
        old = _holder(os.pread(fd, 1 << 16, 0).decode(errors="replace"))
        if old and not quiet:
            print(f"{root}: taking over the lock of {_describe(old)}, which ended without releasing it",
                  file=sys.stderr)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
