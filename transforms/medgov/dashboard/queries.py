"""The numbers behind each dashboard view, computed from a `Snapshot` (pure functions).

Batches are ordered within an institution by batch id, the same order the pipeline uses
for updates (a later batch id supersedes an earlier one).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

from medgov.dashboard.snapshot import Snapshot, quarantine_examples
from medgov.domain.masking import mask_record
from medgov.quality.results import reason_kind
from medgov.spec.checks import CATEGORIES, LAYERS, catalogue
from medgov.spec.lifecycle import BatchStage

# quality layer -> layer of the quarantine table holding the rows it quarantined
QUARANTINE_LAYER = {"ingest": "bronze", "normalize": "silver"}
EXAMPLES_SHOWN = 3
# quality layer -> zone whose table its `table` names (normalize names the bronze source of a
# silver table, so it is left out of the per-dataset quality beside the lineage graph)
# outputs that record about the data rather than carry it: left out of the lineage graph
NOT_DATA = ("quality/",)
ZONE_OF_LAYER = {"ingest": "bronze", "bronze": "bronze", "silver": "silver"}


def check_id(suite: str, expectation: str, column: str | None) -> str:
    """A stable, URL-safe name for one check (suite, expectation, column)."""
    raw = f"{suite}--{expectation}--{column or 'table'}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)


def status_of(rows: list[dict[str, Any]]) -> str:
    """`fail` if a blocking check failed, `warn` if only warnings failed, else `pass`."""
    if any(not r["success"] and r["severity"] == "blocking" for r in rows):
        return "fail"
    if any(not r["success"] for r in rows):
        return "warn"
    return "pass"


def _share(rows: list[dict[str, Any]]) -> float | None:
    return sum(1 for r in rows if r["success"]) / len(rows) if rows else None


def _contexts() -> dict[tuple[str, str, str | None], str]:
    """Kahn context (verification/validation) of each check, from the catalogue (data). A
    medgov row check's results name the column of each reason: (suite, check, None) is its key."""
    out: dict[tuple[str, str, str | None], str] = {}
    for c in catalogue():
        out[(c.suite, c.expectation, c.column)] = c.context
        out.setdefault((c.suite, c.expectation, None), c.context)
    return out


def _context(contexts: dict[tuple[str, str, str | None], str], suite: str, expectation: str,
             column: str | None) -> str:
    return contexts.get((suite, expectation, column)) or contexts.get((suite, expectation, None), "verification")


def batch_order(snap: Snapshot) -> dict[str, list[str]]:
    """Batch keys with quality results, per institution, oldest first."""
    per_org: dict[str, set[str]] = defaultdict(set)
    for r in snap.results:
        per_org[r["org_code"]].add(r["batch_key"])
    return {org: sorted(keys, key=lambda k: k.split("/", 1)[1]) for org, keys in sorted(per_org.items())}


def _by(rows: list[dict[str, Any]], *keys: str) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def overview(snap: Snapshot, last_n: int = 10) -> dict[str, Any]:
    """Per institution x layer: share of checks passing in the latest batch, status, and the
    share over the last `last_n` batches; KPIs; how each institution's checks changed between
    its two latest batches (`changes`)."""
    order = batch_order(snap)
    by_batch_layer = _by(snap.results, "batch_key", "layer")
    cells = []
    for org, keys in order.items():
        for layer in LAYERS:
            keys_here = [k for k in keys if (k, layer) in by_batch_layer][-last_n:]
            if not keys_here:
                continue
            latest = by_batch_layer[(keys_here[-1], layer)]
            cells.append({
                "org_code": org, "layer": layer, "batch_key": keys_here[-1], "checks": len(latest),
                "passed": sum(1 for r in latest if r["success"]), "share": _share(latest), "status": status_of(latest),
                "trend": [{"batch_key": k, "share": _share(by_batch_layer[(k, layer)]),
                           "status": status_of(by_batch_layer[(k, layer)])} for k in keys_here],
            })
    changes = _changes(order, _by(snap.results, "batch_key"))
    stages = Counter(b["stage"] for b in snap.batches)
    rejected = [d for d in latest_deliveries(snap).values() if d["status"] == "rejected"]
    return {
        "kpi": {"institutions": len({b["org_code"] for b in snap.batches} | {d["org_code"] for d in snap.deliveries}),
                "batches": len(snap.batches), "published": stages.get(BatchStage.PUBLISHED, 0),
                "blocked": stages.get(BatchStage.BLOCKED, 0), "rejected": len(rejected),
                "checks": len(snap.results), "passed": sum(1 for r in snap.results if r["success"]),
                "quarantined": len(snap.quarantine)},
        "cells": cells,
        "changes": changes,
    }


