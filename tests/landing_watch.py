"""Proof that nothing outside the landing root was opened: Linux inotify reports every open
of a watched folder (a listing) and of each file in it, by any path, links included."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from inotify_simple import INotify, flags


class OpenWatch:
    """Watches `folders` for opens; `opened()` drains what was opened since the last call."""

    def __init__(self, *folders: Path) -> None:
        self._inotify = INotify()
        self._names = {self._inotify.add_watch(str(f), flags.OPEN | flags.ACCESS): f for f in folders}

    def opened(self) -> list[str]:
        return [str(self._names[e.wd] / e.name) for e in self._inotify.read(timeout=0)]

    def close(self) -> None:
        self._inotify.close()


def outside(root: Path) -> tuple[Path, Path]:
    """A folder beside the landing root holding a canary patient file (what a link would expose)."""
    folder = root / "outside"
    folder.mkdir(exist_ok=True)
    canary = folder / "canary.csv"
    canary.write_text("patient_id,name\nP1,CANARY-张三\n", encoding="utf-8")
    return folder, canary


def make_socket(path: Path) -> socket.socket:
    """A bound Unix socket at `path` (the caller closes it). Bound at a short path and moved:
    a socket path is limited to about 100 bytes."""
    short = Path(tempfile.mkdtemp(prefix="s", dir=path.parent.anchor + "tmp")) / "s"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(short))
    os.rename(short, path)
    short.parent.rmdir()
    return s


def fifo_has_no_reader(path: Path) -> bool:
    """Opening a FIFO to write without blocking fails with ENXIO while nobody reads it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return True
    os.close(fd)
    return False
