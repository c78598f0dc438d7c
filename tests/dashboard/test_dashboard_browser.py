"""The steward dashboard end to end: the demo lake served by `medgov dashboard`, opened in
headless Chromium; each view shows the lake's numbers, no raw identifier, no request leaves
the machine; the static export works from files. Screenshots go to a temporary folder, or to
$MEDGOV_SCREENSHOTS (docs/img/ refreshes the README's)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakes import medgov

CHROMIUM = Path(os.environ.get("MEDGOV_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# the README's screenshots are refreshed on demand (MEDGOV_SCREENSHOTS=docs/img); a test run
# otherwise leaves the checkout as it found it
SHOTS = Path(os.environ.get("MEDGOV_SCREENSHOTS") or Path(os.environ.get("TMPDIR", "/tmp")) / "medgov-screenshots")

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed: `apt-get install chromium` (what .ci/run does) runs this test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright client not installed (make install)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def server(demo):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "medgov.cli", "dashboard", "--lake", str(demo.lake),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/zh/index.html", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"dashboard exited: {proc.stderr.read()[-1000:]}")
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


class Visit:
    """A browser page that refuses any request off this machine and keeps every HTML it shows."""

    def __init__(self, browser, locale: str):
        self.context = browser.new_context(locale=locale, viewport={"width": 1300, "height": 900})
        self.page = self.context.new_page()
        self.outside: list[str] = []
        self.html: dict[str, str] = {}
        self.page.route(re.compile(r"^(?!(http://127\.0\.0\.1|file://|data:)).*"), self._refuse)

    def _refuse(self, route):
        self.outside.append(route.request.url)
        route.abort()

    def open(self, url: str):
        self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        self.html[self.page.url] = self.page.content()
        return self.page

    def cell(self, selector: str) -> str:
        return self.page.locator(selector).inner_text().strip()


def _results(lake: Path) -> list[dict]:
    return DeltaTable(str(lake / "quality" / "quality_results")).to_pyarrow_table().to_pylist()


def _latest_share(results: list[dict], org: str, layer: str) -> str:
    """Share passing in the institution's latest batch of this layer, as the page prints it."""
    keys = sorted({r["batch_key"] for r in results if r["org_code"] == org and r["layer"] == layer},
                  key=lambda k: k.split("/", 1)[1])
    rows = [r for r in results if r["batch_key"] == keys[-1] and r["layer"] == layer]
    return f"{sum(r['success'] for r in rows) / len(rows):.1%} ({sum(r['success'] for r in rows)}/{len(rows)})"


