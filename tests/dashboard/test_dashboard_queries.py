"""The numbers behind each dashboard view, from hand-made lake snapshots (no Spark)."""

from datetime import datetime, timedelta, timezone

import pytest

from medgov.dashboard import queries
from medgov.dashboard.i18n import labels, negotiate
from medgov.dashboard.snapshot import Dataset, Snapshot
from medgov.storage.lake import Lake

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def result(batch, layer="silver", suite="silver.observation", expectation="expect_x", column="value",
           success=True, severity="warning", category="plausibility", unexpected=0, run="r1", table="observation"):
    org = batch.split("/", 1)[0]
    return {"run_id": run, "batch_key": batch, "org_code": org, "batch_id": batch.split("/", 1)[1], "layer": layer,
            "table": table, "suite": suite, "expectation": expectation, "column": column, "description": "d",
            "category": category, "severity": severity, "threshold": 0.99, "element_count": 100,
            "unexpected_count": unexpected, "unexpected_percent": float(unexpected), "observed_value": None,
            "success": success, "validated_at": T0}


def snap(results=(), **kw) -> Snapshot:
    return Snapshot(lake=Lake.at("/lake"), results=list(results), **kw)


def test_overview_share_status_and_trend_per_institution_and_layer():
    rows = [result("A/b1"), result("A/b1", column="unit"),
            result("A/b2"), result("A/b2", column="unit", success=False, unexpected=3),
            result("A/b3", success=False, severity="blocking"), result("A/b3", column="unit"),
            result("B/b1", layer="bronze", suite="bronze.lab_result", table="lab_result")]
    o = queries.overview(snap(rows), last_n=2)
    cells = {(c["org_code"], c["layer"]): c for c in o["cells"]}
    a = cells[("A", "silver")]
    assert (a["batch_key"], a["checks"], a["passed"], a["share"], a["status"]) == ("A/b3", 2, 1, 0.5, "fail")
    assert [(p["batch_key"], p["share"], p["status"]) for p in a["trend"]] == [("A/b2", 0.5, "warn"),
                                                                               ("A/b3", 0.5, "fail")]
    assert cells[("B", "bronze")]["status"] == "pass" and ("B", "silver") not in cells
    # b3 fails `value` (passed in b2): new; `unit` failed in b2 and passes now: resolved
    assert [(r["change"], r["org_code"], r["column"], r["severity"]) for r in o["changes"]] == [
        ("new", "A", "value", "blocking"), ("resolved", "A", "unit", "warning")]
    assert o["kpi"]["checks"] == 7 and o["kpi"]["passed"] == 5


def test_changes_between_an_institutions_two_latest_batches():
    rows = [result("A/b1", column="c1", success=False, unexpected=4), result("A/b1", column="c2", success=False),
            result("A/b1", column="c3", success=False), result("A/b1", column="c5"),
            result("A/b2", column="c1", success=False, unexpected=6), result("A/b2", column="c2"),
            result("A/b2", column="c4", success=False, unexpected=1), result("A/b2", column="c5"),
            result("B/b1", column="c1", success=False)]  # one batch: nothing to compare with
    changes = queries.overview(snap(rows))["changes"]
    assert [(r["change"], r["column"], r["unexpected_count"], r["unexpected_before"]) for r in changes] == [
        ("new", "c4", 1, None),  # not run in b1
        ("persisting", "c1", 6, 4),
        ("resolved", "c2", 0, 0),
    ]  # c3 failed in b1 but was not run in b2: not called resolved; c5 passed in both
    assert all(r["previous"] == "A/b1" and r["batch_key"] == "A/b2" for r in changes)


def test_batches_are_ordered_by_batch_id_within_an_institution():
    rows = [result("A/20240110"), result("A/20240102"), result("A/20240301")]
    assert queries.batch_order(snap(rows)) == {"A": ["A/20240102", "A/20240110", "A/20240301"]}


def test_checks_failing_since_is_the_start_of_the_current_streak():
    rows = [result("A/b1", success=False, unexpected=1), result("A/b2"), result("A/b3", success=False, unexpected=2),
            result("A/b4", success=False, unexpected=5), result("B/b1", success=False, unexpected=1), result("B/b2")]
    c = next(c for c in queries.checks(snap(rows))["checks"] if c["column"] == "value")
    assert c["failing_since"] == {"A": "A/b3"}  # B recovered; A failed at b1, passed b2, fails since b3
    assert (c["failing_batches"], c["batches"], c["unexpected"], c["status"]) == (4, 6, 9, "warn")
    assert c["check_id"] == "silver.observation--expect_x--value"


