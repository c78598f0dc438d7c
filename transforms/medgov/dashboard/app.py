"""`medgov dashboard --lake DIR`: the dashboard as a small read-only web app (Starlette).

Each request reads the lake afresh through `deltalake`; nothing is written anywhere.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from medgov.dashboard import site, snapshot
from medgov.dashboard.i18n import LANGUAGES, negotiate
from medgov.spec.site import SiteConfig, load_site
from medgov.storage.lake import Lake


def create_app(lake_dir: str | Path, lang: str | None = None, last_n: int = 10, config: SiteConfig | None = None
               ) -> Starlette:
    """The app serving the lake at `lake_dir`; `lang` forces a language, else the browser's;
    institution names from the site configuration `config`."""
    lake = Lake.at(lake_dir)
    site_config = config or load_site()
    snapshot.read(lake_dir, site_config)  # fail now, with the one-line reason, if there is no lake

    async def root(request: Request) -> Response:
        chosen = negotiate(request.headers.get("accept-language"), lang)
        return RedirectResponse(f"/{chosen}/index.html")

    async def page(request: Request) -> Response:
        code, name = request.path_params["lang"], request.path_params["page"]
        if code not in LANGUAGES or name not in site.PAGES:
            return PlainTextResponse("not found", status_code=404)
        return HTMLResponse(site.render_page(snapshot.read(lake_dir, site_config), code, name, last_n))

    async def check(request: Request) -> Response:
        code = request.path_params["lang"]
        html = site.render_check(snapshot.read(lake_dir, site_config), code, request.path_params["cid"]) \
            if code in LANGUAGES else None
        return HTMLResponse(html) if html else PlainTextResponse("no such check", status_code=404)

    async def institution(request: Request) -> Response:
        code = request.path_params["lang"]
        html = site.render_institution(snapshot.read(lake_dir, site_config), code, request.path_params["org"], last_n) \
            if code in LANGUAGES else None
        return HTMLResponse(html) if html else PlainTextResponse("no such institution", status_code=404)

    async def asset(request: Request) -> Response:
        path = site.asset(request.path_params["name"])
        return FileResponse(path) if path else PlainTextResponse("not found", status_code=404)

    routes = [Route("/", root), Route("/{lang}/{page}.html", page), Route("/{lang}/check/{cid}.html", check),
              Route("/{lang}/org/{org}.html", institution),
              Route("/assets/{name}", asset)]
    docs = Path(lake.data_docs_index).parent
    if docs.is_dir():
        routes.append(Mount("/datadocs", app=StaticFiles(directory=docs, html=True)))
    return Starlette(routes=routes)


def serve(lake_dir: str | Path, host: str, port: int, lang: str | None = None, last_n: int = 10,
          config: SiteConfig | None = None) -> None:
    """Serve until interrupted (uvicorn, access log off: URLs carry no data, but keep logs quiet)."""
    import uvicorn

    uvicorn.run(create_app(lake_dir, lang, last_n, config), host=host, port=port, access_log=False, log_level="warning")
