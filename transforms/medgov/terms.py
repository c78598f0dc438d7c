"""The steward's terminology worklist: local lab items the concept maps leave uncoded, per
institution by frequency with their ranked candidates; and the decisions that close them,
recorded in the site configuration (`<config>/concept_maps/lab_items.yaml`). The next run
sends the batches whose results a decision recodes back through the pipeline.

Reads bronze item columns (codes, names, specimens, units; no identifiers) with delta-rs.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import yaml
from deltalake import DeltaTable

from medgov.domain.lab_terms import LabTerms
from medgov.errors import MedgovError
from medgov.spec.terminology import Terminology
from medgov.storage.lake import Lake
from medgov.storage.visible import read_visible

_ITEM = ["_org_code", "item_code", "item_name", "specimen", "unit"]
SITE_MAP = Path("concept_maps") / "lab_items.yaml"
_HEADER = ("# Site lab-item decisions (`medgov terms accept`): (org, local code) -> LOINC. They win over\n"
           "# the packaged map; the next `medgov run` recodes the results already in silver.\n"
           "entries:\n")


@dataclass(frozen=True)
class WorkItem:
    """One local item left uncoded: where it comes from, how often, and what it might be."""

    org: str
    code: str | None
    name: str | None
    specimen: str | None
    unit: str | None
    rows: int
    candidates: list[dict[str, str]]  # ranked: loinc, display, and why it was not applied
    note: str | None

    def as_row(self) -> dict[str, Any]:
        top = self.candidates[0]["loinc"] if self.candidates else ""
        return {"org": self.org, "code": self.code, "name": self.name, "specimen": self.specimen, "unit": self.unit,
                "rows": self.rows, "suggested": top,
                "candidates": " | ".join(f"{c['loinc']} {c['display']}" for c in self.candidates[:3]),
                "note": self.note, "loinc": ""}


def worklist(lake_dir: str | Path, site: str | Path | None = None, org: str | None = None) -> list[WorkItem]:
    """Uncoded items of the lake's visible lab results under the maps in force, each
    institution's most frequent first."""
    from medgov.spec.site import load_site

    term = Terminology.load(load_site(site).folder)  # a missing --config folder is an error, as for `run`
    lake = Lake.at(lake_dir)
    if not DeltaTable.is_deltatable(lake.bronze("lab_result")):
        raise MedgovError(f"{lake_dir} holds no lab results yet: run `medgov run` first")
    labs = LabTerms.of(term)
    table = read_visible(lake, "bronze", "lab_result", columns=_ITEM)
    counts = table.group_by(_ITEM).aggregate([([], "count_all")]).to_pylist()
    out = []
    for r in counts:
        if org and r["_org_code"] != org:
            continue
        m = labs.map(r["_org_code"], r["item_code"], r["item_name"], r["specimen"], r["unit"])
        if m.loinc is not None:
            continue
        spec, unit = labs.specimen(r["specimen"]), labs.unit(r["unit"])
        cands = [{"loinc": c, "display": term.concepts[c]["display"], "issue": labs.fits(c, spec, unit) or ""}
                 for c in m.candidates]
        out.append(WorkItem(r["_org_code"], r["item_code"], r["item_name"], r["specimen"], r["unit"],
                            r["count_all"], cands, m.note))
    return sorted(out, key=lambda w: (w.org, -w.rows, w.code or ""))


def render(items: list[WorkItem], fmt: str) -> str:
    """The worklist as a table (rich), JSON, or CSV a steward fills in (`loinc` column) and
    hands back to `medgov terms accept --file`."""
    if fmt == "json":
        return json.dumps([asdict(i) for i in items], ensure_ascii=False, indent=2)
    if fmt == "csv":
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(WorkItem("", None, None, None, None, 0, [], None).as_row()))
        writer.writeheader()
        writer.writerows(i.as_row() for i in items)
        return buf.getvalue()
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Lab items left uncoded: {len(items)} (decide with `medgov terms accept ORG CODE LOINC`)")
    for col in ("org", "code", "name", "specimen", "unit", "rows", "candidates", "why not applied"):
        t.add_column(col, justify="right" if col == "rows" else "left", overflow="fold")
    for i in items:
        cands = "\n".join(f"{c['loinc']} {c['display'][:48]}" for c in i.candidates[:3]) or "-"
        t.add_row(i.org, i.code or "", i.name or "", i.specimen or "", i.unit or "", str(i.rows), cands, i.note or "")
    console = Console(record=True, width=200)
    with console.capture() as captured:
        console.print(t)
    return captured.get()


def _site_folder(site: str | Path | None) -> Path:
    from medgov.spec.site import load_site

    folder = load_site(site).folder
    if folder is None:
        raise MedgovError("decisions are recorded in the site configuration: pass --config DIR or set MEDGOV_CONFIG")
    return folder


def decisions(site: Path | None) -> list[dict[str, Any]]:
    """The decisions recorded in the site's lab_items.yaml, latest first."""
    if site is None or not (site / SITE_MAP).exists():
        return []
    entries = (yaml.safe_load((site / SITE_MAP).read_text(encoding="utf-8")) or {}).get("entries") or []
    return sorted(entries, key=lambda e: str(e.get("accepted_at") or ""), reverse=True)


def read_decisions(path: Path) -> list[tuple[str, str, str]]:
    """(org, code, LOINC) from a CSV with `org`, `code` and `loinc` columns (the worklist's
    CSV with `loinc` filled in); rows without a LOINC are skipped."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MedgovError(f"{path}: not a readable CSV ({type(exc).__name__})") from None
    if rows and not {"org", "code", "loinc"} <= set(rows[0]):
        raise MedgovError(f"{path}: needs the columns org, code and loinc")
    return [(r["org"].strip(), r["code"].strip(), r["loinc"].strip()) for r in rows if (r.get("loinc") or "").strip()]


def accept(decisions: Iterable[tuple[str, str, str]], site: str | Path | None = None,
           by: str | None = None) -> Path:
    """Record each (org, local code) -> LOINC decision in the site's lab_items.yaml (a later
    decision on the same item wins). Every decision is checked before any is written."""
    folder = _site_folder(site)
    concepts = Terminology.load(folder).concepts
    decisions = list(decisions)
    if not decisions:
        raise MedgovError("no decision to record")
    for org, code, loinc in decisions:
        if not re.fullmatch(r"[A-Z0-9]{6,22}", org):
            raise MedgovError(f"{org!r} is not an org code ([A-Z0-9]{{6,22}})")
        if not code:
            raise MedgovError(f"{org}: the local code is empty")
        if concepts.get(loinc, {}).get("category") != "laboratory":
            raise MedgovError(f"{loinc} is not a laboratory concept of loinc.yaml (see `medgov terms --lake L`)")
    path = folder / SITE_MAP
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    if not re.search(r"^entries:\s*$", text, re.MULTILINE):  # a hand-written flow list: rewrite it
        doc = yaml.safe_load(text) or {}
        text = _HEADER + "".join(f"  - {json.dumps(e, ensure_ascii=False)}\n" for e in doc.get("entries") or [])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for org, code, loinc in decisions:
        entry = {"org": org, "local": code, "loinc": loinc, "accepted_at": when} | ({"by": by} if by else {})
        text = text.rstrip("\n") + "\n" + f"  - {json.dumps(entry, ensure_ascii=False)}\n"
    path.write_text(text, encoding="utf-8")
    Terminology.load(folder)  # what was written reads back
    return path
