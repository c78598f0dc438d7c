"""One read-only look at a lake's bookkeeping tables, through `deltalake` (no Spark).

Everything the dashboard shows is computed from a `Snapshot` by the pure functions in
`queries`, so tests can build snapshots by hand and the server re-reads on each request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from deltalake import DeltaTable

from medgov.errors import MedgovError
from medgov.quality.corrections import corrected_by
from medgov.quality.results import reason_kind
from medgov.spec.site import SiteConfig, load_site
from medgov.storage import lineage
from medgov.storage.lake import Lake
from medgov.storage.gold import gold_tables
from medgov.storage.visible import read_visible

# quarantine rows are many; only these columns are read for the counts (not the record)
QUARANTINE_COUNT_COLUMNS = ["layer", "org_code", "batch_key", "batch_id", "table", "record_id", "reasons"]
HOLD_COLUMNS = ["org_code", "batch_key", "table", "reason", "status", "released_by"]


@dataclass
class Dataset:
    """A curated (gold) table as its Delta log describes it."""

    name: str
    uri: str
    version: int
    rows: int
    published_at: datetime | None
    operation: str | None


@dataclass
class Snapshot:
    lake: Lake
    site: SiteConfig = field(default_factory=load_site)  # institution names come from its registry
    results: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # with `corrected_by` (None: still open)
    holds: list[dict[str, Any]] = field(default_factory=list)
    lab_coding: list[dict[str, Any]] = field(default_factory=list)  # org_code, map_method, rows (visible lab results)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    lineage: list[dict[str, Any]] = field(default_factory=list)
    data_docs: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (suite, batch, run) -> page


def _rows(uri: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    if not DeltaTable.is_deltatable(uri):
        return []
    return DeltaTable(uri).to_pyarrow_table(columns=columns).to_pylist()


def _datasets(lake: Lake) -> list[Dataset]:
    out = []
    for name, uri, dt in gold_tables(lake):
        last = next(iter(dt.history(1)), {})
        ts = last.get("timestamp")
        out.append(Dataset(name, uri, dt.version(), dt.to_pyarrow_dataset().count_rows(),
                           datetime.fromtimestamp(ts / 1000).astimezone() if ts else None, last.get("operation")))
    return out


def _data_docs(lake: Lake) -> dict[tuple[str, str, str], str]:
    """Data Docs validation pages by (suite, batch key, run id), as paths under the site (a
    local lake's: an object-store lake keeps its GX project at `MEDGOV_GX_ROOT`)."""
    if not lake.is_local:
        return {}
    site = Path(lake.data_docs_index).parent
    root = site / "validations"
    out: dict[tuple[str, str, str], str] = {}
    if not root.is_dir():
        return out
    # validations/<layer>/<table>/<run name>/<run time>/<batch>.html (the suite's dots become folders)
    for page in root.glob("*/*/*/*/*.html"):
        suite, run_name = f"{page.parts[-5]}.{page.parts[-4]}", page.parts[-3]
        # run names are `<org>__<batch>__<run id>` (see quality.QualityRunner.validate)
        head, _, run_id = run_name.rpartition("__")
        org, _, batch = head.partition("__")
        out[(suite, f"{org}/{batch}", run_id)] = page.relative_to(site).as_posix()
    return out


def _lab_coding(lake: Lake) -> list[dict[str, Any]]:
    """Visible lab results per institution and mapping method (how their LOINC code was found)."""
    if not DeltaTable.is_deltatable(lake.silver("observation")):
        return []
    t = read_visible(lake, "silver", "observation", columns=["org_code", "category", "map_method"])
    t = t.filter(pc.equal(t.column("category"), "laboratory"))
    counts = t.group_by(["org_code", "map_method"]).aggregate([([], "count_all")]).to_pylist()
    return [{"org_code": r["org_code"], "map_method": r["map_method"], "rows": r["count_all"]} for r in counts]


def read(lake_dir: str | Path, site: SiteConfig | None = None) -> Snapshot:
    """Read what the dashboard needs from the lake at `lake_dir` (institution names from `site`)."""
    lake = Lake.at(lake_dir)
    if lake.is_local and not Path(lake.root).is_dir():
        raise MedgovError(f"lake folder not found: {lake_dir}")
    if not DeltaTable.is_deltatable(lake.deliveries):
        raise MedgovError(f"{lake_dir} holds no medgov lake yet: run `medgov run` first")
    quarantined = _rows(lake.quarantine, QUARANTINE_COUNT_COLUMNS)
    for q, by in zip(quarantined, corrected_by(lake, quarantined)):
        q["corrected_by"] = by
    return Snapshot(
        lake=lake,
        site=site or load_site(),
        results=_rows(lake.quality_results),
        examples=_rows(lake.check_examples),
        quarantine=quarantined,
        holds=_rows(lake.holds, HOLD_COLUMNS),
        lab_coding=_lab_coding(lake),
        deliveries=_rows(lake.deliveries),
        batches=_rows(lake.batches),
        datasets=_datasets(lake),
        lineage=lineage.events(lake),
        data_docs=_data_docs(lake),
    )


def quarantine_examples(lake: Lake, batch_key: str, layer: str, table: str, kind: str, limit: int
                        ) -> list[dict[str, Any]]:
    """Up to `limit` quarantined rows of one batch and table whose reasons include `kind`
    (records as stored: direct identifiers already `***`; the caller masks the rest)."""
    if not DeltaTable.is_deltatable(lake.quarantine):
        return []
    ds = DeltaTable(lake.quarantine).to_pyarrow_dataset()
    flt = (pc.field("batch_key") == batch_key) & (pc.field("layer") == layer) & (pc.field("table") == table)
    out = []
    for r in sorted(ds.to_table(filter=flt, columns=["file", "line", "reasons", "record"]).to_pylist(),
                    key=lambda r: (r["file"] or "", r["line"] or 0)):
        if any(reason_kind(x)[0] == kind for x in r["reasons"]):
            out.append(r)
            if len(out) == limit:
                break
    return out
