"""The landing zone is a trust boundary. Institutions write into it (typically over SFTP,
which lets a client create symbolic and hard links), so:

- nothing outside the landing root is opened: each folder and file on a batch's path is
  checked without following links, opened with O_NOFOLLOW, and the opened descriptor must be
  the entry that was checked (a link swapped in between is caught);
- only regular files are read: FIFOs, sockets, devices and folders where a file is due are
  refused without being opened (opening a FIFO blocks until someone writes to it);
- every read is bounded by the site's limits (`medgov.spec.site.LandingLimits`): sizes and
  counts before reading, time while reading (in a thread the run waits for no longer than
  the budget, so stuck storage costs one batch, not the run).

Reasons name the entry and the rule, never anything about a link's target or a refused
file's content. The landing root itself is the deployment's and may be reached by a link.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ByteSize

from medgov.errors import BatchDeferred, BatchRejected
from medgov.spec.site import LandingLimits

MANIFEST = "manifest.json"
FLAG_SUFFIX = ".ready"
_ROOT = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FOLDER = _ROOT | os.O_NOFOLLOW
# O_NONBLOCK: should a FIFO be swapped in after the check, opening it must not wait for a writer
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 1 << 20
_KINDS = ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "folder"), (stat.S_ISLNK, "symbolic link"),
          (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"))


def kind(mode: int) -> str:
    """What a file mode says the entry is, in words for a reason."""
    return next((name for test, name in _KINDS if test(mode)), "special file")


def size_text(n: int) -> str:
    return ByteSize(n).human_readable()


@dataclass(frozen=True)
class Entry:
    """One name in a landing folder, as `lstat` saw it (links not followed)."""

    name: str
    mode: int
    size: int
    links: int
    mtime_ns: int
    identity: tuple[int, int]  # (device, inode)

    @classmethod
    def of(cls, name: str, st: os.stat_result) -> "Entry":
        return cls(name, st.st_mode, st.st_size, st.st_nlink, st.st_mtime_ns, (st.st_dev, st.st_ino))

    @property
    def kind(self) -> str:
        return kind(self.mode)

    @property
    def regular(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def modified(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, timezone.utc)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _folder_refusal(shown: str, what: str) -> BatchRejected:
    return BatchRejected(f"{shown} is a {what}; the landing zone accepts real folders only")


def _descend(fd: int, name: str, shown: str) -> int:
    """Open folder `name` inside folder `fd`, refusing a link or anything but a folder."""
    st = os.stat(name, dir_fd=fd, follow_symlinks=False)  # FileNotFoundError: the caller says what is missing
    if not stat.S_ISDIR(st.st_mode):
        raise _folder_refusal(shown, kind(st.st_mode))
    try:
        child = os.open(name, _FOLDER, dir_fd=fd)
    except OSError:  # ELOOP or ENOTDIR: replaced by a link or a file since the check
        raise _folder_refusal(shown, "folder replaced while it was opened") from None
    if _identity(os.fstat(child)) != _identity(st):
        os.close(child)
        raise _folder_refusal(shown, "folder replaced while it was opened")
    return child


@contextmanager
def opened_root(root: Path) -> Iterator[int]:
    fd = os.open(root, _ROOT)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def opened_folder(fd: int, name: str, shown: str) -> Iterator[int]:
    child = _descend(fd, name, shown)
    try:
        yield child
    finally:
        os.close(child)


def listing(fd: int, most: int | None = None, shown: str = "") -> list[Entry]:
    """The entries of folder `fd` by name; over `most` entries refuses the batch (stops listing)."""
    out: list[Entry] = []
    with os.scandir(fd) as it:
        for e in it:
            out.append(Entry.of(e.name, e.stat(follow_symlinks=False)))
            if most is not None and len(out) > most:
                raise BatchRejected(f"{shown} holds more than {most} entries; the site allows at most "
                                    f"{most - 1} files per batch besides {MANIFEST} (files_per_batch)")
    return sorted(out, key=lambda e: e.name)


def read_regular(fd: int, entry: Entry, limit: int, deadline: float) -> bytes:
    """The bytes of regular file `entry` in folder `fd`: opened without following a link,
    checked to be the file listed, read up to `limit` bytes before `deadline`."""
    refused = BatchRejected(f"{entry.name} was replaced while it was opened; the landing zone accepts "
                            "regular files only")
    try:
        ffd = os.open(entry.name, _FILE, dir_fd=fd)
    except OSError:
        raise refused from None
    try:
        st = os.fstat(ffd)
        if not stat.S_ISREG(st.st_mode) or _identity(st) != entry.identity:
            raise refused
        chunks, n = [], 0
        while True:
            if time.monotonic() > deadline:
                raise BatchDeferred(f"{entry.name}: reading was still not done when the batch's time budget "
                                    "ran out (batch_seconds); the batch is tried again at the next trigger")
            chunk = os.read(ffd, min(_CHUNK, limit + 1 - n))
            if not chunk:
                return b"".join(chunks)
            n += len(chunk)
            if n > limit:
                raise BatchRejected(f"{entry.name} grew past {size_text(limit)} while it was read")
            chunks.append(chunk)
    finally:
        os.close(ffd)


@dataclass(frozen=True)
class Landed:
    """Every file of one batch folder (manifest included), read across the boundary."""

    files: dict[str, bytes]

    @property
    def fingerprint(self) -> str:
        """Content hash of the batch folder: names and bytes."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()


