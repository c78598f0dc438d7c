"""Delta Sharing: the official `delta-sharing` client (in its own environment: it pins an
older pyarrow than medgov) reads a dataset through `medgov serve` with a profile file, and
sees only its role's columns; names that traverse paths, tables outside the role, and file
URLs tampered with or expired are refused."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from serving_fixtures import serving

from medgov.serving import audit, sharing
from medgov.serving.app import create_app
from medgov.serving.clients import add_client
from medgov.spec.site import load_site

ROOT = Path(__file__).resolve().parents[2]
MEDGOV = str(Path(sys.executable).with_name("medgov"))
CLIENT_VENV = ROOT / ".venv-sharing"
SECRET = "test-secret-for-signing-file-urls"
LEVEL_2 = ["sex", "age_years", "source_institutions"]  # the fixture's columns of level <= 2, declared order
CLIENT_SCRIPT = """
import json, sys
import delta_sharing
profile = sys.argv[1]
tables = delta_sharing.SharingClient(profile).list_all_tables()
df = delta_sharing.load_as_pandas(profile + "#medgov.curated.ckd_registry")
print(json.dumps({"tables": [[t.share, t.schema, t.name] for t in tables], "columns": list(df.columns),
                  "rows": len(df), "sexes": sorted(set(df["sex"]))}))
