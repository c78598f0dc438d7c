"""The control tables: concurrent writers all land, and a stage marks only the content it read."""

from __future__ import annotations

import threading

import pytest
from deltalake import DeltaTable

from medgov.spec.lifecycle import BatchStage
from medgov.storage import control
from medgov.storage.lake import Lake


@pytest.fixture(params=["local", "object store"])
def any_lake(request, tmp_path):
    """A new lake on local disk, and one on the suite's S3-compatible server."""
    return Lake.at(tmp_path) if request.param == "local" else request.getfixturevalue("object_store").lake()


def test_racing_writers_on_the_control_table_all_land(any_lake):
    """Eight threads upsert their own batch rows at once: every row lands, one commit each (on
    an object store, the store refuses all but one commit of a version and the others retry)."""
    lake = any_lake
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(3):
                control.set_batches(lake, [{"batch_key": f"ORG{n:03d}/b{i}", "org_code": f"ORG{n:03d}",
                                            "batch_id": f"b{i}", "fingerprint": "f", "stage": "bronze",
                                            "updated_at": control.now(), "run_id": str(n)}])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(control.batches(lake)) == 24
    assert DeltaTable(lake.batches).version() == 23  # none lost or doubled


def test_a_stage_marks_only_the_content_it_read(tmp_path):
    """A batch re-claimed by a newer delivery while a stage worked on the older one stays claimed."""
    lake = Lake.at(tmp_path)
    row = {"batch_key": "ORG001/b1", "org_code": "ORG001", "batch_id": "b1", "fingerprint": "old",
           "stage": "bronze", "updated_at": control.now(), "run_id": "r1"}
    control.set_batches(lake, [row])
    taken = control.taken(lake, BatchStage.BRONZE)  # normalize starts on the old content
    control.set_batches(lake, [{**row, "fingerprint": "new", "stage": "bronze", "run_id": "r2"}])  # re-delivered
    control.advance(lake, taken, BatchStage.SILVER, "r1", only_from=BatchStage.BRONZE)
    assert control.batches(lake)["ORG001/b1"]["stage"] == "bronze"  # the new content still needs normalize
    assert control.batches(lake)["ORG001/b1"]["fingerprint"] == "new"
    control.advance(lake, control.taken(lake, BatchStage.BRONZE), BatchStage.SILVER, "r3", only_from=BatchStage.BRONZE)
    assert control.batches(lake)["ORG001/b1"]["stage"] == "silver"


def test_a_commit_that_keeps_losing_races_is_retried_for_a_while_then_reported(monkeypatch):
    """A lost race is retried beyond the attempts while the patience lasts (many writers, slow
    rounds), and raised once both are spent; any other error at once."""
    from deltalake.exceptions import CommitFailedError

    from medgov.storage import commits

    clock = [0.0]
    monkeypatch.setattr(commits.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    monkeypatch.setattr(commits.time, "monotonic", lambda: clock[0])
    calls = []

    def losing(until: int):
        def action():
            calls.append(1)
            if len(calls) < until:
                raise CommitFailedError("a concurrent transaction added new data")
            return "landed"
        return action

    assert commits.retry_commit(losing(20), attempts=3, patience=60.0) == "landed"  # 19 lost rounds
    assert len(calls) == 20
    calls.clear()
    clock[0] = 0.0
    with pytest.raises(CommitFailedError):
        commits.retry_commit(losing(10_000), attempts=3, patience=10.0)
    assert 3 <= len(calls) < 100 and clock[0] >= 10.0  # gave up once 3 tries and 10 s were spent
    calls.clear()

    def broken():
        calls.append(1)
        raise ValueError("not a race")

    with pytest.raises(ValueError):
        commits.retry_commit(broken)
    assert len(calls) == 1