CHANGES = ("new", "persisting", "resolved")  # the order a steward reads them in


def _changes(order: dict[str, list[str]], by_batch: dict[tuple[Any, ...], list[dict[str, Any]]]
             ) -> list[dict[str, Any]]:
    """Per institution, the checks that changed between its two latest batches: `new` (failing
    now, passed or not run before), `persisting` (failing in both) and `resolved` (failing
    before, passing now). A check not run in the latest batch is not called resolved."""
    out = []
    for org, keys in order.items():
        if len(keys) < 2:
            continue
        before = {(r["suite"], r["expectation"], r["column"]): r for r in by_batch[(keys[-2],)]}
        now = {(r["suite"], r["expectation"], r["column"]): r for r in by_batch[(keys[-1],)]}
        for k, r in now.items():
            was = before.get(k)
            failed_before = was is not None and not was["success"]
            if r["success"] and not failed_before:
                continue
            change = "resolved" if r["success"] else "persisting" if failed_before else "new"
            out.append({"org_code": org, "batch_key": keys[-1], "previous": keys[-2], "change": change,
                        "check_id": check_id(*k), "suite": k[0], "expectation": k[1], "column": k[2],
                        "severity": r["severity"], "unexpected_count": r["unexpected_count"],
                        "unexpected_before": was["unexpected_count"] if was is not None else None})
    return sorted(out, key=lambda r: (CHANGES.index(r["change"]), r["severity"] != "blocking", r["org_code"],
                                      r["check_id"]))


def checks(snap: Snapshot) -> dict[str, Any]:
    """Every check with its metadata and outcome over batches; a Kahn category x context
    summary (in the manner of the OHDSI Data Quality Dashboard)."""
    contexts = _contexts()
    order = batch_order(snap)
    rank = {k: i for keys in order.values() for i, k in enumerate(keys)}
    out = []
    for (suite, expectation, column), rows in _by(snap.results, "suite", "expectation", "column").items():
        rows = sorted(rows, key=lambda r: (r["org_code"], rank.get(r["batch_key"], 0)))
        failing = [r for r in rows if not r["success"]]
        since = {}
        for org, org_rows in _by(rows, "org_code").items():
            streak = None
            for r in org_rows:  # oldest first: the start of the run of failures that reaches the latest
                streak = (streak or r["batch_key"]) if not r["success"] else None
            if streak:
                since[org[0]] = streak
        first = rows[0]
        out.append({
            "check_id": check_id(suite, expectation, column), "suite": suite, "layer": first["layer"],
            "table": first["table"], "expectation": expectation, "column": column,
            "description": first["description"], "category": first["category"], "severity": first["severity"],
            "context": _context(contexts, suite, expectation, column), "threshold": first["threshold"],
            "batches": len(rows), "failing_batches": len(failing),
            "unexpected": sum(r["unexpected_count"] or 0 for r in failing),
            "status": status_of([rows[-1]] + failing[-1:]) if failing else "pass", "failing_since": since,
        })
    out.sort(key=lambda c: (c["status"] == "pass", c["severity"] != "blocking", LAYERS.index(c["layer"])
                            if c["layer"] in LAYERS else 9, c["suite"], c["expectation"], c["column"] or ""))
    summary: dict[tuple[str, str], dict[str, int]] = {}
    for r in snap.results:
        ctx = _context(contexts, r["suite"], r["expectation"], r["column"])
        s = summary.setdefault((r["category"], ctx), {"pass": 0, "fail": 0})
        s["pass" if r["success"] else "fail"] += 1
    table = [{"category": cat, "context": ctx, **v, "total": v["pass"] + v["fail"],
              "share": v["pass"] / (v["pass"] + v["fail"])}
             for (cat, ctx), v in sorted(summary.items(), key=lambda kv: (CATEGORIES.index(kv[0][0])
                                                                          if kv[0][0] in CATEGORIES else 9, kv[0][1]))]
    return {"checks": out, "summary": table}


