"""Stage locks: a second process of the same stage waits; other stages do not."""

from __future__ import annotations

import fcntl
import threading
import time

from medgov.storage.lake import Lake
from medgov.storage.locks import stage_lock


def test_a_lock_held_elsewhere_makes_the_stage_wait(tmp_path):
    lake = Lake.at(tmp_path)
    (tmp_path / "_locks").mkdir()
    holder = open(tmp_path / "_locks" / "publish.lock", "a+")
    fcntl.flock(holder, fcntl.LOCK_EX)
    messages: list[str] = []
    acquired = threading.Event()

    def waiter() -> None:
        with stage_lock(lake, "publish", messages.append):
            acquired.set()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(1.2)
    assert not acquired.is_set() and messages == ["publish: waiting for another run of this stage to finish"]
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    t.join(timeout=10)
    assert acquired.is_set()
    with stage_lock(lake, "ingest"):  # another stage is free meanwhile
        pass
