"""What the lake holds, summarised for people: `medgov report` and the end of `make demo`.

Reads the Delta tables through `deltalake` only (no Spark): fast and read-only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from deltalake import DeltaTable

from medgov.errors import MedgovError
from medgov.quality.corrections import corrected_by
from medgov.quality.results import reason_kind
from medgov.spec.lifecycle import BatchStage, DeliveryStatus
from medgov.spec.tables import BRONZE_TABLES, SILVER_TABLES
from medgov.storage import control, lineage
from medgov.storage.lake import Lake
from medgov.storage.gold import gold_tables

QUARANTINE_SHOWN = 40


def _count(uri: str) -> int | None:
    return DeltaTable(uri).to_pyarrow_dataset().count_rows() if DeltaTable.is_deltatable(uri) else None


def _failing_checks(lake: Lake) -> list[dict[str, Any]]:
    """Checks failing in the latest results, with how many batches and rows they fail on."""
    if not DeltaTable.is_deltatable(lake.quality_results):
        return []
    cols = ["layer", "suite", "expectation", "column", "severity", "success", "unexpected_count", "batch_key"]
    agg: dict[tuple, dict[str, Any]] = {}
    for r in DeltaTable(lake.quality_results).to_pyarrow_table(columns=cols).to_pylist():
        if r["success"]:
            continue
        k = (r["suite"], r["expectation"], r["column"] or "", r["severity"])
        a = agg.setdefault(k, {"suite": k[0], "expectation": k[1], "column": k[2], "severity": k[3],
                               "batches": set(), "rows": 0})
        a["batches"].add(r["batch_key"])
        a["rows"] += r["unexpected_count"] or 0
    out = [{**a, "batches": len(a["batches"])} for a in agg.values()]
    return sorted(out, key=lambda a: (a["severity"] != "blocking", -a["batches"], a["suite"], a["column"]))


def summary(lake_dir: str | Path) -> dict[str, Any]:
    """Batches, rows per table, quality score per layer, curated tables, report locations."""
    lake = Lake.at(lake_dir)
    if lake.is_local and not Path(lake.root).is_dir():
        raise MedgovError(f"lake folder not found: {lake_dir}")
    if not DeltaTable.is_deltatable(lake.deliveries):
        raise MedgovError(f"{lake_dir} holds no medgov lake yet: run `medgov run` first")
    latest = control.last_deliveries(lake)
    batches = control.batches(lake)
    rejected = {k: d["reason"] for k, d in latest.items() if d["status"] == DeliveryStatus.REJECTED}
    deferred = {k: d["reason"] for k, d in latest.items() if d["status"] == DeliveryStatus.DEFERRED}
    stages = Counter(b["stage"] for b in batches.values())

    quarantined: dict[tuple[str, str], int] = defaultdict(int)
    reasons: Counter[str] = Counter()
    by_batch: Counter[tuple[str, str, str, str]] = Counter()
    fixed: Counter[tuple[str, str, str, str]] = Counter()
    fixed_by: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    if DeltaTable.is_deltatable(lake.quarantine):
        q = DeltaTable(lake.quarantine).to_pyarrow_table(
            columns=["layer", "batch_key", "batch_id", "table", "record_id", "reasons"]).to_pylist()
        for r, by in zip(q, corrected_by(lake, q)):
            quarantined[(r["layer"], r["table"])] += 1
            for reason in r["reasons"]:
                kind = reason_kind(reason)[0]  # the detail may quote a value: kinds only
                reasons[kind] += 1
                by_batch[(r["batch_key"], r["layer"], r["table"], kind)] += 1
                if by:
                    fixed[(r["batch_key"], r["layer"], r["table"], kind)] += 1
                    fixed_by[(r["batch_key"], r["layer"], r["table"], kind)].add(by)
    held: Counter[tuple[str, str, str, str]] = Counter()
    if DeltaTable.is_deltatable(lake.holds):
        for r in DeltaTable(lake.holds).to_pyarrow_table(columns=["batch_key", "table", "reason", "status"]).to_pylist():
            held[(r["batch_key"], r["table"], r["reason"].split(" (", 1)[0], r["status"])] += 1
    tables = []
    for zone, names in (("bronze", BRONZE_TABLES), ("silver", SILVER_TABLES)):
        for t in names:
            tables.append({"layer": zone, "table": t, "rows": _count(lake.table(zone, t)) or 0,
                           "quarantined": quarantined.get((zone, t), 0)})

    quality: dict[str, dict[str, Any]] = {}
    if DeltaTable.is_deltatable(lake.quality_results):
        res = DeltaTable(lake.quality_results).to_pyarrow_table(columns=["layer", "severity", "success"])
        for layer in sorted(set(res.column("layer").to_pylist())):
            part = res.filter(pc.equal(res.column("layer"), layer))
            ok = sum(part.column("success").to_pylist())
            failed_blocking = sum(1 for s, sev in zip(part.column("success").to_pylist(), part.column("severity").to_pylist())
                                  if not s and sev == "blocking")
            quality[layer] = {"checks": part.num_rows, "passed": ok, "score": ok / part.num_rows if part.num_rows else None,
                              "blocking_failures": failed_blocking}
    failing = _failing_checks(lake)
    curated = []
    for name, uri, dt in gold_tables(lake):
        curated.append({"table": f"gold.{name}", "rows": dt.to_pyarrow_dataset().count_rows(),
                        "version": dt.version(), "path": uri})
    return {
        "batches": {"accepted": len(batches), "rejected": len(rejected), "deferred": len(deferred),
                    "by_stage": dict(stages)},
        "rejected": rejected,
        "deferred": deferred,
        "notes": {k: list(d["notes"]) for k, d in latest.items() if d["status"] == DeliveryStatus.ACCEPTED and d.get("notes")},
        "quarantine": [{"batch_key": b, "layer": layer, "table": t, "reason": kind, "rows": n,
                        "corrected": fixed[(b, layer, t, kind)],
                        "corrected_by": sorted(fixed_by[(b, layer, t, kind)])}
                       for (b, layer, t, kind), n in sorted(by_batch.items(), key=lambda kv: (-kv[1], kv[0]))],
        "held": [{"batch_key": b, "table": t, "reason": reason, "status": status, "rows": n}
                 for (b, t, reason, status), n in sorted(held.items())],
        "blocked": {k: b["blocking_failures"] for k, b in batches.items() if b["stage"] == BatchStage.BLOCKED},
        "tables": tables,
        "quarantine_reasons": dict(reasons.most_common(10)),
        "quality": quality,
        "failing_checks": failing,
        "curated": curated,
        "data_docs": lake.data_docs_index,
        "lineage": lineage.location(lake),
    }


def render(s: dict[str, Any]) -> None:
    """Print the summary as tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    b = s["batches"]
    stages = ", ".join(f"{k} {v}" for k, v in sorted(b["by_stage"].items()))
    console.print(f"[bold]Batches[/bold]: {b['accepted']} accepted ({stages}), {b['rejected']} rejected, "
                  f"{b['deferred']} deferred")
    for k, reason in s["rejected"].items():
        console.print(f"  [red]rejected[/red] {k}: {reason}")
    for k, reason in s["deferred"].items():
        console.print(f"  [yellow]deferred[/yellow] {k}: {reason}")
    for k, n in s["blocked"].items():
        console.print(f"  [yellow]blocked[/yellow] {k}: {n} blocking quality check(s) failed")
    for k, notes in s["notes"].items():
        for note in notes:
            console.print(f"  [cyan]note[/cyan] {k}: {note}")
    t = Table(title="Rows per table")
    for col in ("layer", "table", "rows", "quarantined"):
        t.add_column(col, justify="right" if col in ("rows", "quarantined") else "left")
    for r in s["tables"]:
        t.add_row(r["layer"], r["table"], str(r["rows"]), str(r["quarantined"]))
    console.print(t)
    if s["quarantine"]:
        shown = s["quarantine"][:QUARANTINE_SHOWN]
        qt = Table(title="Quarantined rows by batch, table and reason (rows: bronze/quarantine)")
        for col in ("batch", "layer", "table", "reason", "rows", "corrected (by)"):
            qt.add_column(col, justify="right" if col == "rows" else "left")
        for r in shown:
            by = f"{r['corrected']} ({', '.join(r['corrected_by'])})" if r["corrected"] else ""
            qt.add_row(r["batch_key"], r["layer"], r["table"], r["reason"], str(r["rows"]), by)
        console.print(qt)
        if len(s["quarantine"]) > len(shown):
            console.print(f"  … {len(s['quarantine']) - len(shown)} more batch/reason combinations in bronze/quarantine")
    if s["held"]:
        ht = Table(title="Held rows (kept out of gold until their patient or visit arrives; quality/holds)")
        for col in ("batch", "table", "reason", "status", "rows"):
            ht.add_column(col, justify="right" if col == "rows" else "left")
        for r in s["held"][:QUARANTINE_SHOWN]:
            ht.add_row(r["batch_key"], r["table"], r["reason"], r["status"], str(r["rows"]))
        console.print(ht)
    q = Table(title="Quality score per layer (share of checks passing)")
    for col in ("layer", "checks", "passed", "score", "blocking failures"):
        q.add_column(col)
    for layer, v in s["quality"].items():
        q.add_row(layer, str(v["checks"]), str(v["passed"]), f"{v['score']:.1%}", str(v["blocking_failures"]))
    console.print(q)
    if s["failing_checks"]:
        f = Table(title="Failing checks (latest results; details in the quality results table and Data Docs)")
        for col in ("severity", "suite", "check", "column", "batches", "rows"):
            f.add_column(col, justify="right" if col in ("batches", "rows") else "left")
        for r in s["failing_checks"]:
            f.add_row(r["severity"], r["suite"], r["expectation"], r["column"], str(r["batches"]), str(r["rows"]))
        console.print(f)
    c = Table(title="Curated datasets")
    for col in ("table", "rows", "version", "path"):
        c.add_column(col)
    for r in s["curated"]:
        c.add_row(r["table"], str(r["rows"]), str(r["version"]), r["path"])
    console.print(c)
    console.print(f"Quality report (GX Data Docs): {s['data_docs']}")
    console.print(f"Lineage events (OpenLineage JSON lines): {s['lineage']}")
