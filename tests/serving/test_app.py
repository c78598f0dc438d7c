"""`medgov serve` and `medgov clients add`: bearer tokens (shown once, stored hashed), the
catalogue of what a role may read, feasibility over HTTP, and refusals (no token, a wrong
one, a dataset outside the role, an oversized or malformed body) with nothing but the reason,
each audited."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from serving_fixtures import serving

from medgov.errors import MedgovError
from medgov.serving import audit
from medgov.serving.app import create_app
from medgov.serving.clients import add_client, authenticate
from medgov.spec.site import load_site

MEDGOV = str(Path(sys.executable).with_name("medgov"))


@pytest.fixture
def api(lake, site_folder):
    token = add_client(site_folder, "research-app", "researcher", "2026-12-02T00:00:00+00:00")
    client = TestClient(create_app(lake, load_site(site_folder)))
    return client, {"Authorization": f"Bearer {token}"}


def test_a_token_is_stored_as_its_hash_only(site_folder):
    token = add_client(site_folder, "app-1", "screening", "now")
    text = (site_folder / "clients.yaml").read_text()
    assert token not in text and len(token) >= 40
    assert oct((site_folder / "clients.yaml").stat().st_mode & 0o777) == "0o600"
    who = authenticate(site_folder, token)
    assert who is not None and who.client == "app-1" and who.datasets == {"diabetes_registry"} and who.max_level == 3
    assert authenticate(site_folder, token + "x") is None and authenticate(site_folder, None) is None
    with pytest.raises(MedgovError, match="no role 'admin'"):
        add_client(site_folder, "app-2", "admin", "now")
    with pytest.raises(MedgovError, match="exists"):
        add_client(site_folder, "app-1", "screening", "now")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}])
def test_no_token_or_a_wrong_one_gets_401_and_nothing_else(api, lake, headers):
    client, _ = api
    for method, path in (("get", "/catalog"), ("post", "/feasibility")):
        r = getattr(client, method)(path, headers=headers)
        assert r.status_code == 401 and r.json() == {"detail": "unauthorized"}
        assert r.headers["www-authenticate"] == "Bearer"
    assert [e["status"] for e in audit.entries(lake)] == [401, 401]


def test_the_catalogue_lists_every_dataset_and_what_the_role_may_read(api):
    client, auth = api
    r = client.get("/catalog", headers=auth)
    assert r.status_code == 200
    entries = {e["name"]: e for e in r.json()}
    assert set(entries) == {"ckd_registry", "diabetes_registry", "hypertension_registry", "heart_failure_registry"}
    assert {n for n, e in entries.items() if e["readable"]} == {"ckd_registry", "diabetes_registry"}
    ckd = entries["ckd_registry"]
    assert ckd["published"]["persons"] == 40 and ckd["published"]["institutions"] == ["A", "B"]
    assert ckd["published"]["date_coverage"] == {"from": "2023-06-01", "to": "2024-06-01"}
    assert entries["diabetes_registry"]["published"] is None  # declared, not published in this lake
    columns = {c["name"]: c for c in ckd["columns"]}
    assert columns["egfr"]["level"] == 3 and columns["egfr"]["category"].startswith("健康状况数据")
    assert ckd["roles"] == ["researcher"] and ckd["sources"]
    assert entries["heart_failure_registry"]["roles"] == []  # no role may read it yet


def test_the_catalogue_is_dcat_ap_3_valid_under_the_official_shapes(api):
    """0 violations of the DCAT-AP 3.0.0 SHACL shapes (../shared/reference/dcat-ap-3)."""
    import pyshacl
    from rdflib import Graph

    from conftest import shared_file

    shapes = Graph().parse(shared_file("reference/dcat-ap-3/dcat-ap-SHACL.ttl"))
    client, auth = api
    r = client.get("/catalog.jsonld", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
    data = Graph().parse(data=r.text, format="json-ld")
    conforms, _, text = pyshacl.validate(data, shacl_graph=shapes)
    assert conforms, text
    from rdflib.namespace import DCAT, DCTERMS, RDF

    datasets = list(data.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == 4
    assert len(list(data.subjects(RDF.type, DCAT.Distribution))) == 1  # the one published dataset
    # the check can fail: a dataset without its titles is a violation
    data.remove((datasets[0], DCTERMS.title, None))
    assert not pyshacl.validate(data, shacl_graph=shapes)[0]


def test_feasibility_over_http(api, lake):
    client, auth = api
    q = {"dataset": "ckd_registry", "strata": [{"column": "sex"}]}
    r = client.post("/feasibility", headers=auth, json=q)
    assert r.status_code == 200, r.text
    assert {c["sex"]: c["count"] for c in r.json()["cells"]} == {"female": 20, "male": 20} and r.json()["total"] == 40
    r = client.post("/feasibility", headers=auth, json={"dataset": "heart_failure_registry"})
    assert r.status_code == 403 and "not available" in r.json()["detail"]
    # g_stage is level 3 and the researcher role sees level 2 at most: no count by it either
    r = client.post("/feasibility", headers=auth, json={"dataset": "ckd_registry", "strata": [{"column": "g_stage"}]})
    assert r.status_code == 403 and r.json() == {"detail": "ckd_registry.g_stage is level 3, above role researcher's 2"}
    r = client.post("/feasibility", headers=auth, json={**q, "strata": [{"column": c} for c in "abcd"]})
    assert r.status_code == 400 and r.json()["detail"] == "at most 3 strata, not 4"
    r = client.post("/feasibility", headers=auth, content=b"{not json")
    assert r.status_code == 400 and r.json() == {"detail": "the body is not JSON"}
    r = client.post("/feasibility", headers=auth, content=b" " * (65 * 1024))
    assert r.status_code == 413
    assert [e["status"] for e in audit.entries(lake)] == [200, 403, 403, 400, 400, 413]
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/feasibility", "/catalog"}


def test_medgov_serve_answers_on_loopback(lake, site_folder):
    out = subprocess.run([MEDGOV, "clients", "add", "cli-app", "--role", "researcher", "--config", str(site_folder)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    with serving(lake, site_folder) as port:
        r = httpx.post(f"http://127.0.0.1:{port}/feasibility", headers={"Authorization": f"Bearer {token}"},
                       json={"dataset": "ckd_registry"}, timeout=30)
        assert r.status_code == 200 and r.json()["total"] == 40
    bad = subprocess.run([MEDGOV, "clients", "add", "x y", "--role", "researcher", "--config", str(site_folder)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert json.loads(json.dumps(audit.entries(lake), default=str))[-1]["client"] == "cli-app"