def check_detail(snap: Snapshot, cid: str) -> dict[str, Any] | None:
    """One check: its outcome per batch (with the Data Docs page), and masked examples of
    failing rows. None when no check has that id."""
    listed = next((c for c in checks(snap)["checks"] if c["check_id"] == cid), None)
    if listed is None:
        return None
    rows = [r for r in snap.results if check_id(r["suite"], r["expectation"], r["column"]) == cid]
    order = batch_order(snap)
    rank = {k: i for keys in order.values() for i, k in enumerate(keys)}
    per_batch = []
    for r in sorted(rows, key=lambda r: (r["org_code"], rank.get(r["batch_key"], 0))):
        per_batch.append({k: r[k] for k in ("org_code", "batch_key", "element_count", "unexpected_count",
                                             "unexpected_percent", "success")}
                         | {"observed": _observed(r["observed_value"]),
                            "data_docs": snap.data_docs.get((r["suite"], r["batch_key"], r["run_id"]))})
    return {**listed, "per_batch": per_batch, "examples": _examples(snap, listed, rows)}


def _observed(raw: str | None) -> str | None:
    """Observed values are JSON (numbers, lists, reason kinds): shown compactly."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)[:200]


def _examples(snap: Snapshot, check: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Masked example rows for the failing batches: GX checks from `check_examples`; ingest and
    normalize checks from the quarantine records of that reason kind."""
    failing = [r for r in rows if not r["success"]]
    out = []
    if check["layer"] in QUARANTINE_LAYER and check["table"]:
        for r in failing:
            kind = _observed(r["observed_value"])
            for q in quarantine_examples(snap.lake, r["batch_key"], QUARANTINE_LAYER[check["layer"]], r["table"],
                                         kind, EXAMPLES_SHOWN):
                out.append({"batch_key": r["batch_key"], "file": q["file"], "line": q["line"],
                            "values": mask_record(json.loads(q["record"] or "{}"))})
        return out
    keys = {r["batch_key"] for r in failing}
    for e in snap.examples:
        if e["batch_key"] in keys and check_id(e["suite"], e["expectation"], e["column"]) == check["check_id"]:
            out.append({"batch_key": e["batch_key"], "file": e["file"], "line": e["line"],
                        "values": mask_record(json.loads(e["values"]))})
    return sorted(out, key=lambda e: (e["batch_key"], e["file"] or "", e["line"] or 0))


def latest_deliveries(snap: Snapshot) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for d in sorted(snap.deliveries, key=lambda d: d["received_at"]):
        latest[d["batch_key"]] = d
    return latest