def test_each_view_shows_the_lakes_numbers_and_no_identifier(demo, server, browser):
    from medgov.report import summary

    SHOTS.mkdir(parents=True, exist_ok=True)
    s = summary(demo.lake)
    results = _results(demo.lake)
    v = Visit(browser, "zh-CN")

    # the browser's language picks the page language
    page = v.open(server + "/")
    assert page.url.endswith("/zh/index.html") and "总览" in v.cell("header nav")
    kpi = {k: v.cell(f'[data-kpi="{k}"] .v') for k in ("batches", "published", "rejected", "quarantined_rows")}
    quarantined = DeltaTable(str(demo.lake / "bronze" / "quarantine")).to_pyarrow_dataset().count_rows()
    assert kpi == {"batches": str(s["batches"]["accepted"]), "published": str(s["batches"]["by_stage"]["published"]),
                   "rejected": str(s["batches"]["rejected"]), "quarantined_rows": str(quarantined)}
    orgs = sorted({r["org_code"] for r in results})
    for org in orgs:
        for layer in ("ingest", "bronze", "silver"):
            shown = v.cell(f'#overview-cells td[data-org="{org}"][data-layer="{layer}"]')
            assert shown == _latest_share(results, org, layer), (org, layer)
    assert page.locator("#overview-trend .scatterlayer .trace").count() >= len(orgs)  # plotly drew offline
    # what changed between each institution's two latest batches: new, persisting, resolved
    from medgov.dashboard.queries import overview
    from medgov.dashboard.snapshot import read

    changes = overview(read(demo.lake))["changes"]
    assert page.locator("#changes tr.change-new, #changes tr.change-persisting, #changes tr.change-resolved"
                        ).count() == len(changes)
    for kind in ("new", "persisting", "resolved"):
        assert page.locator(f"#changes tr.change-{kind}").count() == sum(c["change"] == kind for c in changes)
    page.screenshot(path=str(SHOTS / "dashboard-overview.png"), full_page=True)

    # an institution's page: share per table and batch, and what fails in its latest batch
    org = orgs[0]
    page.click(f'#overview-cells a:has-text("{org}")')
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"/zh/org/{org}.html")
    latest = sorted({r["batch_key"] for r in results if r["org_code"] == org}, key=lambda k: k.split("/", 1)[1])[-1]
    failing_latest = [r for r in results if r["batch_key"] == latest and not r["success"]]
    assert max(page.locator("#institution-failing tr").count() - 1, 0) == len(failing_latest)
    assert page.locator("#institution-grid .hm, #institution-grid .heatmaplayer").count() >= 1
    v.html[page.url] = page.content()
    page.screenshot(path=str(SHOTS / "dashboard-institution.png"), full_page=True)
    page = v.open(server + "/zh/index.html")

    # English by the switch; the checks page lists every check once, failing ones first
    page.click("#switch-language")
    assert page.url.endswith("/en/index.html") and "Overview" in v.cell("header nav")
    page = v.open(server + "/en/checks.html")
    checks = {(r["suite"], r["expectation"], r["column"]) for r in results}
    assert page.locator("#checks tr[data-check]").count() == len(checks)
    failing = {(r["suite"], r["expectation"], r["column"]) for r in results if not r["success"]}
    statuses = page.locator("#checks tr[data-check] td:first-child").all_inner_texts()
    assert sum(1 for x in statuses if x != "Pass") == len(failing)
    assert statuses[:len(failing)] == [x for x in statuses if x != "Pass"]
    by_cat = defaultdict(int)
    for r in results:
        by_cat[r["category"]] += 1
    for cat, n in by_cat.items():  # verification + validation rows of each Kahn category
        totals = page.locator(f'#category-summary tr[data-category="{cat}"] td:nth-child(5)').all_inner_texts()
        assert sum(int(x) for x in totals) == n, cat

    # a failing GX check: outcome per batch, Data Docs link, masked examples with file and line
    gx_failing = sorted(k for k in failing if k[0].startswith(("bronze.", "silver.")))
    assert gx_failing, "the demo sample has failing GX checks (invalid identity numbers)"
    suite, expectation, column = gx_failing[0]
    from medgov.dashboard.queries import check_id

    page = v.open(f"{server}/en/check/{check_id(suite, expectation, column)}.html")
    per_batch = [r for r in results if (r["suite"], r["expectation"], r["column"]) == (suite, expectation, column)]
    assert page.locator("#per-batch tr[data-batch]").count() == len(per_batch)
    docs = page.locator('#per-batch a:has-text("open")')
    assert docs.count() == len(per_batch)
    examples = page.locator("#examples tr").count() - 1
    bad_batches = sum(1 for r in per_batch if not r["success"])
    assert bad_batches <= examples <= 3 * bad_batches
    page.screenshot(path=str(SHOTS / "dashboard-check.png"), full_page=True)
    href = docs.first.get_attribute("href")
    ours = list(v.outside)
    page = v.open(urllib.parse.urljoin(page.url, href))
    assert suite in page.content() and "404" not in page.title()  # the GX page of this validation, from the lake
    v.outside = ours  # GX's own Data Docs templates reference CDNs (they render unstyled offline)

    # quarantine: totals by reason add up to the quarantine table; rejected batches with reasons
    page = v.open(server + "/en/quarantine.html")
    assert v.cell('[data-kpi="quarantined_rows"] .v') == str(quarantined)
    for key, reason in s["rejected"].items():
        row = v.cell(f'#rejected tr:has-text("{key}")')
        assert reason[:40] in row
    held = sum(1 for h in DeltaTable(str(demo.lake / "quality" / "holds")).to_pyarrow_table().to_pylist()
               if h["status"] == "held") if (demo.lake / "quality" / "holds").is_dir() else 0
    assert v.cell('[data-kpi="held_rows"] .v') == str(held)
    page.screenshot(path=str(SHOTS / "dashboard-quarantine.png"), full_page=True)

    # terminology: lab results coded per institution, as silver holds them
    page = v.open(server + "/en/terminology.html")
    labs = [o for o in DeltaTable(str(demo.lake / "silver" / "observation")).to_pyarrow_table(
        columns=["org_code", "category", "map_method"]).to_pylist() if o["category"] == "laboratory"]
    assert page.locator("#lab-coding tr[data-org]").count() == len({o["org_code"] for o in labs})
    for org in {o["org_code"] for o in labs}:
        mine = [o for o in labs if o["org_code"] == org]
        coded = sum(1 for o in mine if o["map_method"] != "unmapped")
        cells = page.locator(f'#lab-coding tr[data-org="{org}"] td').all_inner_texts()
        assert cells[1:4] == [str(len(mine)), str(coded), f"{coded / len(mine):.1%}"], org
    page.screenshot(path=str(SHOTS / "dashboard-terminology.png"), full_page=True)

    # freshness: version, rows and included batches from the Delta log; the lineage graph
    page = v.open(server + "/en/datasets.html")
    from medgov.spec.datasets import datasets

    published = sorted(k for k, b in _batches(demo.lake).items() if b == "published")
    for d in datasets():  # every declared dataset, each with its own version and rows
        gold = DeltaTable(str(demo.lake / "gold" / d.name))
        row = page.locator(f'#datasets tr[data-dataset="{d.name}"] td')
        assert row.nth(3).inner_text() == str(gold.version()), d.name
        assert row.nth(4).inner_text() == str(gold.to_pyarrow_dataset().count_rows()), d.name
        assert row.nth(5).inner_text().split() == published, d.name
        assert f"gold/{d.name}" in page.content(), d.name  # in the lineage graph too
    assert page.locator("#lineage-sankey .sankey-node").count() >= 10  # landing, bronze, silver, gold
    assert "landing/" in page.content()
    page.screenshot(path=str(SHOTS / "dashboard-datasets.png"), full_page=True)

    assert not v.outside, f"requests left the machine: {v.outside[:3]}"
    _assert_no_identifier(demo, v.html)


