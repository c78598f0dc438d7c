"""The Delta Sharing protocol (REST, version 1, parquet response format) over the curated
datasets, so any Delta Sharing client (Spark, pandas, BI tools) reads them with a profile
file. One share, `medgov`, with one schema, `curated`; its tables are the datasets the
client's role may read, each served from its release copy at the role's column level
(`medgov.publish.release`). Files are reached through short-lived signed URLs served by the
same process (HMAC-SHA256 over the file and its expiry)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
from deltalake import DeltaTable
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response

from medgov.publish.release import release_table
from medgov.serving import audit
from medgov.serving.clients import Identity
from medgov.spec.datasets import datasets
from medgov.storage.lake import Lake

SHARE, SCHEMA = "medgov", "curated"
URL_SECONDS = 900  # a file URL lives 15 minutes
_NAME = re.compile(r"^[a-z0-9_]{1,64}$")
SECRET_ENV = "MEDGOV_SHARING_SECRET"


def _secret() -> bytes:
    """The key that signs file URLs: MEDGOV_SHARING_SECRET, else one per process (URLs then
    die with the process, which is within their purpose)."""
    configured = os.environ.get(SECRET_ENV)
    return configured.encode("utf-8") if configured else secrets.token_bytes(32)


def sign(secret: bytes, path: str, expires: int) -> str:
    body = base64.urlsafe_b64encode(json.dumps([path, expires]).encode()).decode().rstrip("=")
    mac = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def verify(secret: bytes, token: str, now: float | None = None) -> str | None:
    """The file path a token grants, None when tampered with or expired."""
    body, _, mac = token.partition(".")
    if not hmac.compare_digest(mac, hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()):
        return None
    try:
        path, expires = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        return None
    if (now or time.time()) > expires:
        return None
    return str(path)


def router(lake: Lake, identity: Callable[..., Identity], secret: bytes | None = None,
           refuse: Callable[..., HTTPException] | None = None) -> APIRouter:
    """The protocol's endpoints, under the prefix the app mounts them at; `refuse(request,
    status, reason, who)` audits a refusal and gives the exception to raise."""
    key = secret or _secret()
    r = APIRouter()
    release_root = Path(lake.table("release", "")).resolve() if lake.is_local else None

    def not_found(request: Request, who: Identity, what: str) -> HTTPException:
        if refuse is None:
            return HTTPException(404, detail=f"{what} not found")
        return refuse(request, 404, f"{what} not found", who)

    def tables_of(who: Identity) -> list[str]:
        names = sorted(d.name for d in datasets() if d.name in who.datasets)
        return [n for n in names if DeltaTable.is_deltatable(release_table(lake, n, who.max_level))]

    def check(request: Request, who: Identity, share: str, schema: str | None = None,
              table: str | None = None) -> str | None:
        if share != SHARE:
            raise not_found(request, who, "share")
        if schema is not None and schema != SCHEMA:
            raise not_found(request, who, "schema")
        if table is not None and (not _NAME.match(table) or table not in tables_of(who)):
            # the same for a table outside the role and one that does not exist
            raise not_found(request, who, "table")
        return release_table(lake, table, who.max_level) if table else None

    def table_items(who: Identity) -> dict[str, Any]:
        return {"items": [{"name": t, "schema": SCHEMA, "share": SHARE} for t in tables_of(who)]}

    @r.get("/shares")
    def list_shares(who: Identity = Depends(identity)) -> dict[str, Any]:
        return {"items": [{"name": SHARE}]}

    @r.get("/shares/{share}")
    def get_share(share: str, request: Request, who: Identity = Depends(identity)) -> dict[str, Any]:
        check(request, who, share)
        return {"share": {"name": SHARE}}

    @r.get("/shares/{share}/schemas")
    def list_schemas(share: str, request: Request, who: Identity = Depends(identity)) -> dict[str, Any]:
        check(request, who, share)
        return {"items": [{"name": SCHEMA, "share": SHARE}]}

    @r.get("/shares/{share}/schemas/{schema}/tables")
    def list_tables(share: str, schema: str, request: Request, who: Identity = Depends(identity)) -> dict[str, Any]:
        check(request, who, share, schema)
        return table_items(who)

    @r.get("/shares/{share}/all-tables")
    def list_all_tables(share: str, request: Request, who: Identity = Depends(identity)) -> dict[str, Any]:
        check(request, who, share)
        return table_items(who)

    def _table(request: Request, who: Identity, share: str, schema: str, table: str,
               version: int | None = None) -> DeltaTable:
        uri = check(request, who, share, schema, table)
        try:
            return DeltaTable(uri, version=version) if version is not None else DeltaTable(uri)
        except Exception:  # noqa: BLE001 - a version that is not there
            raise HTTPException(400, detail=f"version {version} of {table} is not available") from None

    @r.api_route("/shares/{share}/schemas/{schema}/tables/{table}/version", methods=["GET", "HEAD"])
    def table_version(share: str, schema: str, table: str, request: Request,
                      who: Identity = Depends(identity)) -> Response:
        dt = _table(request, who, share, schema, table)
        return Response(headers={"delta-table-version": str(dt.version())})

    @r.get("/shares/{share}/schemas/{schema}/tables/{table}/metadata")
    def table_metadata(share: str, schema: str, table: str, request: Request,
                       who: Identity = Depends(identity)) -> Response:
        dt = _table(request, who, share, schema, table)
        return _ndjson([_protocol(), _metadata(dt, table)], dt.version())

    @r.post("/shares/{share}/schemas/{schema}/tables/{table}/query")
    async def query_table(share: str, schema: str, table: str, request: Request,
                          who: Identity = Depends(identity)) -> Response:
        body = await request.body()
        try:
            params = json.loads(body) if body.strip() else {}
        except ValueError:
            raise HTTPException(400, detail="the body is not JSON") from None
        if not isinstance(params, dict):
            raise HTTPException(400, detail="the body is a JSON object")
        version = params.get("version")
        if version is not None and not isinstance(version, int):
            raise HTTPException(400, detail="version is an integer")
        start = time.perf_counter()
        dt = _table(request, who, share, schema, table, version)
        base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
        expires = int(time.time()) + URL_SECONDS
        lines = [_protocol(), _metadata(dt, table)]
        rows = 0
        actions = pa.table(dt.get_add_actions(flatten=True)).select(["path", "size_bytes", "num_records"]).to_pylist()
        for a in actions:
            rows += int(a.get("num_records") or 0)
            path = f"{table}/level_{who.max_level}/{a['path']}"
            lines.append({"file": {
                "url": f"{base}/delta-sharing/files/{sign(key, path, expires)}",
                "id": hashlib.sha256(a["path"].encode()).hexdigest()[:32],
                "partitionValues": {}, "size": int(a["size_bytes"]),
                "stats": json.dumps({"numRecords": int(a.get("num_records") or 0)}),
                "expirationTimestamp": expires * 1000}})
        audit.record(lake, audit.Entry(client=who.client, role=who.role, endpoint="delta-sharing/query", status=200,
                                       datasets=[table], rows_released=rows,
                                       duration_ms=int((time.perf_counter() - start) * 1000)))
        return _ndjson(lines, dt.version())

    @r.api_route("/files/{token}", methods=["GET", "HEAD"], include_in_schema=False)
    def get_file(token: str) -> FileResponse:
        path = verify(key, token)
        if path is None or release_root is None:
            audit.record(lake, audit.Entry(client="", role="", endpoint="delta-sharing/files", status=403,
                                           reason="a file URL tampered with or expired"))
            raise HTTPException(403, detail="this file URL is not valid (tampered with or expired)")
        target = (release_root / path).resolve()
        if release_root not in target.parents or not target.is_file():  # signed, yet never outside release/
            raise HTTPException(404, detail="file not found")
        return FileResponse(target, media_type="application/octet-stream")

    return r


def _protocol() -> dict[str, Any]:
    return {"protocol": {"minReaderVersion": 1}}


def _metadata(dt: DeltaTable, table: str) -> dict[str, Any]:
    meta = dt.metadata()
    return {"metaData": {"id": meta.id, "name": table, "description": meta.description,
                         "format": {"provider": "parquet"}, "schemaString": dt.schema().to_json(),
                         "partitionColumns": list(meta.partition_columns), "configuration": {}}}


def _ndjson(lines: list[dict[str, Any]], version: int) -> Response:
    return Response("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n",
                    media_type="application/x-ndjson", headers={"delta-table-version": str(version)})


def profile(endpoint: str, token: str) -> dict[str, Any]:
    """A Delta Sharing profile file's content for a client."""
    return {"shareCredentialsVersion": 1, "endpoint": endpoint.rstrip("/") + "/delta-sharing", "bearerToken": token}
