"""The serving benchmark: a registry of N synthetic persons published into a scratch lake,
`medgov serve` on loopback, and a load generator (bounded requests and time):

- feasibility: 8 concurrent clients each sending 3-strata queries; latency p50 / p95 / max;
- Delta Sharing: the official client's `load_as_pandas` of the level-4 release copy against
  reading the same Parquet files locally into pandas (the client runs in its own environment,
  `.venv-sharing`; skipped with the reason where it is absent)."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from medgov.publish.release import release_table, write_releases
from medgov.serving.clients import add_client
from medgov.spec.datasets import dataset
from medgov.storage.lake import Lake

STRATA = [[{"column": "sex"}, {"column": "g_stage"}, {"column": "age_years", "bands": [40, 60, 80]}],
          [{"column": "a_stage"}, {"column": "sex"}, {"column": "age_years", "bands": [18, 45, 65]}],
          [{"column": "g_stage"}, {"column": "a_stage"}, {"column": "sex"}]]


def registry(persons: int, seed: int = 1) -> pa.Table:
    """A ckd_registry-shaped table of `persons` synthetic rows (every declared column)."""
    rng = np.random.default_rng(seed)
    n = persons
    day0 = date(2022, 1, 1)
    orgs = np.array([f"H{i:011d}" for i in range(40)])
    cols: dict[str, Any] = {
        "patient_key": [f"{i:032x}" for i in range(n)],
        "sex": rng.choice(["female", "male"], n).tolist(),
        "age_years": rng.integers(18, 100, n).astype("int32"),
        "latest_creatinine_umol_l": rng.uniform(60, 900, n).round(1),
        "latest_creatinine_date": [day0 + timedelta(days=int(x)) for x in rng.integers(0, 1000, n)],
        "egfr": rng.uniform(5, 59, n).round(2),
        "g_stage": rng.choice(["G3a", "G3b", "G4", "G5"], n, p=[0.5, 0.3, 0.15, 0.05]).tolist(),
        "latest_acr_mg_g": rng.uniform(1, 900, n).round(1),
        "a_stage": rng.choice(["A1", "A2", "A3"], n).tolist(),
        "qualifying_basis": [["egfr"]] * n,
        "first_qualifying_date": [day0 + timedelta(days=int(x)) for x in rng.integers(0, 1000, n)],
        "ckd_diagnosis_codes": [["N18"]] * n,
        "n_creatinine_results": rng.integers(2, 20, n).astype("int32"),
        "source_institutions": [[o] for o in rng.choice(orgs, n)],
        "updated_run_id": ["bench"] * n,
    }
    return pa.table(cols)


def _latency(url: str, token: str, clients: int, requests: int) -> dict[str, Any]:
    import httpx

    def one_client(i: int) -> list[float]:
        out = []
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            for k in range(requests):
                q = {"dataset": "ckd_registry", "criteria": [{"column": "age_years", "between": [18, 120]}],
                     "strata": STRATA[(i + k) % len(STRATA)]}
                start = time.perf_counter()
                r = http.post(f"{url}/feasibility", json=q)
                out.append(time.perf_counter() - start)
                if r.status_code != 200:
                    raise RuntimeError(f"feasibility answered {r.status_code}: {r.text[:200]}")
        return out

    with ThreadPoolExecutor(clients) as pool:
        times = sorted(t for ts in pool.map(one_client, range(clients)) for t in ts)
    return {"requests": len(times), "clients": clients, "p50_ms": round(statistics.median(times) * 1000, 1),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1000, 1), "max_ms": round(times[-1] * 1000, 1)}


_CLIENT = """
import sys, time, json
import delta_sharing
t = time.perf_counter()
df = delta_sharing.load_as_pandas(sys.argv[1] + "#medgov.curated.ckd_registry")
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(df), "columns": len(df.columns)}))
"""


@contextmanager
def serve(lake: Lake, site: Path, workers: int = 1) -> Iterator[str]:
    """`medgov serve` on a free loopback port while the block runs; yields its URL."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    medgov = str(Path(sys.executable).with_name("medgov"))
    server = subprocess.Popen([medgov, "serve", "--lake", lake.root, "--config", str(site), "--port", str(port),
                               "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("medgov serve did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def run(persons: int = 1_000_000, clients: int = 8, requests: int = 25,
        sharing_python: Path | None = None, workers: int = 1) -> dict[str, Any]:
    """Both measurements on a scratch lake; the figures as a dict."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="medgov-serving-bench-") as tmp:
        root = Path(tmp)
        lake = Lake.at(root / "lake")
        d = dataset("ckd_registry")
        write_deltalake(lake.gold(d.name), registry(persons))
        write_releases(lake, d)
        site = root / "site"
        site.mkdir()
        (site / "roles.yaml").write_text("bench: {datasets: [ckd_registry], max_level: 4}\n")
        (site / "serving.yaml").write_text("queries_per_day: 1000000\n")
        token = add_client(site, "bench", "bench", "bench")
        with serve(lake, site, workers) as url:
            # the first query of a worker reads the table version into memory: timed apart
            start = time.perf_counter()
            for _ in range(workers):
                httpx.post(f"{url}/feasibility", headers={"Authorization": f"Bearer {token}"},
                           json={"dataset": "ckd_registry", "strata": STRATA[0]}, timeout=300)
            first = round((time.perf_counter() - start) * 1000 / workers, 1)
            result: dict[str, Any] = {"persons": persons, "workers": workers, "first_query_ms": first,
                                      "feasibility": _latency(url, token, clients, requests)}
            result["sharing"] = _sharing(lake, url, token, sharing_python)
        return result


def _sharing(lake: Lake, url: str, token: str, python: Path | None) -> dict[str, Any]:
    import pyarrow.parquet as pq

    if python is None or not python.exists():
        return {"skipped": "the delta-sharing client's environment (.venv-sharing) is absent: make it with "
                           "`python -m venv .venv-sharing && .venv-sharing/bin/pip install delta-sharing==1.4.2`"}
    uri = release_table(lake, "ckd_registry", 4)
    files = DeltaTable(uri).file_uris()
    start = time.perf_counter()
    local = pq.read_table(files).to_pandas()
    local_s = time.perf_counter() - start
    with tempfile.NamedTemporaryFile("w", suffix=".share", delete=False) as f:
        json.dump({"shareCredentialsVersion": 1, "endpoint": f"{url}/delta-sharing", "bearerToken": token}, f)
    out = subprocess.run([str(python), "-c", _CLIENT, f.name], capture_output=True, text=True, timeout=600)
    Path(f.name).unlink()
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "client failed"}
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return {"rows": got["rows"], "columns": got["columns"], "client_seconds": round(got["seconds"], 2),
            "local_parquet_seconds": round(local_s, 2), "ratio": round(got["seconds"] / local_s, 2),
            "local_rows": len(local)}