def quarantine(snap: Snapshot) -> dict[str, Any]:
    """Quarantined rows by institution, table and reason kind (open, and corrected by a later
    delivery), and per batch over time; held rows by reason and status; rejected delivery
    attempts with their reasons; notes on accepted deliveries."""
    totals: Counter[tuple[str, str, str, str]] = Counter()
    corrected: Counter[tuple[str, str, str, str]] = Counter()
    per_batch: Counter[tuple[str, str, str]] = Counter()
    for q in snap.quarantine:
        for reason in q["reasons"]:
            kind = reason_kind(reason)[0]  # the detail may quote a value: kinds only
            totals[(q["org_code"], q["layer"], q["table"], kind)] += 1
            per_batch[(q["org_code"], q["batch_key"], kind)] += 1
            if q.get("corrected_by"):
                corrected[(q["org_code"], q["layer"], q["table"], kind)] += 1
    held: Counter[tuple[str, str, str, str]] = Counter()
    for h in snap.holds:
        held[(h["org_code"], h["table"], h["reason"].split(" (", 1)[0], h["status"])] += 1
    latest = latest_deliveries(snap)
    rejected = []
    for d in sorted(snap.deliveries, key=lambda d: d["received_at"]):
        if d["status"] == "rejected":
            now = latest[d["batch_key"]]
            rejected.append({"batch_key": d["batch_key"], "org_code": d["org_code"], "received_at": d["received_at"],
                             "reason": d["reason"], "fixed": now["status"] == "accepted"})
    notes = [{"batch_key": k, "note": n} for k, d in sorted(latest.items()) if d["status"] == "accepted"
             for n in (d.get("notes") or [])]
    return {
        "by_reason": [{"org_code": o, "layer": layer, "table": t, "reason": k, "rows": n,
                       "corrected": corrected[(o, layer, t, k)], "open": n - corrected[(o, layer, t, k)]}
                      for (o, layer, t, k), n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))],
        "open": sum(1 for q in snap.quarantine if not q.get("corrected_by")),
        "held": [{"org_code": o, "table": t, "reason": r, "status": st, "rows": n}
                 for (o, t, r, st), n in sorted(held.items())],
        "held_now": sum(1 for h in snap.holds if h["status"] == "held"),
        "per_batch": [{"org_code": o, "batch_key": b, "reason": k, "rows": n}
                      for (o, b, k), n in sorted(per_batch.items(), key=lambda kv: (kv[0][1].split("/", 1)[1], kv[0]))],
        "rows": len(snap.quarantine),
        "rejected": rejected,
        "notes": notes,
    }


