"""Validate produced FHIR resources: fhir.resources R4B models + the required bindings it leaves open.

R4B models are wire-compatible with R4 for Patient, Encounter, Condition, Observation and
MedicationRequest. Error messages name the element and the rule, never the offending value
(values may be personal data).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from medgov.resources import schema_file

MODELS = {m.__name__: m for m in (Patient, Encounter, Condition, Observation, MedicationRequest)}


@lru_cache(maxsize=None)
def bindings() -> dict[str, dict[str, frozenset[str]]]:
    raw = schema_file("value_sets/bindings.yaml")
    return {rt: {path: frozenset(codes) for path, codes in paths.items()} for rt, paths in raw.items()}


def _values(node: Any, path: list[str]) -> list[Any]:
    """All values at a dotted path, walking through lists."""
    if not path:
        return [node]
    if isinstance(node, list):
        return [v for item in node for v in _values(item, path)]
    if isinstance(node, dict) and path[0] in node:
        return _values(node[path[0]], path[1:])
    return []


def binding_errors(resource: dict[str, Any]) -> list[str]:
    """Codes outside the required value sets, as `Observation.status: not in value set`."""
    rt = resource["resourceType"]
    errors = []
    for path, allowed in bindings().get(rt, {}).items():
        for value in _values(resource, path.split(".")):
            if value not in allowed:
                errors.append(f"{rt}.{path}: code not in the required value set")
    return errors


def validate(resource: dict[str, Any]) -> str | None:
    """None when the resource is valid R4, else a one-line reason without data values."""
    rt = resource.get("resourceType")
    model = MODELS.get(rt)
    if model is None:
        return f"unsupported resourceType {rt!r}"
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        parts = [f"{rt}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)[:3]]
        return "FHIR validation: " + "; ".join(parts)
    errors = binding_errors(resource)
    return "FHIR binding: " + "; ".join(errors) if errors else None
