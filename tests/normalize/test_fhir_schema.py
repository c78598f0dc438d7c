"""Every produced resource validates against the official FHIR R4 JSON schema (per definition)."""

import json
from functools import lru_cache

import jsonschema
import pytest
from deltalake import DeltaTable

from conftest import shared_file
from medgov.normalize.fhir_validation import binding_errors, validation_error

TABLES = ("patient", "encounter", "condition", "observation", "medication_request")


@lru_cache(maxsize=None)
def validator_for(resource_type: str) -> jsonschema.Draft6Validator:
    schema = json.loads(shared_file("reference/fhir-r4.schema.json").read_text(encoding="utf-8"))
    # validate against the resource's own definition, never through the top-level oneOf
    sub = {"$ref": f"#/definitions/{resource_type}", "definitions": schema["definitions"]}
    return jsonschema.Draft6Validator(sub)


@pytest.mark.parametrize("table", TABLES)
def test_silver_resources_match_official_schema(demo, table):
    docs = DeltaTable(str(demo.lake / "silver" / table)).to_pyarrow_table(columns=["resource_json"])
    resources = [json.loads(s) for s in docs.column("resource_json").to_pylist()]
    assert resources
    for res in resources:
        errors = list(validator_for(res["resourceType"]).iter_errors(res))
        assert not errors, (res["resourceType"], res["id"], errors[0].message)


def test_invalid_status_is_caught_by_bindings():
    """fhir.resources accepts any status string; the value-set check in schemas/ does not."""
    obs = {"resourceType": "Observation", "id": "x", "status": "bogus",
           "code": {"text": "t"}, "subject": {"reference": "Patient/p"}}
    assert binding_errors(obs) == ["Observation.status: code not in the required value set"]
    assert validation_error(obs).startswith("FHIR binding")
    assert validation_error({**obs, "status": "final"}) is None


def test_official_schema_agrees_on_bad_status():
    obs = {"resourceType": "Observation", "status": "bogus", "code": {"text": "t"}}
    assert list(validator_for("Observation").iter_errors(obs))


def test_structural_errors_name_the_element_not_the_value():
    obs = {"resourceType": "Observation", "id": "x", "status": "final", "code": {"text": "t"},
           "effectiveDateTime": "11010519491231002X"}
    reason = validation_error(obs)
    assert reason.startswith("FHIR validation: Observation.effectiveDateTime")
    assert "11010519491231002X" not in reason
