"""Validate produced FHIR resources: fhir.resources R4B models + the required bindings it leaves open.

R4B models are wire-compatible with R4 for Patient, Encounter, Condition, Observation and
MedicationRequest. Error messages name the element and the rule, never the offending value
(values may be personal data).
"""

from __future__ import annotations

import typing
from functools import lru_cache
from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import TypeAdapter, ValidationError

from medgov.spec.package_data import schema_file

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


def _element_class(annotation: Any) -> tuple[type | None, bool]:
    """(element model, is a list) of a field annotation; None for primitives and resources."""
    if hasattr(annotation, "get_model_klass"):
        klass = annotation.get_model_klass()
        return (None if klass.__resource_type__ in MODELS or klass.__name__ == "Resource" else klass), False
    for arg in typing.get_args(annotation):
        klass, listed = _element_class(arg)
        if klass is not None:
            return klass, listed or typing.get_origin(annotation) in (list, typing.List)
    return None, False


@lru_cache(maxsize=None)
def element_fields(model: type) -> dict[str, tuple[type, bool]]:
    """JSON key -> (element model, is a list) for the complex, non-resource fields of `model`."""
    out = {}
    for name, field in model.model_fields.items():
        klass, listed = _element_class(field.annotation)
        if klass is not None and klass.__name__ not in ("Extension", "FHIRPrimitiveExtension", "Meta", "Narrative"):
            out[field.alias or name] = (klass, listed)
    return out


@lru_cache(maxsize=None)
def _primitive(model: type, key: str) -> TypeAdapter | None:
    """The validator of one top-level primitive field, as the model applies it."""
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            ann = field.annotation
            return TypeAdapter(typing.Annotated[(ann, *field.metadata)] if field.metadata else ann)
    return None


def _plain(value: Any) -> bool:
    """Neither null nor empty nor a list holding a null: left to the full validation."""
    if value is None or value == [] or value == {}:
        return False
    return not (isinstance(value, list) and any(item is None for item in value))


class FastValidator:
    """The same verdict as `model_validate`, without re-validating what repeats across rows.

    fhir.resources has no resource-specific validators: a resource is valid when its keys are
    known, its required and choice ([x]) elements are present as the rules say, no list of
    complex elements holds a null, and each element is valid on its own (pydantic validates a
    nested element without regard to its parent). So the first resource of each shape (its
    set of keys) is validated in full; later ones of a validated shape check only their
    elements: each complex element once per distinct content (codes, categories and patient
    references repeat), each primitive by its field's own validator. The same holds one level
    down, so a new content of an element shape already validated (a Quantity with this row's
    number) is checked field by field too. Anything this path rejects, and every shape it has
    not seen, goes through `model_validate` for the verdict and the message.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._elements: dict[tuple[type, str], bool] = {}
        self._shapes: set[tuple[type, tuple[str, ...]]] = set()
        self.fast = self.full = 0

    def _element_ok(self, klass: type, value: Any) -> bool:
        """An element's verdict: remembered per content; a content not seen before whose
        shape (its keys) was validated in full is checked field by field, as a resource is,
        so an element carrying a per-row value (a Quantity's number, a patient reference)
        costs its primitives' checks, not a full validation."""
        if not isinstance(value, dict) or not value:
            return False
        key = (klass, repr(value))
        verdict = self._elements.get(key)
        if verdict is None:
            shape = (klass, tuple(value))
            if shape in self._shapes and self._fields_ok(klass, value):
                verdict = True
            else:
                try:
                    klass.model_validate(value)
                    verdict = True
                except (ValidationError, ValueError, TypeError):
                    verdict = False
                if verdict and all(_plain(v) for v in value.values()):
                    self._shapes.add(shape)
            if len(self._elements) >= self.limit:
                self._elements.clear()
            self._elements[key] = verdict
        return verdict

    def _fields_ok(self, model: type, resource: dict[str, Any]) -> bool:
        """True when every field of a resource or element of a validated shape is valid on
        its own: complex ones through `_element_ok`, primitives by their field's validator."""
        fields = element_fields(model)
        for k, v in resource.items():
            if k == "resourceType":
                continue
            if not _plain(v):
                return False
            spec = fields.get(k)
            if spec is not None:
                if spec[1] != isinstance(v, list):  # a list where one element is due, or the reverse
                    return False
                items = v if spec[1] else [v]
                if not all(self._element_ok(spec[0], item) for item in items):
                    return False
                continue
            adapter = _primitive(model, k)
            if adapter is None:
                return False
            try:
                adapter.validate_python(v)
            except (ValidationError, ValueError, TypeError):
                return False
        return True

    def check(self, model: type, resource: dict[str, Any]) -> None:
        """Raise ValidationError exactly when `model.model_validate(resource)` would."""
        shape = (model, tuple(resource))
        if shape in self._shapes and self._fields_ok(model, resource):
            self.fast += 1
            return
        self.full += 1
        model.model_validate(resource)
        if all(_plain(v) for k, v in resource.items() if k != "resourceType"):
            self._shapes.add(shape)


def _reason(rt: str, exc: ValidationError) -> str:
    parts = [f"{rt}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)[:3]]
    return "FHIR validation: " + "; ".join(parts)


def validation_error(resource: dict[str, Any], fast: FastValidator | None = None) -> str | None:
    """None when the resource is valid R4, else a one-line reason without data values.

    With a `FastValidator`, repeated shapes and elements are not validated again; the verdict
    and the reason are the same as without.
    """
    rt = resource.get("resourceType")
    model = MODELS.get(rt)
    if model is None:
        return f"unsupported resourceType {rt!r}"
    try:
        if fast is None:
            model.model_validate(resource)
        else:
            fast.check(model, resource)
    except ValidationError as exc:
        return _reason(rt, exc)
    errors = binding_errors(resource)
    return "FHIR binding: " + "; ".join(errors) if errors else None
