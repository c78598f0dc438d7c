"""OpenLineage events validate against the official schemas and describe every stage."""

import copy
import json
from collections import defaultdict

import jsonschema
import pytest
from referencing import Registry, Resource

from conftest import shared_file

FACETS = {"columnLineage": ("ColumnLineageDatasetFacet.json", "ColumnLineageDatasetFacet"),
          "dataQualityAssertions": ("DataQualityAssertionsDatasetFacet.json", "DataQualityAssertionsDatasetFacet")}


@pytest.fixture(scope="module")
def schemas():
    core = json.loads(shared_file("reference/openlineage/OpenLineage.json").read_text())
    core_defs = copy.deepcopy(core)
    core_defs["$defs"] = core_defs["definitions"]  # facet schemas refer to the core by $defs
    registry = Registry().with_resources(
        [(f"https://openlineage.io/spec/1-0-{v}/OpenLineage.json", Resource.from_contents(core_defs)) for v in range(0, 8)])
    facets = {}
    for key, (fname, name) in FACETS.items():
        doc = json.loads(shared_file(f"reference/openlineage/{fname}").read_text())
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc))
        facets[key] = {"$ref": f"{doc['$id']}#/$defs/{name}"}
    return core, facets, registry


@pytest.fixture(scope="module")
def events(demo):
    lines = (demo.lake / "lineage" / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_events_validate_against_official_schemas(events, schemas):
    core, facets, registry = schemas
    validator = jsonschema.Draft202012Validator(core, registry=registry)
    facet_checks = 0
    for e in events:
        validator.validate(e)
        for ds in e.get("inputs", []) + e.get("outputs", []):
            for key, ref in facets.items():
                if key in ds.get("facets", {}):
                    jsonschema.Draft202012Validator(ref, registry=registry).validate(ds["facets"][key])
                    facet_checks += 1
    assert facet_checks >= 2


def test_each_stage_run_starts_and_completes(events):
    states = defaultdict(list)
    for e in events:
        states[(e["job"]["name"], e["run"]["runId"])].append(e["eventType"])
    jobs = {job for job, _ in states}
    assert {"medgov.ingest", "medgov.normalize", "medgov.validate", "medgov.publish"} <= jobs
    for run, seq in states.items():
        assert seq == ["START", "COMPLETE"], run


def test_gold_has_column_lineage_and_quality_assertions_are_attached(events):
    publish = [e for e in events if e["job"]["name"] == "medgov.publish" and e["eventType"] == "COMPLETE"]
    gold = [o for o in publish[-1]["outputs"] if o["name"].endswith("/gold/ckd_registry")][0]
    fields = gold["facets"]["columnLineage"]["fields"]
    # from the views' FHIRPaths over the silver resources
    assert {i["field"] for i in fields["egfr"]["inputFields"]} >= {
        "Observation.value.ofType(Quantity).value", "Patient.birthDate", "Patient.gender"}
    assert {i["name"].rsplit("/", 1)[-1] for i in fields["egfr"]["inputFields"]} == {"observation", "patient"}
    assert {f["name"] for f in gold["facets"]["schema"]["fields"]} >= {"patient_key", "egfr", "g_stage"}
    validate = [e for e in events if e["job"]["name"] == "medgov.validate" and e["eventType"] == "COMPLETE"]
    assertions = [a for i in validate[-1]["inputs"] for a in i["facets"].get("dataQualityAssertions", {}).get("assertions", [])]
    assert any(a["assertion"] == "expect_column_values_to_be_in_set" for a in assertions)


def test_failed_stage_emits_fail(tmp_path):
    from medgov.storage.lake import Lake
    from medgov.storage.lineage import stage_run

    lake = Lake.at(tmp_path)
    with pytest.raises(RuntimeError):
        with stage_run(lake, "medgov.test"):
            raise RuntimeError("boom")
    events = [json.loads(line) for line in (tmp_path / "lineage" / "events.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert events[1]["run"]["facets"]["errorMessage"]["message"] == "RuntimeError: boom"


def _medgov_facet(schemas, name: str) -> jsonschema.Draft202012Validator:
    """A validator for medgov's own facet `name` (schemas/facets/<name>.json), resolving the
    OpenLineage core it extends."""
    from pathlib import Path

    core, _, registry = schemas
    core_defs = copy.deepcopy(core)
    core_defs["$defs"] = core_defs["definitions"]
    registry = registry.with_resource("https://openlineage.io/spec/2-0-2/OpenLineage.json",
                                      Resource.from_contents(core_defs))
    doc = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "facets" / f"{name}.json").read_text())
    return jsonschema.Draft202012Validator({"$ref": f"{doc['$id']}#/$defs/{name}"},
                                           registry=registry.with_resource(doc["$id"], Resource.from_contents(doc)))


def test_observations_say_which_concept_maps_coded_them(events, schemas):
    """The terminology facet on silver Observations: the concept maps' content hash and the
    rows each mapping method coded, valid against medgov's published facet schema."""
    from medgov.domain.lab_terms import CODE, NAME, SITE, UNMAPPED
    from medgov.normalize.builders import VITAL_SIGN
    from medgov.spec.terminology import Terminology

    check = _medgov_facet(schemas, "TerminologyFacet")
    normalize = [e for e in events if e["job"]["name"] == "medgov.normalize" and e["eventType"] == "COMPLETE"]
    facets = [o["facets"]["terminology"] for e in normalize for o in e["outputs"] if o["name"].endswith("/observation")]
    assert facets
    for facet in facets:
        check.validate(facet)
        assert facet["version"] == Terminology.load().version
        assert set(facet["methods"]) <= {SITE, CODE, NAME, UNMAPPED, VITAL_SIGN} and sum(facet["methods"].values()) > 0


def test_every_run_says_which_site_configuration_it_ran_under(followups, schemas):
    """The run facet `medgov_site` on every event and `control/runs`: `none` for the demo
    (no site folder), the folder's content hash for the follow-up run that had one."""
    from medgov.spec.site import content_hash
    from medgov.storage import control
    from medgov.storage.lake import Lake

    check = _medgov_facet(schemas, "SiteConfigFacet")
    events = [json.loads(line) for line in (followups.lake / "lineage" / "events.jsonl").read_text().splitlines()]
    versions = [e["run"]["facets"]["medgov_site"]["version"] for e in events]
    for e in events:
        check.validate(e["run"]["facets"]["medgov_site"])
    site = content_hash(followups.site)
    assert versions[0] == "none" and versions[-1] == site and set(versions) == {"none", site}
    runs = control.runs(Lake.at(followups.lake))
    assert [r["stage"] for r in runs[-4:]] == ["ingest", "normalize", "validate", "publish"]
    assert {r["config_version"] for r in runs[-4:]} == {site} and runs[0]["config_version"] == "none"
