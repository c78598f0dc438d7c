"""Render the dashboard's pages (Jinja2 templates + Plotly charts) from a lake snapshot.

The same page paths serve both ways: `/<lang>/<page>.html`, `/<lang>/check/<id>.html`,
`/assets/…` and `/datadocs/…` (the GX Data Docs site), with relative links, so the static
export is the server's output written to files.
"""

from __future__ import annotations

import shutil
from functools import partial
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from medgov.dashboard import charts, queries
from medgov.dashboard.i18n import LANGUAGES, description_text, reason_text, translator
from medgov.dashboard.snapshot import Snapshot

PAGES = ("index", "checks", "quarantine", "terminology", "datasets", "catalogue", "audit")
STALE_HOURS = 36.0  # a daily feed missed once, plus margin: older datasets are flagged


def _env() -> Environment:
    env = Environment(loader=PackageLoader("medgov.dashboard", "templates"), autoescape=select_autoescape(["html"]))
    env.globals["pct"] = lambda v: "" if v is None else f"{v:.1%}"
    env.globals["when"] = lambda v: "" if v is None else v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return env


ENV = _env()


def _org_label(snap: Snapshot, lang: str, code: str) -> Markup:
    """An institution as the stewards know it: its registered name, with the code beside it."""
    name = snap.site.name(code, lang)
    if name is None:
        return Markup("<code>{}</code>").format(code)
    return Markup('<span class="org-name">{}</span> <code>{}</code>').format(name, code)


def _common(snap: Snapshot, lang: str, page: str, path: str, root: str, title: str) -> dict[str, Any]:
    return {"t": translator(lang), "lang": lang, "org_label": partial(_org_label, snap, lang),
            "reason": partial(reason_text, lang=lang), "describe": partial(description_text, lang=lang), "other_lang": "en" if lang == "zh" else "zh", "page": page,
            "path": path, "root": root, "page_title": title, "has_docs": Path(snap.lake.data_docs_index).is_file(),
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "layers": queries.LAYERS}


def render_page(snap: Snapshot, lang: str, page: str, last_n: int = 10) -> str:
    """One of the top-level pages (`PAGES`) in `lang`."""
    t = translator(lang)
    ctx = _common(snap, lang, page, f"{page}.html", "../", {"index": "nav_overview", "checks": "nav_checks",
                                                            "quarantine": "nav_quarantine",
                                                            "terminology": "nav_terminology",
                                                            "datasets": "nav_datasets",
                                                            "catalogue": "nav_catalogue", "audit": "nav_audit"}[page])
    if page == "index":
        o = queries.overview(snap, last_n)
        ctx |= {"kpi": o["kpi"], "changes": o["changes"],
                "orgs": sorted({c["org_code"] for c in o["cells"]}),
                "cells": {(c["org_code"], c["layer"]): c for c in o["cells"]},
                "trend_chart": charts.overview_trend(o["cells"], queries.LAYERS, t)}
    elif page == "checks":
        ctx |= queries.checks(snap)
    elif page == "quarantine":
        q = queries.quarantine(snap)
        ctx |= {"q": q, "chart": charts.quarantine_over_time(q["per_batch"], t)}
    elif page == "terminology":
        ctx |= {"term": queries.terminology(snap)}
    elif page == "datasets":
        lineage = queries.lineage(snap)
        ctx |= {"datasets": queries.freshness(snap), "lineage": lineage, "stale_hours": STALE_HOURS,
                "chart": charts.lineage_sankey(lineage, t) if lineage["edges"] else ""}
    elif page == "catalogue":
        from medgov.serving.catalog import catalogue
        from medgov.serving.clients import roles

        ctx |= {"entries": catalogue(snap.lake, roles(snap.site.folder))}
    elif page == "audit":
        ctx |= queries.audit_view(snap)
    return ENV.get_template(f"{page}.html").render(**ctx)


def render_check(snap: Snapshot, lang: str, cid: str) -> str | None:
    """The page of one check, or None when the lake has no such check."""
    detail = queries.check_detail(snap, cid)
    if detail is None:
        return None
    ctx = _common(snap, lang, "checks", f"check/{cid}.html", "../../", "nav_checks")
    ctx |= {"c": detail, "chart": charts.check_per_batch(detail["per_batch"], detail["threshold"], translator(lang))}
    return ENV.get_template("check.html").render(**ctx)


def render_institution(snap: Snapshot, lang: str, org: str, last_n: int = 10) -> str | None:
    """The page of one institution, or None when the lake has no results for it."""
    inst = queries.institution(snap, org, last_n)
    if inst is None:
        return None
    ctx = _common(snap, lang, "index", f"org/{org}.html", "../../", "institution")
    ctx |= {"inst": inst, "chart": charts.institution_grid(inst, translator(lang))}
    return ENV.get_template("institution.html").render(**ctx)


def asset(name: str) -> Path | None:
    """The file behind `/assets/<name>`: plotly.js from the plotly package, our stylesheet."""
    if name == "plotly.min.js":
        return Path(str(files("plotly").joinpath("package_data/plotly.min.js")))
    if name == "dashboard.css":
        return Path(str(files("medgov.dashboard").joinpath("static/dashboard.css")))
    return None


LANDING = """<!doctype html><html><head><meta charset="utf-8"><title>medgov</title>
<script>location.replace(((navigator.language || "zh").toLowerCase().startsWith("en") ? "en" : "zh") + "/index.html");</script>
</head><body><a href="zh/index.html">中文</a> · <a href="en/index.html">English</a></body></html>
"""


def export(snap: Snapshot, out: Path, last_n: int = 10) -> int:
    """Write the whole dashboard as a static site under `out`; the number of pages written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    for name in ("plotly.min.js", "dashboard.css"):
        shutil.copyfile(asset(name), out / "assets" / name)
    docs = Path(snap.lake.data_docs_index).parent
    if docs.is_dir():
        shutil.copytree(docs, out / "datadocs", dirs_exist_ok=True)
    pages = 0
    ids = [c["check_id"] for c in queries.checks(snap)["checks"]]
    for lang in LANGUAGES:
        (out / lang / "check").mkdir(parents=True, exist_ok=True)
        for page in PAGES:
            (out / lang / f"{page}.html").write_text(render_page(snap, lang, page, last_n), encoding="utf-8")
            pages += 1
        for cid in ids:
            (out / lang / "check" / f"{cid}.html").write_text(render_check(snap, lang, cid) or "", encoding="utf-8")
            pages += 1
        (out / lang / "org").mkdir(exist_ok=True)
        for org in queries.batch_order(snap):
            (out / lang / "org" / f"{org}.html").write_text(render_institution(snap, lang, org, last_n) or "",
                                                           encoding="utf-8")
            pages += 1
    (out / "index.html").write_text(LANDING, encoding="utf-8")
    return pages
