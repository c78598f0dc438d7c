"""Terminology translation of local lab items to LOINC (医学术语转换), pure Python.

An item is looked up by `(org, local code)` first (an institution's own entry is the
steward's decision; a packaged entry for every institution applies only where specimen and
unit agree), then by its name in the synonym dictionary of `concept_maps/loinc.yaml`. A
concept is applied automatically only when the name matches it and the item's specimen and
unit agree with it and with no other: urine creatinine never becomes serum creatinine, a
mass-concentration code never carries µmol/L. Anything else (a code that only reads as an
abbreviation included) goes to the steward's worklist with its ranked candidates.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

# blanks and punctuation, full- and half-width, are not part of a name
_NOISE = re.compile(r"[\s\-_·•・.,:;'\"/\\|()\[\]{}<>（）【】，。：；、‐–—]+")
_BRACKETED = re.compile(r"[(（\[【][^)）\]】]*[)）\]】]")
# units a result may lack without contradicting its concept (a ratio, pH, INR, a presence)
DIMENSIONLESS = frozenset({"1", "[pH]", "{INR}"})

SITE, CODE, NAME, UNMAPPED = "site-map", "code-map", "name+specimen+unit", "unmapped"
# how much each method is trusted: a steward's decision, a packaged code consistent with
# specimen and unit, a unique name match with the specimen stated or not
CONFIDENCE = {SITE: 1.0, CODE: 0.95, NAME: 0.9}
NAME_WITHOUT_SPECIMEN = 0.8


def name_key(text: str | None) -> str:
    """A name as compared: full-width -> half-width (NFKC), lower case, no blanks or punctuation."""
    if not text:
        return ""
    return _NOISE.sub("", unicodedata.normalize("NFKC", text).lower())


def _keys(text: str | None) -> list[str]:
    """The name's key, then its key without bracketed parts (`肌酐(酶法)` -> `肌酐`)."""
    keys = [name_key(text)]
    if text and _BRACKETED.search(text):
        keys.append(name_key(_BRACKETED.sub("", text)))
    return [k for k in dict.fromkeys(keys) if k]