def _batches(lake: Path) -> dict[str, str]:
    return {r["batch_key"]: r["stage"] for r in DeltaTable(str(lake / "control" / "batches")).to_pyarrow_table().to_pylist()}


def _assert_no_identifier(demo, pages: dict[str, str]) -> None:
    identifiers = {i for i in demo.generated.identifiers if len(i) >= 4}
    assert pages and identifiers
    for where, text in pages.items():
        leaked = [i for i in identifiers if i in text]
        assert not leaked, f"{where} shows a raw identifier"


def test_static_export_works_offline_from_files(demo, browser, tmp_path):
    out = tmp_path / "site"
    proc = medgov("dashboard", "--lake", str(demo.lake), "--export", str(out))
    assert "pages written" in proc.stdout
    pages = {str(p): p.read_text(encoding="utf-8") for p in out.rglob("*.html") if "datadocs" not in p.parts}
    assert len(pages) > 2 * 4
    _assert_no_identifier(demo, pages)
    v = Visit(browser, "en-US")
    page = v.open((out / "index.html").as_uri())
    page.wait_for_url(re.compile(r".*/en/index\.html$"))
    page.wait_for_load_state("networkidle")
    assert page.locator("#overview-trend .scatterlayer .trace").count() >= 1
    page = v.open((out / "zh" / "checks.html").as_uri())
    page.locator("#checks a").first.click()
    page.wait_for_load_state("networkidle")
    assert "/zh/check/" in page.url and page.locator("#per-batch").count() == 1
    assert not v.outside, f"requests left the machine: {v.outside[:3]}"


def test_dashboard_without_a_lake_is_one_line_error(tmp_path):
    proc = medgov("dashboard", "--lake", str(tmp_path / "none"), "--export", str(tmp_path / "x"), check=False)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "lake folder not found" in proc.stderr
    proc = medgov("dashboard", "--lake", str(tmp_path), "--lang", "fr", check=False)
    assert proc.returncode == 1 and "--lang must be zh or en" in proc.stderr
