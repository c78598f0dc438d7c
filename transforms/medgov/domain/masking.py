"""Mask values before a person sees example rows: quasi-identifiers generalised or suppressed
by the rules in `schemas/masking.yaml` (domain.md §4), long text cut short."""

from __future__ import annotations

import json
from typing import Any

from medgov.spec.package_data import schema_file

SUPPRESSED = "•••"


def _rules() -> dict[str, str]:
    return schema_file("masking.yaml")["quasi_identifiers"]


def mask_value(column: str, value: Any) -> str | None:
    """The value as text, generalised or suppressed if `column` is a quasi-identifier."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str).strip('"')
    rule = _rules().get(column)
    if rule == "suppress":
        return SUPPRESSED
    if rule == "year":
        return f"{text[:4]}-**-**" if len(text) >= 4 and text[:4].isdigit() else SUPPRESSED
    if rule and rule.startswith("prefix:"):
        keep = int(rule.split(":", 1)[1])
        return text[:keep] + "*" * max(len(text) - keep, 0)
    rules = schema_file("masking.yaml")
    if column in rules.get("written_by_medgov", ()):
        return text
    limit = rules["max_chars"]
    return text if len(text) <= limit else text[:limit] + "…"


def mask_record(record: dict[str, Any]) -> dict[str, str | None]:
    """Every value of a row masked by its column's rule."""
    return {k: mask_value(k, v) for k, v in record.items()}
