"""The data-asset catalogue (数据资产目录): what each curated dataset is, how it is defined,
what its columns mean and how sensitive each is (GB/T 39725 category and level), how many
persons it holds from which institutions over which dates, how fresh it is, and which roles
may read it. Read from the dataset declarations and the gold tables' Delta metadata and
columns (delta-rs); counts of persons are not disclosure-controlled here: the catalogue
shows a dataset's size, which is public within the platform."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from deltalake import DeltaTable

from medgov.serving.clients import Role
from medgov.spec.datasets import Dataset, datasets
from medgov.storage.lake import Lake


def _published(lake: Lake, d: Dataset) -> dict[str, Any] | None:
    uri = lake.gold(d.name)
    if not DeltaTable.is_deltatable(uri):
        return None
    dt = DeltaTable(uri)
    wanted = [c for c in ("patient_key", "source_institutions", "first_qualifying_date") if c in d.columns]
    data = dt.to_pyarrow_dataset().to_table(columns=wanted, use_threads=False)
    last = dt.history(1)[0]
    out: dict[str, Any] = {"version": dt.version(), "persons": data.num_rows,
                           "updated": datetime.fromtimestamp(last["timestamp"] / 1000, timezone.utc).isoformat()}
    if "source_institutions" in wanted:
        out["institutions"] = sorted({o for row in data.column("source_institutions").to_pylist() for o in row or []})
    if "first_qualifying_date" in wanted:
        days = [d for d in data.column("first_qualifying_date").to_pylist() if d is not None]
        out["date_coverage"] = {"from": min(days).isoformat(), "to": max(days).isoformat()} if days else None
    return out


def quality_score(lake: Lake, d: Dataset) -> dict[str, Any] | None:
    """The share of silver checks passing on the tables the dataset's views read, over the
    batches published (each batch's latest run), from `quality/quality_results`."""
    from medgov.spec.tables import SILVER_RESOURCES
    from medgov.storage import control

    uri = lake.quality_results
    if not DeltaTable.is_deltatable(uri):
        return None
    tables = {t.name for t in SILVER_RESOURCES if t.resource_type in {v["resource"] for v in d.views.values()}}
    published = {k for k, b in control.batches(lake).items() if b["stage"] == "published"}
    rows = DeltaTable(uri).to_pyarrow_dataset().to_table(
        columns=["batch_key", "layer", "table", "suite", "expectation", "column", "success", "validated_at"],
        use_threads=False).to_pylist()
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        if r["layer"] == "silver" and r["table"] in tables and r["batch_key"] in published:
            key = (r["batch_key"], r["suite"], r["expectation"], r["column"])
            if key not in latest or r["validated_at"] > latest[key]["validated_at"]:
                latest[key] = r
    if not latest:
        return None
    passed = sum(1 for r in latest.values() if r["success"])
    return {"share_passing": round(passed / len(latest), 4), "checks": len(latest), "tables": sorted(tables)}


def entry(lake: Lake, d: Dataset, roles: dict[str, Role]) -> dict[str, Any]:
    """One dataset's catalogue entry."""
    return {
        "name": d.name, "title": d.title, "description": d.description, "sources": list(d.sources),
        "key": d.key, "views": sorted(d.views), "depends_on": list(d.depends_on),
        "columns": [{"name": n, "type": str(c["type"]), "meaning": c.get("comment", ""),
                     "category": c.get("category"), "level": c.get("level"), "from": list(c.get("from") or [])}
                    for n, c in d.columns.items()],
        "roles": sorted(r for r, role in roles.items() if d.name in role.datasets),
        "published": _published(lake, d),
        "quality": quality_score(lake, d),
    }


def catalogue(lake: Lake, roles: dict[str, Role], only: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Every declared dataset's entry (those in `only` when given)."""
    return [entry(lake, d, roles) for d in datasets() if only is None or d.name in only]
