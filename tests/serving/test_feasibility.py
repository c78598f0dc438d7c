"""Feasibility counts over a published dataset (a small ckd_registry gold table written here
with hand-chosen persons): criteria of every kind, strata, disclosure control, refusals with
their HTTP status and one-line reason, the budget, the differencing guard, and the audit of
every request, answered or refused, with no person identifier in it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medgov.serving import audit
from medgov.serving.feasibility import Caller, Refused, answer
from medgov.spec.site import ServingPolicy, load_site

EXACT = ServingPolicy(min_cell=1, rounding=1, suppress_zero=False, max_cells=1000, queries_per_day=100,
                      differencing_window_days=30, differencing_lookback=50)
CALLER = Caller("research-app", "researcher")


def _q(**kw) -> dict:
    return {"dataset": "ckd_registry", **kw}


def test_criteria_of_every_kind_count_the_persons_meeting_them(lake):
    def total(*criteria):
        return answer(lake, _q(criteria=list(criteria)), CALLER, EXACT)["total"]
    assert total() == 40
    assert total({"column": "sex", "in": ["female"]}) == 20
    assert total({"column": "age_years", "between": [40, 49]}) == 10  # both ends included
    assert total({"column": "egfr", "op": "<", "value": 30}) == 10  # 59 - i < 30: i = 30..39
    assert total({"column": "source_institutions", "any": ["B"]}) == 14  # multiples of 3 below 40
    assert total({"column": "first_qualifying_date", "between": ["2024-01-01", "2024-12-31"]}) == 20
    assert total({"column": "g_stage", "in": ["G4"]}, {"column": "sex", "in": ["male"]}) == 7  # 26..38 even


def test_strata_give_every_cell_of_the_cross_product_with_margins(lake):
    r = answer(lake, _q(strata=[{"column": "sex"}, {"column": "age_years", "bands": [40, 60]}]), CALLER, EXACT)
    cells = {(c["sex"], c["age_years"]): c["count"] for c in r["cells"]}
    assert cells == {("female", "<40"): 5, ("female", "[40,60)"): 10, ("female", ">=60"): 5, ("female", "unknown"): 0,
                     ("male", "<40"): 5, ("male", "[40,60)"): 10, ("male", ">=60"): 5, ("male", "unknown"): 0}
    assert {m["value"]: m["count"] for m in r["margins"]["sex"]} == {"female": 20, "male": 20}
    assert r["total"] == 40 and r["suppressed"] == 0


def test_the_default_policy_suppresses_and_rounds(lake):
    policy = load_site(None).serving_policy()
    assert (policy.min_cell, policy.rounding) == (10, 5)
    r = answer(lake, _q(criteria=[{"column": "sex", "in": ["male"]}], strata=[{"column": "g_stage"}]), CALLER, policy)
    cells = {c["g_stage"]: c["count"] for c in r["cells"]}
    # male G3a 13 (0..24 even), male G4 7 (26..38 even): 7 is suppressed, so 13 is too
    assert cells == {"G3a": None, "G4": None} and r["total"] == 20
    assert r["disclosure"]["suppressed_below_min_cell"] >= 1 and r["disclosure"]["suppressed_to_protect_others"] >= 1


@pytest.mark.parametrize("doc, status, needle", [
    (_q(colour="blue"), 400, "colour: Extra inputs are not permitted"),
    (_q(strata=[{"column": "sex"}, {"column": "g_stage"}, {"column": "age_years", "bands": [50]},
                {"column": "egfr", "bands": [30]}]), 400, "at most 3 strata"),
    (_q(strata=[{"column": "source_institutions"}]), 400, "a list column is a criterion"),
    (_q(criteria=[{"column": "patient_key", "in": ["k001"]}]), 400, "identifies a person"),
    (_q(criteria=[{"column": "sex", "in": ["female"], "op": "<", "value": 3}]), 400, "exactly one of"),
    (_q(criteria=[{"column": "sex; DROP TABLE x", "in": ["a"]}]), 400, "has no column"),
    (_q(strata=[{"column": "age_years"}]), 400, "needs bands"),
    ({"dataset": "../../etc/passwd"}, 403, "not available"),
    ({"dataset": "diabetes_registry"}, 404, "not published"),
    ("just text", 400, "a feasibility query is a mapping"),
])
def test_bad_queries_are_refused_with_a_status_and_one_line(lake, doc, status, needle):
    with pytest.raises(Refused) as err:
        answer(lake, doc, CALLER, EXACT)
    assert err.value.status == status and needle in str(err.value) and "\n" not in str(err.value)
    assert audit.entries(lake)[-1]["status"] == status  # refusals are audited too


def test_a_query_over_too_many_cells_is_refused(lake):
    small = EXACT.model_copy(update={"max_cells": 100})
    doc = _q(strata=[{"column": "age_years", "bands": list(range(0, 100, 2))}, {"column": "sex"}])
    with pytest.raises(Refused) as err:
        answer(lake, doc, CALLER, small)
    assert err.value.status == 400 and "104 cells" in str(err.value)


def test_a_role_sees_only_its_datasets(lake):
    with pytest.raises(Refused) as err:
        answer(lake, _q(), Caller("app", "diabetes-only", frozenset({"diabetes_registry"})), EXACT)
    assert err.value.status == 403


def test_the_budget_counts_answered_queries_per_client(lake):
    policy = EXACT.model_copy(update={"queries_per_day": 2})
    answer(lake, _q(), CALLER, policy)
    answer(lake, _q(criteria=[{"column": "sex", "in": ["female"]}]), CALLER, policy)
    with pytest.raises(Refused) as err:
        answer(lake, _q(), CALLER, policy)
    assert err.value.status == 429
    answer(lake, _q(), Caller("another-app", "researcher"), policy)  # another client has its own budget


def test_the_differencing_guard_refuses_all_but_one(lake):
    policy = EXACT.model_copy(update={"min_cell": 10})
    answer(lake, _q(criteria=[{"column": "age_years", "between": [30, 69]}]), CALLER, policy)
    # the same cohort less the one person aged 69: the two counts would single that person out
    with pytest.raises(Refused) as err:
        answer(lake, _q(criteria=[{"column": "age_years", "between": [30, 68]}]), CALLER, policy)
    assert err.value.status == 403 and "differencing guard" in str(err.value)
    # a cohort 10 persons apart is fine, and so is the same pair asked by another client
    answer(lake, _q(criteria=[{"column": "age_years", "between": [30, 59]}]), CALLER, policy)
    answer(lake, _q(criteria=[{"column": "age_years", "between": [30, 68]}]), Caller("other", "researcher"), policy)


def test_the_audit_holds_every_request_and_no_person_identifier(lake, persons):
    answer(lake, _q(strata=[{"column": "sex"}]), CALLER, EXACT)
    with pytest.raises(Refused):
        answer(lake, _q(criteria=[{"column": "patient_key", "in": ["k001"]}]), CALLER, EXACT)
    rows = audit.entries(lake)
    assert [r["status"] for r in rows] == [200, 400]
    assert rows[0]["client"] == "research-app" and rows[0]["datasets"] == ["ckd_registry"]
    assert rows[0]["cells_released"] == 2 and len(rows[0]["query_hash"]) == 16
    # the refused query named a person's key: the refusal is recorded, the key is not
    assert rows[1]["query"] == "" and "identifies a person" in rows[1]["reason"]
    text = json.dumps(rows, default=str)
    assert not any(p["patient_key"] in text for p in persons)


def test_values_no_person_has_are_left_out_of_the_recorded_query(lake):
    """A caller typing an identity number into a criterion gets its (empty) count; the audit
    keeps the cohort's definition without the string, and refusals echo nothing typed."""
    typed_in = "11010519491231002X"
    r = answer(lake, _q(criteria=[{"column": "sex", "in": ["female", typed_in]},
                                  {"column": "source_institutions", "any": [typed_in]}]), CALLER, EXACT)
    assert r["total"] == 0
    with pytest.raises(Refused) as err:
        answer(lake, _q(criteria=[{"column": typed_in, "in": ["a"]}]), CALLER, EXACT)
    assert typed_in in str(err.value)  # the caller is told what was wrong
    rows = audit.entries(lake)
    assert typed_in not in json.dumps(rows, default=str)
    assert json.loads(rows[0]["query"])["criteria"][0]["in"] == ["female"]


def test_the_cli_prints_counts_and_refuses_in_one_line(lake, tmp_path):
    medgov = str(Path(sys.executable).with_name("medgov"))
    q = tmp_path / "q.yaml"
    q.write_text("dataset: ckd_registry\nstrata:\n  - {column: g_stage}\n")
    out = subprocess.run([medgov, "feasibility", str(q), "--lake", lake.root, "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert {c["g_stage"]: c["count"] for c in r["cells"]} == {"G3a": 25, "G4": 15} and r["total"] == 40
    q.write_text("dataset: ckd_registry\nstrata:\n  - {column: patient_key}\n")
    out = subprocess.run([medgov, "feasibility", str(q), "--lake", lake.root], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "identifies a person" in out.stderr
    log = subprocess.run([medgov, "audit", "--lake", lake.root, "--format", "json"], capture_output=True, text=True,
                         timeout=120)
    assert log.returncode == 0
    assert [(e["endpoint"], e["status"]) for e in json.loads(log.stdout)] == [("feasibility", 200), ("feasibility", 400)]
