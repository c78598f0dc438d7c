"""The FHIR R4 element tree a view navigates, read from fhir.resources' R4B models (which
carry every element's type, cardinality and choice group): what the typed view compiler needs
to give each path a Spark type without looking at the data. No Spark here."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# FHIR primitive -> the Spark type its JSON value is read as. Dates, times, codes and the
# string family stay strings: FHIRPath compares them as FHIR text, and a column typed
# dateTime is a FHIR string (definition.SPARK_TYPES).
_PRIMITIVE_SPARK = {"boolean": "boolean", "integer": "bigint", "positiveInt": "bigint",
                    "unsignedInt": "bigint", "decimal": "double"}
PRIMITIVES = {"boolean", "integer", "positiveInt", "unsignedInt", "decimal", "string", "code", "id",
              "markdown", "uri", "url", "canonical", "oid", "uuid", "base64Binary", "instant", "date",
              "dateTime", "time", "xhtml", "integer64"}
NUMBERS = {"integer", "positiveInt", "unsignedInt", "decimal", "integer64"}


@dataclass(frozen=True)
class Element:
    """One element of a FHIR type: its JSON name, its type, and whether it repeats."""

    name: str
    type: str  # a primitive ("code", "decimal") or a complex type or backbone element's model name
    many: bool


def spark_type(fhir_type: str) -> str | None:
    """The Spark type of a primitive's JSON value; None for a complex type."""
    if fhir_type not in PRIMITIVES:
        return None
    return _PRIMITIVE_SPARK.get(fhir_type, "string")


def is_number(fhir_type: str) -> bool:
    return fhir_type in NUMBERS


@lru_cache(maxsize=None)
def _model(type_name: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(type_name)
    except (KeyError, ValueError):
        return _BACKBONE.get(type_name)


_BACKBONE: dict[str, Any] = {}  # backbone elements (ObservationComponent) by their model's name


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the item annotation, whether the element repeats) of a field's annotation."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return None, many
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - the models use typing.List
            many = True
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, many


def _type_of(annotation: Any) -> str | None:
    """The FHIR type name of an item annotation (None: polymorphic, e.g. a contained Resource)."""
    if typing.get_origin(annotation) is typing.Annotated:
        marker = typing.get_args(annotation)[1]
        name = type(marker).__name__
        return name[:1].lower() + name[1:]
    if annotation is bool:
        return "boolean"
    if annotation is str:
        return "string"
    get_klass = getattr(annotation, "get_model_klass", None)
    if get_klass is None:
        return None
    klass = get_klass()
    name = klass.__name__
    if name in ("Resource", "DomainResource"):
        return None
    if _model(name) is None:
        _BACKBONE[name] = klass
    return name


@lru_cache(maxsize=None)
def _elements(type_name: str) -> dict[str, Element | None]:
    """JSON name -> Element of a FHIR type's elements; None for a choice group's base name
    (`value`) and for an element whose type cannot be read from the model."""
    model = _model(type_name)
    if model is None:
        return {}
    out: dict[str, Element | None] = {}
    for field_name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        name = info.alias or field_name
        item, many = _unwrap(info.annotation)
        fhir_type = _type_of(item) if item is not None else None
        out[name] = Element(name, fhir_type, many) if fhir_type is not None else None
        choice = extra.get("one_of_many")
        if choice:
            out.setdefault(choice, None)  # `value` alone is polymorphic: reached through ofType()
    return out


def is_type(type_name: str) -> bool:
    """Whether fhir.resources knows `type_name` (a resource, data type or backbone element)."""
    return _model(type_name) is not None


def element(type_name: str, name: str) -> Element | None:
    """The element `name` of `type_name`; None where it is unknown or polymorphic."""
    return _elements(type_name).get(name)


def is_choice(type_name: str, name: str) -> bool:
    """Whether `name` is a choice group of `type_name` (`value` of Observation)."""
    elements = _elements(type_name)
    return name in elements and elements[name] is None and any(
        e is not None and e.name.startswith(name) and e.name != name for e in elements.values())


__all__ = ["Element", "element", "is_choice", "is_number", "is_type", "spark_type"]