@dataclass(frozen=True)
class LabMapping:
    """The LOINC code of one local item (None when it is left to the steward), how it was
    found, how far it is trusted, and otherwise the candidates and why none was applied."""

    loinc: str | None
    method: str
    confidence: float | None = None
    candidates: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class LabTerms:
    """The lookup tables, built once from the concept maps and shipped to the executors."""

    codes: dict[tuple[str, str], str]  # (org or "*", local code) -> LOINC
    concepts: dict[str, dict[str, Any]]
    units: dict[str, str]  # local unit spelling -> UCUM
    specimens: dict[str, str]  # specimen key -> category
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name key -> LOINC codes
    _memo: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, term: Any) -> "LabTerms":
        """From a `medgov.spec.terminology.Terminology` (site extensions included)."""
        return cls.build(term.lab_map, term.concepts, term.units, term.specimens)

    @classmethod
    def build(cls, codes: dict[tuple[str, str], str], concepts: dict[str, dict[str, Any]], units: dict[str, str],
              specimens: dict[str, list[str]]) -> "LabTerms":
        synonyms: dict[str, list[str]] = {}
        for code, c in concepts.items():
            if c.get("category") != "laboratory":
                continue
            for s in [c["display"], *c.get("synonyms", [])]:
                # a synonym as written, never without its brackets: `FBG(凝血)` is not `FBG`
                key = name_key(str(s))
                if key and code not in synonyms.setdefault(key, []):
                    synonyms[key].append(code)
        spec = {name_key(s): cat for cat, spellings in specimens.items() for s in spellings}
        return cls(codes, concepts, {name_key(k): v for k, v in units.items()} | {k: v for k, v in units.items()},
                   spec, {k: tuple(v) for k, v in synonyms.items()})

    def unit(self, spelled: str | None) -> str | None:
        """The UCUM form of a local unit spelling (as written when not in the table)."""
        if not spelled or not spelled.strip():
            return None
        s = unicodedata.normalize("NFKC", spelled).strip()
        return self.units.get(s) or self.units.get(name_key(s)) or s

    def specimen(self, spelled: str | None) -> str | None:
        """The category of a local specimen; '?' when written but not recognised; None when absent."""
        if not spelled or not spelled.strip():
            return None
        for key in _keys(spelled):
            if key in self.specimens:
                return self.specimens[key]
        return "?"

    def specimen_issue(self, code: str, specimen: str | None) -> str | None:
        """None when the item's specimen category agrees with concept `code` (or is not stated)."""
        allowed = self.concepts[code].get("specimen", ())
        if specimen == "?":
            return "specimen not recognised"
        if specimen is not None and specimen not in allowed:
            return f"specimen {specimen} is not the concept's ({', '.join(allowed)})"
        return None

    def unit_issue(self, code: str, unit: str | None) -> str | None:
        """None when the item's UCUM unit is the concept's or converts to it; a missing unit
        agrees only with a dimensionless concept (a number without a unit proves nothing)."""
        c = self.concepts[code]
        accepted = {c["unit"], *c.get("convert", {})}
        if unit is None:
            return None if c["unit"] in DIMENSIONLESS else "no unit given"
        if unit not in accepted:
            return f"unit {unit} is not one of the concept's ({', '.join(sorted(accepted))})"
        return None

    def fits(self, code: str, specimen: str | None, unit: str | None) -> str | None:
        """None when specimen and unit agree with concept `code`, else what disagrees."""
        return self.specimen_issue(code, specimen) or self.unit_issue(code, unit)

    def candidates(self, code: str | None, name: str | None) -> tuple[list[str], bool]:
        """Concepts whose synonyms hold the item's name, else its code read as an
        abbreviation; and whether it was the name that matched."""
        for text, by_name in ((name, True), (code, False)):
            for key in _keys(text):
                if key in self.synonyms:
                    return list(self.synonyms[key]), by_name
        return [], False

    def map(self, org: str, code: str | None, name: str | None, specimen: str | None,
            unit: str | None) -> LabMapping:
        """The mapping of one local item (memoised: an institution repeats its items)."""
        key = (org, code, name, specimen, unit)
        if key not in self._memo:
            self._memo[key] = self._map(org, code, name, self.specimen(specimen), self.unit(unit))
        return self._memo[key]

    def _map(self, org: str, code: str | None, name: str | None, specimen: str | None,
             unit: str | None) -> LabMapping:
        if code and (org, code) in self.codes:
            return LabMapping(self.codes[(org, code)], SITE, CONFIDENCE[SITE])
        generic = self.codes.get(("*", code)) if code else None
        if generic and self.fits(generic, specimen, unit) is None:
            return LabMapping(generic, CODE, CONFIDENCE[CODE])
        found, by_name = self.candidates(code, name)
        fitting = [c for c in found if self.fits(c, specimen, unit) is None]
        if len(fitting) > 1 and unit is not None:
            # a molar and a mass concept both accept mg/dL (one by conversion): the unit's own
            # property decides, as LOINC does
            native = [c for c in fitting if self.concepts[c]["unit"] == unit]
            fitting = native if len(native) == 1 else fitting
        if len(fitting) == 1 and by_name:
            return LabMapping(fitting[0], NAME, CONFIDENCE[NAME] if specimen else NAME_WITHOUT_SPECIMEN)
        ranked = tuple(sorted(found, key=lambda c: (c not in fitting, self.specimen_issue(c, specimen) is not None,
                                                    self.unit_issue(c, unit) is not None, found.index(c))))
        if not found:
            note = "no concept has this name"
        elif not by_name and fitting:
            note = "only the code reads as an abbreviation of a concept; the name does not confirm it"
        elif not fitting:
            note = "; ".join(f"{c}: {self.fits(c, specimen, unit)}" for c in ranked[:3])
        else:
            note = f"{len(fitting)} concepts fit name, specimen and unit"
        return LabMapping(None, UNMAPPED, None, ranked, note)


def lab_terms(term: Any) -> LabTerms:
    """The matcher of a Terminology, built once per process."""
    return term.derived("lab_terms", LabTerms.of)
