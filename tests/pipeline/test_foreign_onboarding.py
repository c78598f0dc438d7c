"""Onboarding a never-seen feed with no code or configuration change: the foreign feed's
three institutions, first batches in one run and second batches (bringing two patients late)
in the next. The sound part of every batch reaches gold, every held row says why, the late
patients release their rows, and no urine creatinine is used as serum."""

from __future__ import annotations

from collections import Counter

import pytest
from deltalake import DeltaTable

from medgov.domain.lab_terms import UNMAPPED
from medgov.quality import holds
from medgov.sample.foreign import SITES
from medgov.storage import control
from medgov.storage.lake import Lake

pytestmark = pytest.mark.system
SERUM_CREATININE = {"14682-9", "2160-0"}


def _table(lake, zone, name):
    return DeltaTable(str(lake / zone / name)).to_pyarrow_table().to_pylist()


def test_the_sound_part_of_every_first_batch_reaches_gold(foreign_run):
    first = {k: s for k, s in foreign_run.stages_after_first.items() if k.endswith("-01")}
    assert len(first) == 3 and set(first.values()) == {"published"}, first
    assert foreign_run.gold_after_first > 0
    assert not foreign_run.first["validate"].blocked


def test_every_held_row_says_which_patient_line_and_why(foreign_run):
    held = foreign_run.holds_after_first
    assert held and all(h["status"] == "held" for h in held)
    # (org, local patient id) -> line in its first batch's patient.csv
    where = {(org, pid): _patient_line(foreign_run, org, pid) for org, pid in foreign_run.feed.quarantined_patients}
    expected = {(org, f"held: patient quarantined (patient.csv line {n}: missing required value in birth_date)")
                for (org, _), n in where.items()}
    late_orgs = {org for org, _ in foreign_run.feed.late_patients}
    got = {(h["org_code"], h["reason"]) for h in held}
    assert got == expected | {(org, "held: patient not yet delivered") for org in late_orgs}


def test_held_rows_are_counted_and_left_out_of_publish(foreign_run, spark):
    """Nothing lost: per table and batch, silver rows = rows publish takes + rows held."""
    from medgov.quality.holds import releasable
    from medgov.storage.table_store import store_for

    lake = foreign_run.lake
    store = store_for(spark)
    read = lambda t: store.read(str(lake / "silver" / t))  # noqa: E731
    patients, encounters = read("patient"), read("encounter")
    open_holds = Counter((h["batch_key"], h["table"]) for h in holds.read(Lake.at(lake)) if h["status"] == "held")
    checked = 0
    for table in ("encounter", "condition", "observation"):
        rows = read(table)
        taken = Counter({r["batch_key"]: r["count"] for r in
                         releasable(rows, patients, encounters).groupBy("batch_key").count().collect()})
        for r in rows.groupBy("batch_key").count().collect():
            assert r["count"] == taken[r["batch_key"]] + open_holds[(r["batch_key"], table)], (table, r)
            checked += 1
    assert checked == 18 and sum(open_holds.values()) > 0


def _patient_line(foreign_run, org, pid):
    [batch] = foreign_run.landing.glob(f"{org}/*-01")
    lines = (batch / "patient.csv").read_bytes().decode("utf-8", "replace").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(pid + ","))


def test_a_corrected_patient_releases_its_rows_and_its_quarantine_shows_corrected(foreign_run):
    from medgov.quality.corrections import corrected_by

    org, pid = foreign_run.corrected
    line = _patient_line(foreign_run, org, pid)
    reason = f"held: patient quarantined (patient.csv line {line}: missing required value in birth_date)"
    waiting = [h for h in foreign_run.holds_after_first if h["org_code"] == org and h["reason"] == reason]
    assert waiting
    now = {(h["table"], h["record_id"]): h for h in holds.read(Lake.at(foreign_run.lake))}
    assert all(now[(h["table"], h["record_id"])]["status"] == "released"
               and now[(h["table"], h["record_id"])]["released_by"] == foreign_run.correcting_batch for h in waiting)
    lake = Lake.at(foreign_run.lake)
    q = [r for r in DeltaTable(lake.quarantine).to_pyarrow_table().to_pylist() if r["org_code"] == org
         and r["table"] == "patient"]
    by = dict(zip([(r["batch_key"], r["line"]) for r in q], corrected_by(lake, q)))
    fixed_key = next(k for k in by if k[1] == line and k[0].endswith("-01"))
    assert by.pop(fixed_key) == foreign_run.correcting_batch
    assert by and not any(by.values())  # the other quarantined patients still need the institution


def test_the_late_patients_release_their_rows(foreign_run):
    late = [h for h in foreign_run.holds_after_first if h["reason"] == "held: patient not yet delivered"]
    org, pid = foreign_run.corrected
    line = _patient_line(foreign_run, org, pid)
    fixed = [h for h in foreign_run.holds_after_first if h["org_code"] == org
             and h["reason"].startswith(f"held: patient quarantined (patient.csv line {line}:")]
    assert late and foreign_run.second["validate"].released == len(late) + len(fixed)
    now = {(h["table"], h["record_id"]): h for h in holds.read(Lake.at(foreign_run.lake))}
    for h in late:
        after = now[(h["table"], h["record_id"])]
        assert after["status"] == "released" and after["released_by"] == h["batch_key"].replace("-01", "-02")
    patients = {p["id"] for p in _table(foreign_run.lake, "silver", "patient")}
    released = {h["record_id"] for h in late if h["table"] == "observation"}
    assert released and all(o["patient_key"] in patients for o in _table(foreign_run.lake, "silver", "observation")
                            if o["id"] in released)
    stages = {k: b["stage"] for k, b in control.batches(Lake.at(foreign_run.lake)).items()}
    assert len(stages) == 7 and set(stages.values()) == {"published"}, stages


def test_no_urine_creatinine_is_used_as_serum_and_most_results_are_coded(foreign_run):
    urine = {(s.org.code, c) for s in SITES for c in s.urine_creatinine}
    obs = [o for o in _table(foreign_run.lake, "silver", "observation") if o["category"] == "laboratory"]
    assert any((o["org_code"], o["local_code"]) in urine for o in obs)
    assert not [o for o in obs if (o["org_code"], o["local_code"]) in urine and o["loinc"] in SERUM_CREATININE]
    methods = Counter(o["map_method"] for o in obs)
    share = 1 - methods[UNMAPPED] / len(obs)
    print(f"foreign feed in silver: {len(obs)} lab results, {share:.1%} coded automatically, "
          f"{methods[UNMAPPED]} left to the worklist; by method {dict(methods)}")
    assert share >= 0.85


def test_no_identifier_in_holds_or_check_examples(foreign_run):
    secrets = set(foreign_run.feed.generated.identifiers)
    secrets |= {pid for _, pid in foreign_run.feed.quarantined_patients + foreign_run.feed.late_patients}
    text = repr(_table(foreign_run.lake, "quality", "holds")) + repr(_table(foreign_run.lake, "quality",
                                                                             "check_examples"))
    assert secrets and not [s for s in secrets if s in text]