def _check_entries(entries: list[Entry], limits: LandingLimits) -> None:
    """Kinds, names and sizes, before a byte is read."""
    for e in entries:
        if not e.regular:
            raise BatchRejected(f"{e.name} is a {e.kind}; the landing zone accepts regular files only")
        if e.links > 1 and limits.hard_links == "reject":
            raise BatchRejected(f"{e.name} has {e.links} names (a hard link); the landing zone accepts files "
                                "with one name only (hard_links: reject)")
    sizes = {e.name: e.size for e in entries}
    if MANIFEST not in sizes:
        raise BatchRejected(f"{MANIFEST} is missing")
    if sizes[MANIFEST] > limits.manifest_bytes:
        raise BatchRejected(f"{MANIFEST} is {size_text(sizes[MANIFEST])}; the site allows at most "
                            f"{size_text(limits.manifest_bytes)} (manifest_bytes)")
    for name, size in sizes.items():
        if name != MANIFEST and size > limits.file_bytes:
            raise BatchRejected(f"{name} is {size_text(size)}; the site allows at most "
                                f"{size_text(limits.file_bytes)} per file (file_bytes)")
    total = sum(sizes.values())
    if total > limits.batch_bytes:
        raise BatchRejected(f"the batch's files hold {size_text(total)}; the site allows at most "
                            f"{size_text(limits.batch_bytes)} per batch (batch_bytes)")


def read_landed(root: Path, org: str, batch_id: str, limits: LandingLimits, deadline: float) -> Landed:
    """Check and read batch folder `root/org/batch_id`; BatchRejected says why it was refused."""
    with opened_root(root) as root_fd:
        try:
            org_fd = _descend(root_fd, org, f"{org}/")
        except FileNotFoundError:
            raise BatchRejected(f"{org}/ is missing") from None
        try:
            try:
                batch_fd = _descend(org_fd, batch_id, f"{batch_id}/")
            except FileNotFoundError:
                raise BatchRejected(f"ready flag without batch folder {org}/{batch_id}/") from None
            try:
                entries = listing(batch_fd, limits.files_per_batch + 1, f"{batch_id}/")
                _check_entries(entries, limits)
                budget = {e.name: limits.manifest_bytes if e.name == MANIFEST else limits.file_bytes for e in entries}
                return Landed({e.name: read_regular(batch_fd, e, budget[e.name], deadline) for e in entries})
            finally:
                os.close(batch_fd)
        finally:
            os.close(org_fd)


def refusal_fingerprint(root: Path, org: str, batch_id: str) -> str:
    """A stable mark of a refused batch's shape (names, kinds, sizes, times; no content and
    nothing behind a link), so the same refusal is not logged again at every run."""
    h = hashlib.sha256(b"refused\0")
    try:
        with opened_root(root) as root_fd, opened_folder(root_fd, org, org) as org_fd:
            st = os.stat(batch_id, dir_fd=org_fd, follow_symlinks=False)
            h.update(repr((st.st_mode, st.st_size, st.st_mtime_ns)).encode())
            if stat.S_ISDIR(st.st_mode):
                with opened_folder(org_fd, batch_id, batch_id) as fd:
                    for e in listing(fd, 10_000):
                        h.update(repr((e.name, e.mode, e.size, e.links, e.mtime_ns)).encode())
    except (OSError, BatchRejected):
        h.update(b"unlistable")
    return h.hexdigest()


def read_within_budget(root: Path, org: str, batch_id: str, limits: LandingLimits) -> Landed:
    """`read_landed` in a thread the caller waits for at most the batch's time budget: a read
    stuck in the kernel (a hung network mount) is left behind and the batch deferred."""
    seconds = float(limits.batch_seconds)
    deadline = time.monotonic() + seconds
    outcome: dict[str, object] = {}

    def read() -> None:
        try:
            outcome["landed"] = read_landed(root, org, batch_id, limits, deadline)
        except BaseException as exc:  # handed to the caller's thread as it is
            outcome["error"] = exc

    reader = threading.Thread(target=read, name=f"landing read {org}/{batch_id}", daemon=True)
    reader.start()
    reader.join(seconds + 1.0)  # the reader's own deadline, checked between chunks, usually fires first
    if reader.is_alive():
        raise BatchDeferred(f"reading the batch took longer than the site's budget of {seconds:g} s "
                            "(batch_seconds); it is tried again at the next trigger")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["landed"]  # type: ignore[return-value]


@dataclass(frozen=True)
class Survey:
    """What the landing root holds: ready flags (org, batch id, flag time) and entries refused
    with their reason, keyed `org/batch_id` (`org/*` for a whole org folder)."""

    flags: list[tuple[str, str, datetime]]
    refused: dict[str, str]


def survey(root: Path) -> Survey:
    """The ready flags under `root/<org>/`, read without following a link."""
    flags: list[tuple[str, str, datetime]] = []
    refused: dict[str, str] = {}
    with opened_root(root) as root_fd:
        for org in listing(root_fd):
            if org.regular:
                continue  # a stray file beside the org folders holds no batch
            try:
                with opened_folder(root_fd, org.name, f"{org.name}/") as org_fd:
                    entries = listing(org_fd)
            except BatchRejected as exc:
                refused[f"{org.name}/*"] = str(exc)
                continue
            except FileNotFoundError:
                continue  # removed since the listing
            for e in entries:
                if not e.name.endswith(FLAG_SUFFIX):
                    continue
                batch_id = e.name[: -len(FLAG_SUFFIX)]
                if e.regular:
                    flags.append((org.name, batch_id, e.modified))
                else:
                    refused[f"{org.name}/{batch_id}"] = (f"{e.name} is a {e.kind}; a ready flag is an empty "
                                                         "regular file")
    return Survey(flags, refused)