def test_category_summary_counts_results_by_kahn_category_and_context():
    rows = [result("A/b1", category="conformance"), result("A/b1", category="conformance", column="u", success=False),
            result("A/b1", category="completeness", column="v")]
    summary = {(s["category"], s["context"]): s for s in queries.checks(snap(rows))["summary"]}
    assert summary[("conformance", "verification")] | {} == {"category": "conformance", "context": "verification",
                                                             "pass": 1, "fail": 1, "total": 2, "share": 0.5}
    assert summary[("completeness", "verification")]["share"] == 1.0


def test_check_context_comes_from_the_catalogue():
    from medgov.spec.checks import catalogue

    c = next(c for c in catalogue() if c.context == "validation")
    rows = [result("A/b1", suite=c.suite, expectation=c.expectation, column=c.column)]
    assert queries.checks(snap(rows))["checks"][0]["context"] == "validation"


def test_a_medgov_row_check_takes_its_declared_context_whatever_column_it_names(monkeypatch):
    """Row checks report one result per reason kind, each naming its column: the context is
    the declaration's, not the default."""
    from dataclasses import replace

    from medgov.spec import checks

    declared = replace(checks.medgov_check("ingest.lab_result", "rows_conform_to_contract"), context="validation")
    monkeypatch.setattr(queries, "catalogue", lambda: (declared,))
    rows = [result("A/b1", suite="ingest.lab_result", layer="ingest", expectation="rows_conform_to_contract",
                   column="reported_time", success=False)]
    assert queries.checks(snap(rows))["checks"][0]["context"] == "validation"


def test_check_detail_links_data_docs_and_shows_masked_examples():
    rows = [result("A/b1", suite="silver.patient", table="patient", expectation="expect_column_values_to_not_be_null",
                   column="birth_date", success=False, unexpected=2, run="r9"),
            result("A/b2", suite="silver.patient", table="patient", expectation="expect_column_values_to_not_be_null",
                   column="birth_date", run="r9")]
    example = {"batch_key": "A/b1", "suite": "silver.patient", "expectation": "expect_column_values_to_not_be_null",
               "column": "birth_date", "file": "patient.csv", "line": 7, "values": '{"birth_date": "1980-05-06"}'}
    s = snap(rows, examples=[example], data_docs={("silver.patient", "A/b1", "r9"): "validations/x.html"})
    d = queries.check_detail(s, "silver.patient--expect_column_values_to_not_be_null--birth_date")
    assert [r["data_docs"] for r in d["per_batch"]] == ["validations/x.html", None]
    assert d["examples"] == [{"batch_key": "A/b1", "file": "patient.csv", "line": 7,
                              "values": {"birth_date": "1980-**-**"}}]
    assert queries.check_detail(s, "no-such-check") is None


def test_quarantine_counts_reason_kinds_never_details():
    q = [{"layer": "bronze", "org_code": "A", "batch_key": "A/b1", "table": "lab_result",
          "reasons": ["unparseable date in reported_time: '2024-02-30 10:00'", "missing required value in result"]},
         {"layer": "bronze", "org_code": "A", "batch_key": "A/b2", "table": "lab_result",
          "reasons": ["missing required value in result"]}]
    d = [{"batch_key": "A/b3", "org_code": "A", "status": "rejected", "reason": "sha256 mismatch", "notes": None,
          "received_at": T0},
         {"batch_key": "A/b3", "org_code": "A", "status": "accepted", "reason": None, "notes": ["no encoding"],
          "received_at": T0 + timedelta(hours=1)},
         {"batch_key": "A/b4", "org_code": "A", "status": "rejected", "reason": "manifest missing", "notes": None,
          "received_at": T0}]
    out = queries.quarantine(snap(quarantine=q, deliveries=d))
    assert {(r["table"], r["reason"], r["rows"]) for r in out["by_reason"]} == {
        ("lab_result", "missing required value in result", 2), ("lab_result", "unparseable date in reported_time", 1)}
    assert "2024-02-30" not in repr(out)
    assert [(r["batch_key"], r["fixed"]) for r in out["rejected"]] == [("A/b3", True), ("A/b4", False)]
    assert out["notes"] == [{"batch_key": "A/b3", "note": "no encoding"}]
    assert out["rows"] == 2


