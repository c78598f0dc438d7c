"""Terminology as data: LOINC concepts (`concept_maps/loinc.yaml`), the local LIS code map,
unit and specimen spellings, and code systems; a site extends the maps in
`<config>/concept_maps/` (its entries win). Code names the LOINC concepts it must know by name
(`loinc("creatinine_molar")`); the codes are written only in the concept map."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import yaml

from medgov.errors import MedgovError
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


def _site_map(folder: Path | None, name: str) -> Any:
    """`<folder>/concept_maps/<name>` parsed, or None where the site has none."""
    path = folder / "concept_maps" / name if folder else None
    if path is None or not path.exists():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        where = f" line {exc.problem_mark.line + 1}" if getattr(exc, "problem_mark", None) else ""
        raise MedgovError(f"{path}{where}: not readable YAML ({type(exc).__name__})") from None


def _lab_entries(doc: Any, where: str, concepts: dict[str, Any]) -> dict[tuple[str, str], str]:
    entries = (doc or {}).get("entries", []) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise MedgovError(f"{where}: expected `entries:` with a list of {{org, local, loinc}}")
    out: dict[tuple[str, str], str] = {}
    for i, e in enumerate(entries):
        if not (isinstance(e, dict) and {"org", "local", "loinc"} <= set(e)):
            raise MedgovError(f"{where}: entries[{i}]: needs org, local and loinc")
        if str(e["loinc"]) not in concepts:
            raise MedgovError(f"{where}: entries[{i}].loinc: {e['loinc']} is not a concept of loinc.yaml")
        out[(str(e["org"]), str(e["local"]))] = str(e["loinc"])
    return out


def _spellings(doc: Any, where: str) -> dict[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise MedgovError(f"{where}: expected a mapping")
    return doc


def _content_hash(term: "Terminology") -> str:
    doc = json.dumps([sorted((f"{o}|{c}", v) for (o, c), v in term.lab_map.items()), term.concepts,
                      term.units, term.specimens], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Terminology:
    """Concept maps and code systems, loaded once on the driver and shipped to executors."""

    lab_map: dict[tuple[str, str], str]  # (org or "*", local code) -> LOINC; site entries included
    concepts: dict[str, dict[str, Any]]
    units: dict[str, str]
    codes: dict[str, Any]
    specimens: dict[str, list[str]] = field(default_factory=dict)  # category -> local spellings
    _derived: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, site: str | Path | None = None) -> "Terminology":
        """The packaged maps, extended by `<site>/concept_maps/` (lab_items.yaml entries,
        units.yaml and specimens.yaml spellings); a malformed site file is a one-line error."""
        folder = Path(site) if site else None
        concepts = schema_file("concept_maps/loinc.yaml")["concepts"]
        lab_map = _lab_entries(schema_file("concept_maps/lab_items.yaml"), "lab_items.yaml", concepts)
        units = dict(schema_file("concept_maps/units.yaml"))
        specimens = {k: list(v) for k, v in schema_file("concept_maps/specimens.yaml").items()}
        if folder:
            where = str(folder / "concept_maps")
            lab_map |= _lab_entries(_site_map(folder, "lab_items.yaml") or {"entries": []},
                                    f"{where}/lab_items.yaml", concepts)
            units |= {str(k): str(v) for k, v in _spellings(_site_map(folder, "units.yaml"),
                                                             f"{where}/units.yaml").items()}
            for category, spelled in _spellings(_site_map(folder, "specimens.yaml"), f"{where}/specimens.yaml").items():
                if category not in specimens:
                    raise MedgovError(f"{where}/specimens.yaml: {category}: not a specimen category "
                                      f"({', '.join(specimens)})")
                specimens[category] += [str(s) for s in spelled]
        return cls(lab_map, concepts, units, schema_file("value_sets/codes.yaml"), specimens)

    @property
    def version(self) -> str:
        """A content hash of the maps in force: which mapping produced a row (computed once)."""
        return self.derived("version", _content_hash)

    def derived(self, name: str, build: Callable[["Terminology"], Any]) -> Any:
        """An object built from these maps once per process (e.g. the lab-item matcher)."""
        if name not in self._derived:
            self._derived[name] = build(self)
        return self._derived[name]

    def system(self, name: str) -> str:
        return self.codes["systems"][name]

    def concept(self, name: str) -> tuple[str, dict[str, Any]]:
        """(code, concept) of the LOINC concept called `name`."""
        code = loinc(name)
        return code, self.concepts[code]
