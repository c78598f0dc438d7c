"""A ViewDefinition over the demo lake's silver Observations gives, row for row, what
normalize flattened from the same resources: the view runner and the FHIR builders agree."""

from __future__ import annotations

import json

from deltalake import DeltaTable

LAB_VIEW = {
    "resourceType": "ViewDefinition", "resource": "Observation", "status": "active",
    "select": [{"column": [
        {"name": "id", "path": "getResourceKey()", "type": "string"},
        {"name": "patient", "path": "subject.getReferenceKey(Patient)", "type": "string"},
        {"name": "loinc", "path": "code.coding.where(system = 'http://loinc.org').code.first()", "type": "code"},
        {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
        {"name": "codes", "path": "code.coding.code", "type": "code", "collection": True}]}],
    "where": [{"path": "category.coding.code.first() = 'laboratory'"}],
}


def test_a_view_over_silver_equals_the_flattened_columns(demo, tmp_path):
    from medgov.views.lake import run_on_lake

    out = tmp_path / "labs.parquet"
    n, shown = run_on_lake(LAB_VIEW, str(demo.lake), None, out, limit=5)
    silver = [o for o in DeltaTable(str(demo.lake / "silver" / "observation")).to_pyarrow_table().to_pylist()
              if o["category"] == "laboratory"]
    assert n == len(silver) and len(shown) == 5
    import pyarrow.parquet as pq

    rows = {r["id"]: r for r in pq.read_table(out).to_pylist()}
    assert len(rows) == n
    for o in silver:
        r = rows[o["id"]]
        assert r["patient"] == o["patient_key"] and r["loinc"] == o["loinc"], o["id"]
        assert (r["value"] is None and o["value"] is None) or abs(r["value"] - o["value"]) < 1e-9, o["id"]
        assert o["local_code"] in r["codes"] and (o["loinc"] is None or o["loinc"] in r["codes"])


def test_view_run_refuses_an_invalid_view_in_one_line(tmp_path):
    from lakes import medgov

    (tmp_path / "v.json").write_text(json.dumps({"select": []}))
    p = medgov("view", "run", str(tmp_path / "v.json"), "--lake", str(tmp_path), check=False)
    assert p.returncode == 1 and p.stderr.strip() == "medgov: error: the view names no resource type (resource)"


def test_view_test_writes_the_report_and_rows(tmp_path):
    """`medgov view test` on a three-case suite of our own: a view that gives the expected
    rows, one that must be refused, and one whose expectation is wrong: exit 1, each outcome
    in the report, each test's rows (or its refusal) written."""
    from lakes import medgov

    suite = tmp_path / "suite"
    suite.mkdir()
    view = {"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id", "type": "id"},
                                                          {"name": "family", "path": "name.family", "type": "string"}]}]}
    doc = {"title": "mini", "resources": [{"resourceType": "Patient", "id": "p1", "name": [{"family": "Li"}]}],
           "tests": [{"title": "family", "tags": ["shareable"], "view": view, "expect": [{"id": "p1", "family": "Li"}]},
                     {"title": "no resource", "tags": ["shareable"], "view": {"select": []}, "expectError": True},
                     {"title": "wrong", "tags": ["shareable"], "view": view, "expect": [{"id": "p1", "family": "W"}]}]}
    (suite / "mini.json").write_text(json.dumps(doc))
    p = medgov("view", "test", str(suite), "--report", str(tmp_path / "r.json"), "--rows", str(tmp_path / "rows"),
               check=False)
    assert p.returncode == 1 and "shareable: 2/3 passed" in p.stdout
    assert "failed mini.json: wrong: rows differ" in p.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert [t["result"]["passed"] for t in report["mini.json"]["tests"]] == [True, True, False]
    assert json.loads((tmp_path / "rows" / "mini" / "0.json").read_text()) == [{"id": "p1", "family": "Li"}]
    assert "error" in json.loads((tmp_path / "rows" / "mini" / "1.json").read_text())


def test_view_throughput_is_measured_against_fhirpathpy(demo, spark):
    """The benchmark's measurement (`medgov view bench`), small: every resource goes through the
    Spark runner, the sample through fhirpathpy, and both rates are per core."""
    from medgov.bench.views import OBSERVATION_VIEW, view_throughput
    from medgov.storage.table_store import DeltaRsStore

    obs = DeltaRsStore(spark).read(str(demo.lake / "silver" / "observation")).select("resource_json")
    r = view_throughput(spark, obs, count=3000, python_sample=200)
    assert r["resources"] == 3000 and r["python_sample"] == 200 and r["columns"] == 15
    assert len(OBSERVATION_VIEW["select"][0]["column"]) == 15
    assert r["spark_per_core_per_s"] > 0 and r["python_per_core_per_s"] > 0
    assert r["ratio"] == round(r["spark_per_core_per_s"] / r["python_per_core_per_s"], 1) or abs(
        r["ratio"] - r["spark_per_core_per_s"] / r["python_per_core_per_s"]) < 0.06