def test_quarantine_separates_what_a_later_delivery_corrected_and_counts_holds():
    q = [{"layer": "bronze", "org_code": "A", "batch_key": "A/b1", "table": "patient",
          "reasons": ["missing required value in birth_date"], "corrected_by": "A/b2"},
         {"layer": "bronze", "org_code": "A", "batch_key": "A/b1", "table": "patient",
          "reasons": ["missing required value in birth_date"], "corrected_by": None}]
    h = [{"org_code": "A", "batch_key": "A/b1", "table": "observation", "status": "held", "released_by": None,
          "reason": "held: patient quarantined (patient.csv line 3: missing required value in birth_date)"},
         {"org_code": "A", "batch_key": "A/b1", "table": "observation", "status": "released", "released_by": "A/b2",
          "reason": "held: patient not yet delivered"}]
    out = queries.quarantine(snap(quarantine=q, holds=h))
    [r] = out["by_reason"]
    assert (r["rows"], r["open"], r["corrected"]) == (2, 1, 1) and out["open"] == 1 and out["held_now"] == 1
    assert {(x["reason"], x["status"], x["rows"]) for x in out["held"]} == {
        ("held: patient quarantined", "held", 1), ("held: patient not yet delivered", "released", 1)}


def test_terminology_view_shares_coded_per_institution_and_recent_decisions(tmp_path, monkeypatch):
    """The worklist itself is `medgov terms`' (tests/pipeline/test_terms.py); here it is empty."""
    from medgov.spec.site import load_site

    (tmp_path / "concept_maps").mkdir()
    (tmp_path / "concept_maps" / "lab_items.yaml").write_text(
        'entries:\n  - {"org": "A", "local": "X1", "loinc": "14682-9", "accepted_at": "2026-01-01T00:00:00Z"}\n'
        '  - {"org": "A", "local": "X2", "loinc": "2345-7", "accepted_at": "2026-02-01T00:00:00Z", "by": "王"}\n',
        encoding="utf-8")
    coding = [{"org_code": "A", "map_method": "name+specimen+unit", "rows": 90},
              {"org_code": "A", "map_method": "unmapped", "rows": 10}, {"org_code": "B", "map_method": "site-map", "rows": 5}]
    monkeypatch.setattr("medgov.terms.worklist", lambda lake, site: [])
    out = queries.terminology(Snapshot(lake=Lake.at(tmp_path / "lake"), site=load_site(tmp_path), lab_coding=coding))
    assert [(c["org_code"], c["rows"], c["coded"], c["share"]) for c in out["coverage"]] == [
        ("A", 100, 90, 0.9), ("B", 5, 5, 1.0)]
    assert [d["local"] for d in out["decisions"]] == ["X2", "X1"] and out["decisions"][0]["by"] == "王"
    assert out["worklist"] == [] and out["worklist_total"] == 0


def test_reasons_descriptions_and_institutions_in_the_stewards_language(tmp_path):
    from medgov.dashboard.i18n import description_text, reason_text
    from medgov.dashboard.site import _org_label
    from medgov.spec.checks import catalogue
    from medgov.spec.site import load_site

    held = "held: patient quarantined (patient.csv line 5: missing required value in birth_date)"
    assert reason_text(held, "zh") == "暂缓发布：患者记录被隔离（patient.csv 第 5 行：必填字段 birth_date 缺失）"
    assert reason_text("held: visit not yet delivered", "zh") == "暂缓发布：就诊记录尚未交付"
    assert reason_text(held, "en") == held
    assert reason_text("a reason no pattern knows", "zh") == "a reason no pattern knows"
    assert all(c.description_zh for c in catalogue()), "every check has a Chinese description"
    c = catalogue()[0]
    assert description_text(c.description, "zh") == c.description_zh and description_text(c.description, "en") == c.description
    (tmp_path / "institutions.yaml").write_text("A1:\n  name_zh: 甲医院\n  name_en: Hospital A\n", encoding="utf-8")
    s = Snapshot(lake=Lake.at("/lake"), site=load_site(tmp_path))
    assert str(_org_label(s, "zh", "A1")) == '<span class="org-name">甲医院</span> <code>A1</code>'
    assert str(_org_label(s, "en", "A1")) == '<span class="org-name">Hospital A</span> <code>A1</code>'
    assert str(_org_label(s, "zh", "<B>")) == "<code>&lt;B&gt;</code>"


