"""The fast FHIR validation path gives exactly the verdict and reason of `model_validate`,
on every resource the demo built and on broken variants of each."""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import pytest
from deltalake import DeltaTable

from medgov.normalize.fhir_validation import FastValidator, validation_error
from medgov.spec.tables import SILVER_TABLES


def _resources(lake) -> list[dict[str, Any]]:
    out = []
    for table in SILVER_TABLES:
        if table == "patient_xref":
            continue
        rows = DeltaTable(str(lake / "silver" / table)).to_pyarrow_table(columns=["resource_json"]).to_pylist()
        out += [json.loads(r["resource_json"]) for r in rows]
    return out


def _broken(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Variants a builder bug or a bad source value could produce, one defect each."""
    def variant(**changes: Any) -> dict[str, Any]:
        r = copy.deepcopy(resource)
        for k, v in changes.items():
            if v is ...:
                r.pop(k, None)
            else:
                r[k] = v
        return r

    yield variant(id="has space")
    yield variant(id="")
    yield variant(unknownElement="x")
    yield variant(status=None)
    yield variant(status=...)
    yield variant(status=" final")
    for k, v in resource.items():
        if isinstance(v, dict):
            yield variant(**{k: {}})
            yield variant(**{k: {**v, "bogus": 1}})
            yield variant(**{k: "text"})
            # one level down too: the fast path checks new contents of a known element shape
            # field by field (a Quantity of this row's number)
            for ck, cv in v.items():
                yield variant(**{k: {**v, ck: None}})
                yield variant(**{k: {**v, ck: {"bogus": 1} if not isinstance(cv, dict) else {**cv, "bogus": 1}}})
                if isinstance(cv, (int, float)) and not isinstance(cv, bool):
                    yield variant(**{k: {**v, ck: "many"}})
                if isinstance(cv, str):
                    yield variant(**{k: {**v, ck: ""}})
                    yield variant(**{k: {**v, ck: cv + " "}})
        if isinstance(v, list) and v and isinstance(v[0], dict):
            yield variant(**{k: [*v, None]})
            yield variant(**{k: []})
            yield variant(**{k: v[0]})  # a single element where a list is due
        if k.startswith(("effective", "authoredOn", "birthDate", "issued", "period", "onset", "recorded")):
            yield variant(**{k: "2024-13-45"})
            yield variant(**{k: 20240101})
    rt = resource["resourceType"]
    if rt == "Observation":
        yield variant(code=...)
        yield variant(valueString="both value[x]") if "valueQuantity" in resource else variant(
            valueQuantity={"value": 1.0})
        if "valueQuantity" in resource:
            yield variant(valueQuantity={**resource["valueQuantity"], "value": "many"})
            yield variant(valueQuantity={**resource["valueQuantity"], "comparator": "~"})
    if "subject" in resource:
        yield variant(subject={"reference": 5})
        yield variant(subject={"reference": "Patient/x", "type": ""})


def test_fast_path_gives_the_same_verdict_and_reason(demo):
    resources = _resources(demo.lake)
    assert len(resources) > 1000
    fast = FastValidator()
    cases = 0
    for resource in resources:
        for candidate in (resource, *_broken(resource)):
            assert validation_error(candidate, fast) == validation_error(candidate), candidate
            cases += 1
    # the comparison means something: most valid resources took the fast path, and the broken
    # ones were both accepted and refused by the full path
    assert fast.fast > len(resources) * 0.9
    assert cases > 10 * len(resources)


@pytest.mark.parametrize("limit", [1, 50])
def test_a_small_cache_changes_nothing(demo, limit):
    resources = _resources(demo.lake)[:3000]
    fast = FastValidator(limit=limit)
    assert [validation_error(r, fast) for r in resources] == [validation_error(r) for r in resources]


def test_the_models_have_only_the_generic_presence_rules():
    """The fast path's premise: no resource or element model adds validators of its own (a
    fhir.resources upgrade that adds some must revisit FastValidator)."""
    from fhir_core.fhirabstractmodel import FHIRAbstractModel

    from medgov.normalize.fhir_validation import MODELS, element_fields

    generic = set(FHIRAbstractModel.__pydantic_decorators__.model_validators)
    # every element class the fast path may meet, at any depth (it recurses into elements)
    models, todo = set(), list(MODELS.values())
    while todo:
        model = todo.pop()
        if model not in models:
            models.add(model)
            todo += [klass for klass, _ in element_fields(model).values()]
    assert len(models) > 30
    for model in models:
        decorators = model.__pydantic_decorators__
        assert set(decorators.model_validators) == generic, model.__name__
        assert not decorators.field_validators, model.__name__
    # element fields are checked item by item: no constraint may sit on the field itself
    for model in models:
        keys = element_fields(model)
        constrained = [n for n, f in model.model_fields.items() if (f.alias or n) in keys and f.metadata]
        assert not constrained, (model.__name__, constrained)
