"""Numbers in delivered text (pure Python; the Spark form is `columns.non_finite`): a
finite number, or text that only looks like one. IEEE 754's NaN and infinities as programs
print them (`NaN`, `Infinity`, `inf`, `-inf`), and literals beyond a double's range (`1e309`),
are not values a measurement can have."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from medgov.domain.identity import to_halfwidth

# matched case-insensitively, after full-width to half-width and trimming
NON_FINITE_PATTERN = r"^[+-]?(nan|inf|infinity|∞)$"
_NON_FINITE = re.compile(NON_FINITE_PATTERN, re.IGNORECASE)
# a lab result: an optional comparator, then a number (grouping commas, decimals, an exponent)
_RESULT = re.compile(r"^(<=|>=|≤|≥|<|>)?\s*([-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?)$")


@dataclass(frozen=True)
class Reading:
    """What a result text says: a comparator and a finite value; neither (qualitative text);
    or why it is no number (`absent`, a FHIR R4 data-absent-reason code)."""

    comparator: str | None = None
    value: float | None = None
    absent: str | None = None


def read_result(text: str) -> Reading:
    """`<5` -> ('<', 5.0); `132` -> 132.0; `1.2E+05` -> 120000.0; `阴性` -> qualitative;
    `NaN` -> absent 'not-a-number'; `-inf` -> 'negative-infinity'; `1e309` -> 'error'
    (a number the system cannot hold)."""
    s = to_halfwidth(text).strip()
    if _NON_FINITE.match(s):
        if s.lower().lstrip("+-") == "nan":
            return Reading(absent="not-a-number")
        return Reading(absent="negative-infinity" if s.startswith("-") else "positive-infinity")
    m = _RESULT.match(s)
    if not m:
        return Reading()
    value = float(m.group(2).replace(",", ""))  # `1,234`: grouping commas only
    if math.isinf(value):
        return Reading(absent="error")
    comparator = {"≤": "<=", "≥": ">="}.get(m.group(1) or "", m.group(1))
    return Reading(comparator, value)


_NUM = r"([-+]?\d+(?:\.\d+)?)"
_BETWEEN = re.compile(rf"^{_NUM}\s*(?:-|~|—|–|至|到)\s*{_NUM}$")
_BOUND = re.compile(rf"^(<=|>=|≤|≥|<|>)\s*{_NUM}$")


def read_range(text: str | None) -> tuple[float | None, float | None] | None:
    """A reference range's numeric bounds: `57-111`, `0.6～1.2` -> (low, high); `<5` -> (None, 5);
    `≥60` -> (60, None); anything else (`阴性`, `见报告`) -> None."""
    if not text:
        return None
    s = unicodedata.normalize("NFKC", text).strip()
    if m := _BETWEEN.match(s):
        low, high = float(m.group(1)), float(m.group(2))
        return (low, high) if low <= high else None
    if m := _BOUND.match(s):
        value = float(m.group(2))
        return (None, value) if m.group(1) in ("<", "<=", "≤") else (value, None)
    return None