def test_freshness_lists_included_and_waiting_batches():
    b = [{"batch_key": "A/b1", "org_code": "A", "stage": "published"},
         {"batch_key": "A/b2", "org_code": "A", "stage": "blocked"}]
    ds = [Dataset("ckd_registry", "/lake/gold/ckd_registry", 4, 120, T0, "MERGE")]
    (f,) = queries.freshness(snap(batches=b, datasets=ds), now=T0 + timedelta(hours=3))
    assert (f["version"], f["rows"], f["age_hours"], f["batches"]) == (4, 120, 3.0, ["A/b1"])
    assert f["waiting"] == [{"batch_key": "A/b2", "stage": "blocked"}]


def _event(job, inputs, outputs):
    return {"eventType": "COMPLETE", "job": {"name": job},
            "inputs": [{"namespace": "file", "name": n} for n in inputs],
            "outputs": [{"namespace": "file", "name": n, "facets": f} for n, f in outputs]}


def test_lineage_uses_column_lineage_where_an_output_has_it():
    cl = lambda *srcs: {"columnLineage": {"fields": {"id": {"inputFields": [
        {"namespace": "file", "name": s, "field": "k"} for s in srcs]}}}}
    events = [
        _event("medgov.ingest", ["/landing/A"], [("/lake/bronze/lab_result", {}), ("/lake/bronze/visit", {})]),
        _event("medgov.normalize", ["/lake/bronze/lab_result", "/lake/bronze/visit"],
               [("/lake/silver/observation", cl("/lake/bronze/lab_result")),
                ("/lake/silver/encounter", cl("/lake/bronze/visit"))]),
        _event("medgov.validate", ["/lake/silver/observation"], [("/lake/quality/quality_results", {})]),
        {"eventType": "START", "job": {"name": "medgov.publish"}, "inputs": [], "outputs": []},
    ]
    rows = [result("A/b1", table="observation"), result("A/b1", column="u", success=False, table="observation")]
    lin = queries.lineage(snap(rows, lineage=events))
    edges = {(e["source"], e["target"]) for e in lin["edges"]}
    assert edges == {("landing/A", "bronze/lab_result"), ("landing/A", "bronze/visit"),
                     ("bronze/lab_result", "silver/observation"), ("bronze/visit", "silver/encounter")}
    nodes = {n["name"]: n for n in lin["nodes"]}
    assert (nodes["silver/observation"]["share"], nodes["silver/observation"]["status"]) == (0.5, "warn")
    assert nodes["bronze/visit"]["share"] is None


@pytest.mark.parametrize("header,forced,expected", [
    ("en-US,en;q=0.9,zh-CN;q=0.8", None, "en"), ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
    ("fr-FR,en;q=0.5", None, "en"), ("en;q=0.2,zh;q=0.8", None, "zh"), (None, None, "zh"), ("de", None, "zh"),
    ("en-US", "zh", "zh")])
def test_language_follows_the_flag_then_the_browser(header, forced, expected):
    assert negotiate(header, forced) == expected


def test_every_label_has_both_languages():
    missing = [k for k, v in labels().items() if set(v) != {"zh", "en"} or not all(v.values())]
    assert not missing


def test_institution_grid_is_share_per_table_and_batch_with_latest_failures():
    rows = [result("A/b1", table="observation"), result("A/b1", table="observation", column="u", success=False),
            result("A/b2", table="observation"), result("A/b2", table="patient", suite="silver.patient",
                                                        success=False, severity="blocking"),
            result("B/b1", table="observation", success=False)]
    inst = queries.institution(snap(rows), "A")
    assert (inst["batches"], inst["tables"]) == (["A/b1", "A/b2"], ["observation", "patient"])
    assert inst["grid"] == [[0.5, 1.0], [None, 0.0]]
    assert [(r["table"], r["severity"]) for r in inst["failing"]] == [("patient", "blocking")]
    assert queries.institution(snap(rows), "C") is None
