"""Chinese ICD-10 editions reduced to the WHO ICD-10 stem (domain.md §2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from medgov.domain.identity import to_halfwidth

_EXTENSION = re.compile(r"X\d{3}$")
# with a dot, the subcategory is the character after it; written without one (`E112`, `N183`)
# it is the fourth character when that is a digit
_STEM = re.compile(r"^([A-Z]\d{2})(?:\.([0-9A-Z])|(\d))?")
# ICD-O morphology codes (`M8140/3`) share ICD-10's letter-and-digits shape but name a tumour's
# histology, not a diagnosis: M81.4 is drug-induced osteoporosis
_MORPHOLOGY = re.compile(r"^M\d{4}/\d")


@dataclass(frozen=True)
class IcdCode:
    original: str
    stem: str | None  # "N18.3" or "I10"; None when the code has no ICD-10 shape
    category: str | None  # 3-character category, "N18"
    manifestations: tuple[str, ...] = ()


def _stem(part: str) -> tuple[str | None, str | None]:
    part = _EXTENSION.sub("", part.rstrip("*†"))
    if _MORPHOLOGY.match(part):
        return None, None
    m = _STEM.match(part)
    if not m:
        return None, None
    category, sub = m.group(1), m.group(2) or m.group(3)
    # the subcategory is the first character after the dot unless it is the extension marker x
    if sub and sub != "X":
        return f"{category}.{sub}", category
    return category, category


def parse_icd(code: str) -> IcdCode:
    """`N18.300x001+D63.8*` -> stem N18.3 (category N18) with manifestation D63.8.

    Parts ending in `*` are manifestations; the etiology (marked `†` or unmarked) is the
    primary stem wherever it is written (`D63.8*+N18.3` -> N18.3)."""
    s = "".join(to_halfwidth(code).split()).upper()
    parts = [p for p in s.split("+") if p]
    etiology = next((p for p in parts if not p.endswith("*")), None)
    stem, category = _stem(etiology) if etiology else (None, None)
    manifestations = tuple(m for m in (_stem(p)[0] for p in parts if p.endswith("*")) if m)
    return IcdCode(code.strip(), stem, category, manifestations)
