"""The dashboard's Catalogue and Serving audit pages, rendered from a small published lake
and its audit (no browser: `tests/dashboard/test_dashboard_browser.py` drives the others)."""

from __future__ import annotations

import re

import pytest

from medgov.dashboard.site import render_page
from medgov.dashboard.snapshot import Snapshot
from medgov.serving.feasibility import Caller, Refused, answer
from medgov.spec.site import ServingPolicy, load_site

POLICY = ServingPolicy(min_cell=10, rounding=5, suppress_zero=False, max_cells=1000, queries_per_day=100,
                       differencing_window_days=30, differencing_lookback=50)


def _cells(html: str, selector_id: str) -> list[list[str]]:
    table = html.split(f'id="{selector_id}"', 1)[1].split("</table>", 1)[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in table.split("<tr")[2:]]


def test_the_catalogue_page_shows_each_dataset_with_its_columns_and_levels(lake, site_folder):
    html = render_page(Snapshot(lake=lake, site=load_site(site_folder)), "en", "catalogue")
    for name in ("ckd_registry", "diabetes_registry", "hypertension_registry", "heart_failure_registry"):
        assert f'data-dataset="{name}"' in html
    ckd = html.split('data-dataset="ckd_registry"', 1)[1].split("</section>", 1)[0]
    assert re.search(r'data-fact="persons">40<', ckd) and re.search(r'data-fact="institutions">2<', ckd)
    assert "2023-06-01 – 2024-06-01" in ckd and 'data-fact="roles">researcher<' in ckd
    egfr = ckd.split('data-column="egfr"', 1)[1].split("</tr>", 1)[0]
    assert "健康状况数据" in egfr and ">3<" in egfr
    diabetes = html.split('data-dataset="diabetes_registry"', 1)[1].split("</section>", 1)[0]
    assert "not published yet" in diabetes


def test_the_audit_page_lists_requests_answered_and_refused(lake, site_folder, persons):
    site = load_site(site_folder)
    empty = render_page(Snapshot(lake=lake, site=site), "en", "audit")
    assert "No request yet." in empty
    caller = Caller("research-app", "researcher")
    answer(lake, {"dataset": "ckd_registry", "strata": [{"column": "sex"}]}, caller, POLICY)
    with pytest.raises(Refused):
        answer(lake, {"dataset": "ckd_registry", "criteria": [{"column": "patient_key", "in": ["k001"]}]}, caller,
               POLICY)
    html = render_page(Snapshot(lake=lake, site=site), "zh", "audit")
    summary = _cells(html, "audit-summary")
    assert summary == [["feasibility", "200", "1"], ["feasibility", "400", "1"]]
    rows = _cells(html, "audit")
    assert [r[4] for r in rows] == ["400", "200"]  # newest first
    assert rows[1][1] == "research-app" and rows[1][6] == "2"  # two cells released (female, male)
    assert not any(p["patient_key"] in html for p in persons)
