"""Terminology as data: LOINC concepts (`concept_maps/loinc.yaml`), the local LIS code map,
unit spellings and code systems. Code names the LOINC concepts it must know by name
(`loinc("creatinine_molar")`); the codes are written only in the concept map."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from medgov.spec.package_data import schema_file


@lru_cache(maxsize=None)
def _codes_by_name() -> dict[str, str]:
    return {c["name"]: code for code, c in schema_file("concept_maps/loinc.yaml")["concepts"].items()}


def loinc(name: str) -> str:
    """The LOINC code of the concept called `name` in `concept_maps/loinc.yaml`."""
    try:
        return _codes_by_name()[name]
    except KeyError:
        raise KeyError(f"no LOINC concept named {name!r} in concept_maps/loinc.yaml") from None


@dataclass(frozen=True)
class Terminology:
    """Concept maps and code systems, loaded once on the driver and shipped to executors."""

    lab_map: dict[tuple[str, str], str]  # (org or "*", local code) -> LOINC
    concepts: dict[str, dict[str, Any]]
    units: dict[str, str]
    codes: dict[str, Any]

    @classmethod
    def load(cls) -> "Terminology":
        lab = schema_file("concept_maps/lab_items.yaml")
        return cls(
            lab_map={(e["org"], e["local"]): e["loinc"] for e in lab["entries"]},
            concepts=schema_file("concept_maps/loinc.yaml")["concepts"],
            units=schema_file("concept_maps/units.yaml"),
            codes=schema_file("value_sets/codes.yaml"),
        )

    def loinc_for(self, org: str, local: str) -> str | None:
        return self.lab_map.get((org, local)) or self.lab_map.get(("*", local))

    def system(self, name: str) -> str:
        return self.codes["systems"][name]

    def concept(self, name: str) -> tuple[str, dict[str, Any]]:
        """(code, concept) of the LOINC concept called `name`."""
        code = loinc(name)
        return code, self.concepts[code]
