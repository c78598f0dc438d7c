"""A ViewDefinition over the lake: the silver table of its resource type (complete batches
only, as `storage.visible` defines them), rows to Delta, Parquet or CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medgov.errors import MedgovError
from medgov.spec.tables import SILVER_RESOURCES
from medgov.storage.commits import sql_in
from medgov.storage.lake import Lake
from medgov.storage.visible import visible_batches


def silver_table_of(resource_type: str) -> str:
    """The silver table holding resources of `resource_type`."""
    for t in SILVER_RESOURCES:
        if t.resource_type == resource_type:
            return t.name
    known = ", ".join(t.resource_type for t in SILVER_RESOURCES)
    raise MedgovError(f"the lake holds no {resource_type} resources (it holds {known})")


def run_on_lake(view: dict[str, Any], lake_dir: str, table: str | None = None, out: Path | None = None,
                limit: int = 20) -> tuple[int, list[dict[str, Any]]]:
    """Run `view` over a silver table of the lake; (rows, the first `limit` rows), the rows
    written to `out` when given (`.parquet`, `.csv`, else a Delta table)."""
    from medgov.storage.context import make_context
    from medgov.views.runner import run_view

    lake = Lake.at(lake_dir)
    if lake.is_local and not Path(lake.root).is_dir():
        raise MedgovError(f"lake folder not found: {lake_dir}")
    name = (table or f"silver/{silver_table_of(view['resource'])}").removeprefix("silver/")
    ctx = make_context(lake)
    uri = lake.silver(name)
    if not ctx.store.exists(uri):
        raise MedgovError(f"no table silver/{name} in {lake_dir}")
    batches = visible_batches(lake, "silver")
    resources = ctx.store.read(uri, sql_in("batch_key", batches) if batches else "FALSE").select(
        "resource_json")
    rows = run_view(view, resources, "resource_json").cache()
    n = rows.count()
    if out is not None:
        _write(ctx, rows, Path(out))
    shown = [r.asDict(recursive=True) for r in rows.limit(limit).collect()]
    rows.unpersist()
    return n, shown


def _write(ctx: Any, rows: Any, out: Path) -> None:
    if out.suffix in (".parquet", ".csv"):
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        data = rows.toArrow()
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            pq.write_table(data, out)
        else:
            pacsv.write_csv(data, out)
        return
    ctx.store.replace(str(out.resolve()), rows, "true", description="rows of a SQL on FHIR view")
