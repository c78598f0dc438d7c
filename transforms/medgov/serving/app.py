"""`medgov serve`: the platform's front door for downstream apps, one FastAPI application
(OpenAPI docs at /docs). Every route but /health needs a client's bearer token; every
request, answered or refused, is audited. Gold is read through delta-rs and Polars."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from medgov.serving import audit, catalog, dcat, feasibility, sharing
from medgov.serving.clients import Identity, authenticate, roles
from medgov.spec.site import SiteConfig
from medgov.storage.lake import Lake

MAX_BODY = 64 * 1024  # a feasibility query is a few hundred bytes
_bearer = HTTPBearer(auto_error=False)


LAKE_ENV = "MEDGOV_SERVE_LAKE"


def app_from_env() -> FastAPI:
    """The app of `medgov serve --workers N`: each worker process builds it from the lake and
    configuration the command put in its environment."""
    from medgov.spec.site import load_site

    return create_app(Lake.at(os.environ[LAKE_ENV]), load_site())


def _endpoint(request: Request) -> str:
    """The route's template (`delta-sharing/shares/{share}`), never the path as sent: a path
    may carry whatever a caller typed into it."""
    route = request.scope.get("route")
    return (getattr(route, "path", "") or "unrouted").strip("/")


def create_app(lake: Lake, site: SiteConfig) -> FastAPI:
    app = FastAPI(title="medgov", description="Curated disease datasets: catalogue and feasibility counts "
                  "under disclosure control. Every request is audited.", version="1")
    folder: Path | None = site.folder
    policy = site.serving_policy()

    def refuse(request: Request, status: int, reason: str, who: Identity | None = None) -> HTTPException:
        audit.record(lake, audit.Entry(client=who.client if who else "", role=who.role if who else "",
                                       endpoint=_endpoint(request), status=status, reason=reason))
        return HTTPException(status, detail=reason, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)

    def identity(request: Request, cred: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Identity:
        who = authenticate(folder, cred.credentials if cred else None)
        if who is None:
            raise refuse(request, 401, "unauthorized")
        return who

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # the reason only: no stack, no echo of the request
        if request.scope.get("route") is None:  # no route matched (a path that traverses, say): audited here
            audit.record(lake, audit.Entry(client="", role="", endpoint="unrouted", status=exc.status_code,
                                           reason="no such resource"))
            return JSONResponse({"detail": "not found"}, status_code=exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    def entries(who: Identity, endpoint: str) -> list[dict[str, Any]]:
        start = time.perf_counter()
        out = catalog.catalogue(lake, roles(folder))
        for e in out:
            e["readable"] = e["name"] in who.datasets
        audit.record(lake, audit.Entry(client=who.client, role=who.role, endpoint=endpoint, status=200,
                                       duration_ms=int((time.perf_counter() - start) * 1000)))
        return out

    @app.get("/catalog", summary="Every curated dataset: definition, columns (meaning, GB/T 39725 category and "
             "level), coverage, freshness, the roles that may read it, and whether this client may")
    def get_catalog(who: Identity = Depends(identity)) -> list[dict[str, Any]]:
        return entries(who, "catalog")

    @app.get("/catalog.jsonld", summary="The catalogue as DCAT-AP 3 (JSON-LD)")
    def get_catalog_jsonld(request: Request, who: Identity = Depends(identity)) -> Response:
        g = dcat.graph(entries(who, "catalog.jsonld"), base=str(request.base_url))
        return Response(dcat.serialize(g, "jsonld"), media_type="application/ld+json")

    @app.post("/feasibility", summary="Count a cohort by up to three strata, under disclosure control")
    async def post_feasibility(request: Request, who: Identity = Depends(identity)) -> dict[str, Any]:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise refuse(request, 413, f"a feasibility query is at most {MAX_BODY // 1024} KiB", who)
        try:
            doc = json.loads(body)
        except ValueError:
            raise refuse(request, 400, "the body is not JSON", who) from None
        caller = feasibility.Caller(who.client, who.role, who.datasets, who.max_level)
        try:
            # delta-rs and Polars block: off the event loop (the answer audits itself)
            return await run_in_threadpool(feasibility.answer, lake, doc, caller, policy)
        except feasibility.Refused as exc:
            raise HTTPException(exc.status, detail=str(exc)) from None

    app.include_router(sharing.router(lake, identity, refuse=refuse), prefix="/delta-sharing",
                       tags=["Delta Sharing"])
    return app
