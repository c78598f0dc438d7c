"""The landing zone is a trust boundary: nothing outside the root is opened, only regular
files are read, and every read is bounded by the site's limits."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from batches import lab_csv, lab_row, write_batch
from landing_watch import OpenWatch, fifo_has_no_reader, make_socket, outside
from medgov.errors import BatchDeferred, BatchRejected, MedgovError
from medgov.ingest import boundary, landing
from medgov.ingest.landing import BatchRef
from medgov.spec.site import LandingLimits, load_site

ORG = "H33030200001"
DEFAULTS = load_site().landing


@pytest.fixture
def zone(tmp_path):
    """A landing root with one good batch `b1`, a canary folder beside it, and a watch on that
    folder (cleared: what the test set up is not counted)."""
    root = tmp_path / "landing"
    folder = write_batch(root, ORG, "b1", {"lab_result.csv": ("lab_result", lab_csv([lab_row(1), lab_row(2)]), 2)})
    away, canary = outside(tmp_path)
    watch = OpenWatch(away)
    yield root, folder, canary, watch
    watch.close()


def read(root: Path, batch: str = "b1", limits: LandingLimits = DEFAULTS):
    return landing.read(BatchRef(root, ORG, batch), limits)


def limits(**change) -> LandingLimits:
    return DEFAULTS.model_copy(update=change)


def _declare(folder: Path, name: str, data: bytes) -> None:
    """Make the manifest's sha256 for `name` match `data`: only the boundary can stop it."""
    m = json.loads((folder / "manifest.json").read_text())
    next(f for f in m["files"] if f["name"] == name)["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m))


def test_a_good_batch_is_read_whole(zone):
    root, folder, _, watch = zone
    landed = read(root)
    assert set(landed.files) == {"manifest.json", "lab_result.csv"}
    assert landed.files["lab_result.csv"] == (folder / "lab_result.csv").read_bytes()
    assert watch.opened() == []


def test_a_data_file_linked_outside_is_refused_unopened_and_unechoed(zone):
    root, folder, canary, watch = zone
    (folder / "lab_result.csv").unlink()
    (folder / "lab_result.csv").symlink_to(canary)
    _declare(folder, "lab_result.csv", canary.read_bytes())
    watch.opened()
    with pytest.raises(BatchRejected) as exc:
        read(root)
    assert str(exc.value) == "lab_result.csv is a symbolic link; the landing zone accepts regular files only"
    assert watch.opened() == []


def test_a_manifest_linked_outside_is_refused(zone):
    root, folder, canary, watch = zone
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").symlink_to(canary)
    with pytest.raises(BatchRejected, match="^manifest.json is a symbolic link; the landing zone accepts regular"):
        read(root)
    assert watch.opened() == []


def test_a_batch_folder_linked_outside_is_refused_unlisted(zone, tmp_path):
    root, folder, canary, watch = zone
    away = canary.parent
    elsewhere = away / "b2"  # a complete, valid batch, but outside the landing root
    write_batch(away, ".", "b2", {"lab_result.csv": ("lab_result", lab_csv([lab_row(1)]), 1)}, ready=False)
    (root / ORG / "b2").symlink_to(elsewhere)
    (root / ORG / "b2.ready").touch()
    inner = OpenWatch(elsewhere)
    watch.opened()
    assert [r.key for r in landing.discover(root)] == [f"{ORG}/b1", f"{ORG}/b2"]
    with pytest.raises(BatchRejected, match=r"^b2/ is a symbolic link; the landing zone accepts real folders only$"):
        read(root, "b2")
    assert watch.opened() == [] and inner.opened() == []
    inner.close()


def test_an_org_folder_linked_outside_is_refused_and_not_listed(zone):
    root, _, canary, watch = zone
    away = canary.parent
    (away / "x.ready").touch()
    (root / "H33030200002").symlink_to(away)
    watch.opened()
    seen = landing.look(root)
    assert [r.key for r in seen.batches] == [f"{ORG}/b1"]
    assert seen.refused == {"H33030200002/*": "H33030200002/ is a symbolic link; the landing zone accepts real "
                                              "folders only"}
    assert watch.opened() == []  # not even listed


def test_a_fifo_is_refused_at_once_and_never_opened(zone):
    root, folder, _, _ = zone
    (folder / "lab_result.csv").unlink()
    os.mkfifo(folder / "lab_result.csv")
    started = time.monotonic()
    with pytest.raises(BatchRejected, match=r"^lab_result.csv is a FIFO \(named pipe\); the landing zone accepts"):
        read(root)
    assert time.monotonic() - started < 5
    assert fifo_has_no_reader(folder / "lab_result.csv")


def test_a_socket_a_device_and_a_folder_where_a_file_is_due_are_refused(zone):
    root, folder, _, _ = zone
    (folder / "lab_result.csv").unlink()
    sock = make_socket(folder / "lab_result.csv")
    with pytest.raises(BatchRejected, match="^lab_result.csv is a socket;"):
        read(root)
    sock.close()
    (folder / "lab_result.csv").unlink()
    (folder / "lab_result.csv").mkdir()
    with pytest.raises(BatchRejected, match="^lab_result.csv is a folder; the landing zone accepts regular files"):
        read(root)
    (folder / "lab_result.csv").rmdir()
    try:
        os.mknod(folder / "lab_result.csv", 0o600 | 0o020000, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        pytest.skip("creating a device node needs root (the socket and folder cases ran)")
    with pytest.raises(BatchRejected, match="^lab_result.csv is a character device;"):
        read(root)


def test_a_ready_flag_that_is_no_regular_file_is_refused(zone):
    root, _, canary, _ = zone
    write_batch(root, ORG, "b3", {"lab_result.csv": ("lab_result", lab_csv([lab_row(1)]), 1)}, ready=False)
    (root / ORG / "b3.ready").symlink_to(canary)
    seen = landing.look(root)
    assert [r.key for r in seen.batches] == [f"{ORG}/b1"]
    assert seen.refused[f"{ORG}/b3"] == "b3.ready is a symbolic link; a ready flag is an empty regular file"


def test_hard_links_are_refused_unless_the_site_accepts_them(zone):
    root, folder, _, _ = zone
    os.link(folder / "lab_result.csv", root / "elsewhere.csv")
    with pytest.raises(BatchRejected, match=r"^lab_result.csv has 2 names \(a hard link\); .*\(hard_links: reject\)$"):
        read(root)
    assert "lab_result.csv" in read(root, limits=limits(hard_links="accept")).files


def test_a_link_swapped_in_after_the_check_is_caught(zone):
    root, folder, canary, watch = zone
    with boundary.opened_root(root) as r, boundary.opened_folder(r, ORG, ORG) as o, \
            boundary.opened_folder(o, "b1", "b1") as fd:
        entries = {e.name: e for e in boundary.listing(fd)}
        checked = os.open(folder / "lab_result.csv", os.O_RDONLY)  # keeps its inode from being reused
        (folder / "lab_result.csv").unlink()
        (folder / "lab_result.csv").symlink_to(canary)  # the race an attacker would run
        watch.opened()
        with pytest.raises(BatchRejected, match="^lab_result.csv was replaced while it was opened"):
            boundary.read_regular(fd, entries["lab_result.csv"], 1 << 20, time.monotonic() + 5)
        (folder / "lab_result.csv").unlink()
        (folder / "lab_result.csv").write_bytes(b"another file with another inode")
        with pytest.raises(BatchRejected, match="^lab_result.csv was replaced while it was opened"):
            boundary.read_regular(fd, entries["lab_result.csv"], 1 << 20, time.monotonic() + 5)
        os.close(checked)
    assert watch.opened() == []


@pytest.mark.parametrize("change,prepare,reason", [
    ({"manifest_bytes": 100}, None, r"^manifest.json is \d+B?; the site allows at most 100B \(manifest_bytes\)$"),
    ({"files_per_batch": 1}, lambda f: (f / "visit.csv").write_text("x"),
     r"^b1/ holds more than 2 entries; the site allows at most 1 files per batch besides manifest.json "
     r"\(files_per_batch\)$"),
    ({"file_bytes": 64}, None, r"^lab_result.csv is \d+B; the site allows at most 64B per file \(file_bytes\)$"),
    ({"batch_bytes": 300}, None, r"^the batch's files hold \d+B; the site allows at most 300B per batch "
                                 r"\(batch_bytes\)$"),
], ids=["manifest", "files", "file", "batch"])
def test_limits_are_checked_before_reading(zone, change, prepare, reason):
    root, folder, _, _ = zone
    if prepare:
        prepare(folder)
    watch = OpenWatch(folder)
    with pytest.raises(BatchRejected, match=reason):
        read(root, limits=limits(**change))
    assert [p for p in watch.opened() if p != str(folder)] == []  # listed, nothing opened
    watch.close()


def test_an_oversized_file_costs_no_read(zone):
    root, folder, _, _ = zone
    big = folder / "lab_result.csv"
    os.truncate(big, 3 << 30)  # 3 GiB, sparse: over the 2 GiB default without using the disk
    watch = OpenWatch(folder)
    with pytest.raises(BatchRejected, match=r"^lab_result.csv is 3.0GiB; the site allows at most 2.0GiB per file"):
        read(root)
    assert [p for p in watch.opened() if p.endswith("lab_result.csv")] == []
    watch.close()


def test_stuck_storage_costs_the_batch_its_budget_and_no_more(zone, monkeypatch):
    root, _, _, _ = zone
    release = threading.Event()
    real_read = os.read

    def stuck(fd, n):  # a hung network mount: read() does not return
        release.wait(30)
        return real_read(fd, n)

    monkeypatch.setattr(boundary.os, "read", stuck)
    started = time.monotonic()
    with pytest.raises(BatchDeferred, match=r"budget of 1 s \(batch_seconds\); it is tried again at the next trigger"):
        read(root, limits=limits(batch_seconds=1))
    assert time.monotonic() - started < 5
    release.set()


def test_slow_storage_is_deferred_between_chunks(zone, monkeypatch):
    root, folder, _, _ = zone
    (folder / "lab_result.csv").write_bytes(b"x" * (3 << 20))  # three chunks
    real_read = os.read

    def slow(fd, n):
        time.sleep(0.6)
        return real_read(fd, n)

    monkeypatch.setattr(boundary.os, "read", slow)
    with pytest.raises(BatchDeferred, match="still not done when the batch's time budget ran out"):
        read(root, limits=limits(batch_seconds=1.5))


def test_site_limits_come_from_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "landing.yaml").write_text("file_bytes: 5 MiB\nbatch_seconds: 30\nhard_links: accept\n")
    site = load_site(tmp_path)
    assert site.landing.file_bytes == 5 << 20 and site.landing.batch_seconds == 30
    assert site.landing.manifest_bytes == DEFAULTS.manifest_bytes  # the rest stay the defaults
    monkeypatch.setenv("MEDGOV_CONFIG", str(tmp_path))
    assert load_site().landing.hard_links == "accept"


@pytest.mark.parametrize("text,reason", [
    ("file_byts: 5 MiB\n", "file_byts: Extra inputs are not permitted"),
    ("file_bytes: lots\n", "file_bytes: could not parse value and unit from byte string"),
    ("batch_seconds: -1\n", "batch_seconds: Input should be greater than 0"),
    ("hard_links: maybe\n", "hard_links: Input should be 'reject' or 'accept'"),
    ("- a list\n", "expected a mapping of setting: value"),
])
def test_a_bad_site_file_is_one_clear_line(tmp_path, text, reason):
    (tmp_path / "landing.yaml").write_text(text)
    with pytest.raises(MedgovError) as exc:
        load_site(tmp_path)
    assert reason in str(exc.value) and "landing.yaml" in str(exc.value) and "\n" not in str(exc.value)
