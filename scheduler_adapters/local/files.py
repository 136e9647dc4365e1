"""Small file and pid-record helpers shared by the local adapter and its supervisors.

Records are written atomically (rename) because a second process may read them at
any time; a pid is stored with its start time so that a reused pid is never mistaken
for the process we started.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_untrusted(path: Path, limit: int = 64) -> str | None:
    """A small file in a job's directory: no symlink, no FIFO (a job could plant either)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def proc_starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): a pid + starttime is unique."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if len(fields) < 20 or fields[0] == "Z":
        return None
    return fields[19]


def pid_record(pid: int) -> str:
    return f"{pid} {proc_starttime(pid) or '?'}\n"


def live_pid(record: str | None) -> int | None:
    """The pid in a ``"<pid> <starttime>"`` record if that very process is still alive."""
    if not record:
        return None
    parts = record.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    pid = int(parts[0])
    started = proc_starttime(pid)
    return pid if started is not None and started == parts[1] else None