def freshness(snap: Snapshot, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each curated dataset: last publish, Delta version, rows, the batches it includes (those
    published) and those it waits for or leaves out."""
    now = now or datetime.now(timezone.utc)
    published = sorted(b["batch_key"] for b in snap.batches if b["stage"] == BatchStage.PUBLISHED)
    waiting = sorted((b["batch_key"], b["stage"]) for b in snap.batches if b["stage"] != BatchStage.PUBLISHED)
    out = []
    for d in snap.datasets:
        age = (now - d.published_at).total_seconds() / 3600 if d.published_at else None
        out.append({"name": d.name, "version": d.version, "rows": d.rows, "published_at": d.published_at,
                    "age_hours": age, "operation": d.operation, "batches": published,
                    "waiting": [{"batch_key": k, "stage": s} for k, s in waiting],
                    "institutions": sorted({k.split("/", 1)[0] for k in published})})
    return out


def _dataset_name(snap: Snapshot, namespace: str, name: str) -> str:
    """`bronze/lab_result` for a table of this lake; the path's last two parts otherwise."""
    root = snap.lake.root.rstrip("/")
    path = name if namespace == "file" else f"{namespace}{name}"
    if path.startswith(root + "/"):
        return path[len(root) + 1:]
    return "/".join(path.rstrip("/").split("/")[-2:])


def lineage(snap: Snapshot) -> dict[str, Any]:
    """Datasets and the jobs between them, from the latest COMPLETE event of each job, with
    each dataset's share of checks passing (GX layers; the latest batch of each institution)."""
    latest: dict[str, dict[str, Any]] = {}
    for e in snap.lineage:
        if e.get("eventType") == "COMPLETE":
            latest[e["job"]["name"]] = e
    edges = set()
    for job, e in latest.items():
        ins = [_dataset_name(snap, d["namespace"], d["name"]) for d in e.get("inputs", [])]
        for d in e.get("outputs", []):
            out = _dataset_name(snap, d["namespace"], d["name"])
            fields = (d.get("facets", {}).get("columnLineage") or {}).get("fields") or {}
            # column lineage names the inputs of this output; without it, every input of the job
            sources = sorted({_dataset_name(snap, f["namespace"], f["name"]) for v in fields.values()
                              for f in v.get("inputFields", [])}) or ins
            for src in sources:
                if src != out and not out.startswith(NOT_DATA) and not src.startswith(NOT_DATA):
                    edges.add((src, job, out))
    latest_per_table: dict[tuple[str, str, str], str] = {}
    for r in snap.results:
        zone = ZONE_OF_LAYER.get(r["layer"])
        if zone and r["table"]:
            k = (f"{zone}/{r['table']}", r["org_code"], r["layer"])
            latest_per_table[k] = max(latest_per_table.get(k, ""), r["batch_key"], key=lambda b: b.split("/", 1)[-1])
    quality: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in snap.results:
        zone = ZONE_OF_LAYER.get(r["layer"])
        if zone and r["table"]:
            name = f"{zone}/{r['table']}"
            if latest_per_table[(name, r["org_code"], r["layer"])] == r["batch_key"]:
                quality[name].append(r)
    nodes = sorted({n for i, _, o in edges for n in (i, o)})
    return {
        "nodes": [{"name": n, "share": _share(quality.get(n, [])), "status": status_of(quality[n])
                   if n in quality else None} for n in nodes],
        "edges": [{"source": i, "job": j, "target": o} for i, j, o in sorted(edges)],
        "events": len(snap.lineage),
    }


def institution(snap: Snapshot, org: str, last_n: int = 10) -> dict[str, Any] | None:
    """One institution: share of checks passing per table and batch (the last `last_n`), and
    the checks failing in its latest batch. None for an institution with no results."""
    keys = batch_order(snap).get(org)
    if not keys:
        return None
    keys = keys[-last_n:]
    by_table_batch = _by([r for r in snap.results if r["org_code"] == org and r["table"]], "table", "batch_key")
    tables = sorted({t for t, _ in by_table_batch})
    grid = [[_share(by_table_batch.get((t, k), [])) for k in keys] for t in tables]
    failing = [{"check_id": check_id(r["suite"], r["expectation"], r["column"]), **{k: r[k] for k in (
        "layer", "table", "suite", "expectation", "column", "severity", "unexpected_count", "element_count")}}
               for r in snap.results if r["batch_key"] == keys[-1] and not r["success"]]
    failing.sort(key=lambda r: (r["severity"] != "blocking", r["suite"], r["column"] or ""))
    return {"org_code": org, "batches": keys, "tables": tables, "grid": grid, "latest": keys[-1],
            "failing": failing}


def terminology(snap: Snapshot, worklist_rows: int = 50) -> dict[str, Any]:
    """Lab coding per institution (share coded, by method), the steward's worklist (most
    frequent uncoded items first) and the recent decisions of the site configuration."""
    from medgov.domain.lab_terms import UNMAPPED
    from medgov.terms import decisions, worklist

    per_org: dict[str, Counter[str]] = {}
    for r in snap.lab_coding:
        per_org.setdefault(r["org_code"], Counter())[r["map_method"] or UNMAPPED] += r["rows"]
    coverage = []
    for org, methods in sorted(per_org.items()):
        total = sum(methods.values())
        coverage.append({"org_code": org, "rows": total, "coded": total - methods[UNMAPPED],
                         "share": (total - methods[UNMAPPED]) / total if total else None,
                         "methods": dict(sorted(methods.items()))})
    items = worklist(snap.lake.root, snap.site.folder) if snap.lab_coding else []
    items = sorted(items, key=lambda w: -w.rows)
    return {"coverage": coverage, "worklist": [w.as_row() for w in items[:worklist_rows]],
            "worklist_total": len(items), "decisions": decisions(snap.site.folder)[:20]}


def audit_view(snap: Snapshot, latest: int = 200) -> dict[str, Any]:
    """The serving audit: the latest requests (newest first) and counts by endpoint and status."""
    from medgov.serving.audit import entries

    rows = entries(snap.lake)
    by = Counter((r["endpoint"], r["status"]) for r in rows)
    return {"requests": list(reversed(rows[-latest:])), "total_requests": len(rows),
            "by_status": [{"endpoint": e, "status": s, "n": n} for (e, s), n in sorted(by.items())]}
