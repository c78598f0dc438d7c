"""Concurrency: two `medgov run` on one landing zone and lake, an ingest beside a publish,
and writers racing on one control table: everyone finishes, the tables equal a single run's."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from lakes import tables


def _start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "medgov.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_two_runs_together_equal_one_run(one_org, tmp_path):
    landing, expected = one_org.landing, one_org.tables
    lake = tmp_path / "lake"
    procs = [_start("run", "--landing", str(landing), "--lake", str(lake)) for _ in range(2)]
    outputs = [p.communicate(timeout=1200) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-1500:]
        assert "Traceback" not in out + err
    accepted = [int(out.split("ingest: ")[1].split(" batch")[0]) for out, _ in outputs]
    assert sorted(accepted)[0] == 0 and sorted(accepted)[1] > 0  # one run ingested, the other found it done
    assert tables(lake) == expected


@pytest.mark.slow
def test_ingest_of_one_institution_beside_publish_of_another(one_org, tmp_path):
    """What overlapping Airflow DAG runs do: stage functions in separate processes at once."""
    import shutil

    landing = one_org.landing
    first, second = tmp_path / "first", tmp_path / "second"
    orgs = sorted(p for p in landing.iterdir() if p.is_dir())
    shutil.copytree(landing, first)
    (second / "SECOND0001").mkdir(parents=True)
    for item in (landing / orgs[0].name).iterdir():  # the same extracts, delivered by another institution
        if item.is_dir():
            shutil.copytree(item, second / "SECOND0001" / item.name)
            text = (item / "manifest.json").read_text(encoding="utf-8").replace(orgs[0].name, "SECOND0001")
            (second / "SECOND0001" / item.name / "manifest.json").write_text(text, encoding="utf-8")
        else:
            shutil.copy(item, second / "SECOND0001" / item.name)
    lake = tmp_path / "lake"
    stage = [sys.executable, "-c", "import sys; from medgov.stages import run_stage; "
             "run_stage(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)"]
    for s in ("ingest", "normalize", "validate"):
        subprocess.run([*stage, s, str(lake), str(first)], check=True, capture_output=True, timeout=900)
    publish = subprocess.Popen([*stage, "publish", str(lake)], stderr=subprocess.PIPE, text=True)
    ingest = subprocess.Popen([*stage, "ingest", str(lake), str(second)], stderr=subprocess.PIPE, text=True)
    for p in (publish, ingest):
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-1500:]
    from medgov.lake import Lake
    from medgov import state

    stages = {k: b["stage"] for k, b in state.batches(Lake.at(lake)).items()}
    assert {s for k, s in stages.items() if k.startswith(orgs[0].name)} == {"published"}
    assert {s for k, s in stages.items() if k.startswith("SECOND0001")} == {"bronze"}
    # and the second institution's batches go on from there as if nothing had overlapped
    for s in ("normalize", "validate", "publish"):
        subprocess.run([*stage, s, str(lake)], check=True, capture_output=True, timeout=900)
    assert set(state.batches(Lake.at(lake))[k]["stage"] for k in stages) == {"published"}


def test_racing_writers_on_the_control_table_all_land(tmp_path):
    """Eight threads upsert their own batch rows at once: every row lands (commits retry)."""
    from medgov.lake import Lake
    from medgov import state

    lake = Lake.at(tmp_path)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(3):
                state.set_batches(lake, [{"batch_key": f"ORG{n:03d}/b{i}", "org_code": f"ORG{n:03d}",
                                          "batch_id": f"b{i}", "fingerprint": "f", "stage": "bronze",
                                          "updated_at": state.now(), "run_id": str(n)}])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(state.batches(lake)) == 24


def test_a_stage_marks_only_the_content_it_read(tmp_path):
    """A batch re-claimed by a newer delivery while a stage worked on the older one stays claimed."""
    from medgov.lake import Lake
    from medgov import state

    lake = Lake.at(tmp_path)
    row = {"batch_key": "ORG001/b1", "org_code": "ORG001", "batch_id": "b1", "fingerprint": "old",
           "stage": "bronze", "updated_at": state.now(), "run_id": "r1"}
    state.set_batches(lake, [row])
    taken = state.taken(lake, "bronze")  # normalize starts on the old content
    state.set_batches(lake, [{**row, "fingerprint": "new", "stage": "bronze", "run_id": "r2"}])  # re-delivered
    state.advance(lake, taken, "silver", "r1", only_from="bronze")
    assert state.batches(lake)["ORG001/b1"]["stage"] == "bronze"  # the new content still needs normalize
    assert state.batches(lake)["ORG001/b1"]["fingerprint"] == "new"
    state.advance(lake, state.taken(lake, "bronze"), "silver", "r3", only_from="bronze")
    assert state.batches(lake)["ORG001/b1"]["stage"] == "silver"


def test_a_lock_held_elsewhere_makes_the_stage_wait(tmp_path):
    import fcntl
    import time

    from medgov.lake import Lake
    from medgov.locks import stage_lock

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