"""


@pytest.fixture(scope="session")
def sharing_python() -> Path:
    """The official client, pinned, in a virtual environment of its own (made once)."""
    python = CLIENT_VENV / "bin" / "python"
    with open(ROOT / ".venv-sharing.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (CLIENT_VENV / ".installed").exists():
            subprocess.run([sys.executable, "-m", "venv", str(CLIENT_VENV)], check=True)
            done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "delta-sharing==1.4.2"],
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.skip(f"the delta-sharing client could not be installed: {done.stderr.strip()[-200:]}")
            (CLIENT_VENV / ".installed").touch()
    return python


@pytest.fixture
def api(lake, site_folder, monkeypatch):
    monkeypatch.setenv(sharing.SECRET_ENV, SECRET)
    token = add_client(site_folder, "research-app", "researcher", "now")
    screening = add_client(site_folder, "screening-app", "screening", "now")
    client = TestClient(create_app(lake, load_site(site_folder)))
    return client, {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {screening}"}


def test_the_official_client_reads_the_roles_columns_only(lake, site_folder, sharing_python, tmp_path):
    profile = tmp_path / "research.share"
    out = subprocess.run([MEDGOV, "clients", "add", "bi-tool", "--role", "researcher", "--config", str(site_folder),
                          "--profile", str(profile)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    written = json.loads(profile.read_text())
    assert written["endpoint"] == "http://127.0.0.1:8765/delta-sharing" and written["shareCredentialsVersion"] == 1
    assert written["bearerToken"] not in out.stdout  # the token is in the profile (mode 600), not on the terminal
    assert oct(profile.stat().st_mode & 0o777) == "0o600"
    with serving(lake, site_folder) as port:
        profile.write_text(json.dumps({**written, "endpoint": f"http://127.0.0.1:{port}/delta-sharing"}))
        run = subprocess.run([str(sharing_python), "-c", CLIENT_SCRIPT, str(profile)], capture_output=True,
                             text=True, timeout=300, env={**os.environ, "NO_PROXY": "127.0.0.1"})
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    # the researcher reads ckd and diabetes; only ckd is published in this lake
    assert got["tables"] == [["medgov", "curated", "ckd_registry"]]
    assert got["columns"] == LEVEL_2 and got["rows"] == 40 and got["sexes"] == ["female", "male"]
    released = [e for e in audit.entries(lake) if e["endpoint"] == "delta-sharing/query"]
    assert released and released[-1]["client"] == "bi-tool" and released[-1]["rows_released"] == 40


def test_no_response_holds_a_column_above_the_roles_level(api):
    client, auth, _ = api
    base = "/delta-sharing/shares/medgov/schemas/curated/tables/ckd_registry"
    meta = client.get(f"{base}/metadata", headers=auth)
    query = client.post(f"{base}/query", headers=auth, json={})
    assert meta.status_code == query.status_code == 200 and meta.headers["delta-table-version"] == "0"
    for text in (meta.text, query.text):
        for above in ("patient_key", "egfr", "g_stage", "first_qualifying_date"):  # level 3
            assert above not in text
    files = [json.loads(line)["file"] for line in query.text.splitlines()[2:]]
    assert files
    for f in files:
        data = client.get(f["url"].replace("http://testserver", ""))
        assert data.status_code == 200
        table = pq.read_table(__import__("io").BytesIO(data.content))
        assert table.column_names == LEVEL_2


@pytest.mark.parametrize("path", [
    "/delta-sharing/shares/medgov/schemas/curated/tables/..%2F..%2Fgold%2Fckd_registry/metadata",
    "/delta-sharing/shares/medgov/schemas/curated/tables/ckd_registry%2F..%2Flevel_4/metadata",
    "/delta-sharing/shares/..%2Frelease/schemas/curated/tables/ckd_registry/metadata",
    "/delta-sharing/shares/medgov/schemas/..%2F../tables/ckd_registry/metadata",
    "/delta-sharing/shares/medgov/schemas/curated/tables/diabetes_registry/metadata",  # in the role, unpublished
])
def test_names_that_traverse_or_do_not_exist_are_404(api, lake, path):
    client, auth, _ = api
    r = client.get(path, headers=auth)
    assert r.status_code == 404 and "patient" not in r.text
    # audited under the route's template (or as unrouted), never the path as sent
    refused = audit.entries(lake)[-1]
    assert refused["status"] == 404 and ".." not in refused["endpoint"] and "%2F" not in refused["endpoint"]
    assert refused["endpoint"] == "unrouted" or (refused["endpoint"].startswith("delta-sharing/shares/{share}")
                                                 and refused["client"] == "research-app")


def test_a_table_outside_the_role_is_the_same_404_as_none(api):
    client, _, screening = api
    base = "/delta-sharing/shares/medgov/schemas/curated/tables"
    outside = client.get(f"{base}/ckd_registry/metadata", headers=screening)
    nowhere = client.get(f"{base}/no_such_table/metadata", headers=screening)
    assert outside.status_code == nowhere.status_code == 404 and outside.json() == nowhere.json()
    assert client.get("/delta-sharing/shares/medgov/all-tables", headers=screening).json() == {"items": []}
    assert client.get("/delta-sharing/shares", headers={}).status_code == 401


def test_tampered_and_expired_file_urls_are_refused(api, lake):
    client, auth, _ = api
    base = "/delta-sharing/shares/medgov/schemas/curated/tables/ckd_registry"
    url = json.loads(client.post(f"{base}/query", headers=auth, json={}).text.splitlines()[2])["file"]["url"]
    path = url.replace("http://testserver", "")
    assert client.get(path).status_code == 200
    tampered = path[:-1] + ("0" if path[-1] != "0" else "1")
    assert client.get(tampered).status_code == 403
    token = path.rsplit("/", 1)[1]
    granted = sharing.verify(SECRET.encode(), token)
    expired = sharing.sign(SECRET.encode(), granted, int(time.time()) - 1)
    assert client.get(f"/delta-sharing/files/{expired}").status_code == 403
    # a validly signed path outside the release copies is still not served
    outside = sharing.sign(SECRET.encode(), "../gold/ckd_registry/_delta_log/00000000000000000000.json",
                           int(time.time()) + 60)
    assert client.get(f"/delta-sharing/files/{outside}").status_code == 404
    assert [e["status"] for e in audit.entries(lake) if e["endpoint"] == "delta-sharing/files"] == [403, 403]

