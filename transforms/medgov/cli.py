"""`medgov` command line: generate sample batches, run the pipeline, report on a lake, list
the checks, serve the dashboard, benchmark. Each command imports what it needs when it runs,
so `medgov --help` and the light commands start no Spark, Great Expectations or Airflow."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer
from typer._click import exceptions as click_exc  # typer ships its own click
from typer.exceptions import Abort
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from medgov.errors import MedgovError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="medgov: hospital extracts -> bronze -> FHIR R4 silver -> quality gate -> curated Delta datasets.")
err = Console(stderr=True)


@app.command()
def generate(out: Path = typer.Option(..., help="landing folder to write batches into"),
             patients: int = typer.Option(300, min=1, help="number of sample patients"),
             seed: int = typer.Option(7, help="random seed (same seed, same data)"),
             style: str = typer.Option("sample", help="sample (our three institutions, one corrupt batch) or "
                                                      "foreign (three never-seen institutions: their own codes, "
                                                      "names, specimens and units)")) -> None:
    """Write realistic sample landing batches."""
    if style == "foreign":
        from medgov.sample.foreign import generate_foreign

        g = generate_foreign(out, patients=patients, seed=seed).generated
    elif style == "sample":
        from medgov.sample.generate import generate as gen

        g = gen(out, patients=patients, seed=seed)
    else:
        raise MedgovError(f"--style must be sample or foreign, not {style!r}")
    total = sum(g.rows.values())
    typer.echo(f"wrote {len(g.batches)} batches, {total} data rows, to {out}")


def _stage_progress():
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                    transient=True, disable=not err.is_terminal)


@app.command()
def run(landing: Path = typer.Option(..., help="landing zone: <org>/<batch>/ folders with .ready flags"),
        lake: str = typer.Option(..., help="lake folder (or s3:// URI) to write into"),
        config: Path | None = typer.Option(None, envvar="MEDGOV_CONFIG",
                                           help="site configuration folder (landing.yaml: landing-zone limits)")) -> None:
    """Process every ready batch not yet processed and re-publish what changed."""
    from medgov.domain.pseudonym import load_key
    from medgov.pipeline.runner import preload, run_stages
    from medgov.spec.site import load_site

    if not landing.is_dir():
        raise MedgovError(f"landing folder not found: {landing}")
    from medgov.pipeline.workload import run_size

    site = load_site(config)
    load_key()
    work = run_size(lake, landing)  # before the preload thread starts importing (imports race)
    preload()
    _run_with_progress(lake, site, lambda ctx: run_stages(ctx, landing), work)


@app.command()
def revalidate(lake: str = typer.Option(..., help="lake folder written by `medgov run`"),
               batch: list[str] = typer.Option(..., help="batch key ORG/BATCH_ID (repeat for several)"),
               config: Path | None = typer.Option(None, envvar="MEDGOV_CONFIG",
                                                  help="site configuration folder (thresholds per institution)")
               ) -> None:
    """Run the quality gate again on batches (after a configuration change) and publish what passes."""
    from medgov.domain.pseudonym import load_key
    from medgov.pipeline.runner import check_revalidatable, preload, revalidate as again
    from medgov.spec.site import load_site
    from medgov.storage.lake import Lake

    site = load_site(config)
    load_key()
    from medgov.pipeline.workload import run_size

    check_revalidatable(Lake.at(lake), batch)  # before Spark starts: a wrong key is one line at once
    work = run_size(lake, None, ["validate", "publish"])  # they read silver: the lake's size counts
    preload(["validate"])
    _run_with_progress(lake, site, lambda ctx: again(ctx, batch), work)


def _run_with_progress(lake: str, site, stages, work=None) -> None:  # type: ignore[no-untyped-def]
    """Start Spark with a progress line, run `stages(ctx)`, print what each stage did; `work`
    (the run's size, `medgov.pipeline.workload.run_size`) chooses the Spark profile."""
    from medgov.storage.context import make_context

    started = time.monotonic()
    with _stage_progress() as progress:
        task = progress.add_task("starting Spark", total=None)
        ctx = make_context(lake, progress=lambda m: progress.update(task, description=m), config=site, work=work)
        result = stages(ctx)
    _print_run(result)
    typer.echo(f"done in {time.monotonic() - started:.1f} s")
    ctx.spark.stop()


def _print_run(result: dict) -> None:
    """What each stage of a run did, one line each (and one per rejected, deferred or blocked batch)."""
    i, norm, v, pub = (result.get(n) for n in ("ingest", "normalize", "validate", "publish"))
    if i is not None:
        _print_ingest(i)
    if norm is not None:
        _print_normalize(norm)
    if v is not None and v.checks:
        typer.echo(f"validate: {v.checks} checks, {len(v.passed)} batch(es) passed, {len(v.blocked)} blocked, "
                   f"{v.failed_warnings} warning(s); {v.held} row(s) held, {v.released} released")
        for k, fails in v.blocked.items():
            typer.echo(f"  blocked {k}: {'; '.join(fails[:3])}")
    for name, rows in (pub.rows.items() if pub is not None else ()):
        scope = pub.recomputed.get(name, "all")
        scope = "every person recomputed" if scope == "all" else f"{scope} recomputed"
        typer.echo(f"publish: gold.{name} {rows} rows written ({scope}; Delta version {pub.versions[name]})")


def _print_ingest(i) -> None:  # type: ignore[no-untyped-def]
    typer.echo(f"ingest: {len(i.accepted)} batch(es) accepted, {len(i.rejected)} rejected, "
               f"{len(i.deferred)} deferred, {len(i.unchanged)} unchanged")
    for k, reason in i.rejected.items():
        typer.echo(f"  rejected {k}: {reason}")
    for k, reason in i.deferred.items():
        typer.echo(f"  deferred {k}: {reason}")
    for table, n in i.rows.items():
        typer.echo(f"  {table}: {n['bronze']} to bronze, {n['quarantined']} quarantined")


def _print_normalize(norm) -> None:  # type: ignore[no-untyped-def]
    if norm.remapped:
        typer.echo(f"normalize: the concept maps changed: {len(norm.remapped)} batch(es) recoded")
    if norm.batches:
        typer.echo("normalize: " + ", ".join(f"{t} {c}" for t, c in norm.resources.items())
                   + f" FHIR resources; {sum(norm.invalid.values())} invalid; {norm.unmapped_lab_codes} lab results "
                   "with unmapped local codes"
                   + (f"; {norm.relinked_resources} earlier resources relinked to their patient"
                      if norm.relinked_resources else ""))
    if norm.regated:
        typer.echo(f"normalize: {len(norm.regated)} blocked batch(es) of the same institution(s) sent back "
                   "through the gate")


@app.command()
def report(lake: str = typer.Option(..., help="lake folder written by `medgov run`")) -> None:
    """Summarise the lake: batches, rows per table, quality per layer, curated datasets."""
    from medgov.report import render, summary

    render(summary(lake))


terms_app = typer.Typer(help="The terminology worklist: lab items left uncoded, and the steward's decisions.",
                         invoke_without_command=True)
app.add_typer(terms_app, name="terms")
_CONFIG_HELP = "site configuration folder (decisions go to concept_maps/lab_items.yaml)"


@terms_app.callback()
def terms(ctx: typer.Context,
          lake: str | None = typer.Option(None, help="lake folder written by `medgov run`"),
          config: Path | None = typer.Option(None, envvar="MEDGOV_CONFIG", help=_CONFIG_HELP),
          org: str | None = typer.Option(None, help="only this institution"),
          output: str = typer.Option("table", "--format", help="table, json, or csv (fill `loinc`, then "
                                                               "`medgov terms accept --file`)")) -> None:
    """List the lab items the concept maps leave uncoded, per institution by frequency, with
    ranked candidates and why none was applied."""
    if ctx.invoked_subcommand is not None:
        return
    from medgov.terms import render, worklist

    if lake is None:
        raise MedgovError("--lake is required to list the worklist")
    if output not in ("table", "json", "csv"):
        raise MedgovError(f"--format must be table, json or csv, not {output!r}")
    typer.echo(render(worklist(lake, config, org), output), nl=False)


@terms_app.command("accept")
def terms_accept(org: str | None = typer.Argument(None, help="institution code"),
                 code: str | None = typer.Argument(None, help="the institution's local item code"),
                 loinc: str | None = typer.Argument(None, help="the LOINC code it means"),
                 file: Path | None = typer.Option(None, "--file", help="CSV with org, code and loinc columns "
                                                                       "(the worklist's CSV, filled in)"),
                 config: Path | None = typer.Option(None, envvar="MEDGOV_CONFIG", help=_CONFIG_HELP),
                 by: str | None = typer.Option(None, help="who decided (recorded with the decision)")) -> None:
    """Record that ORG's local CODE means LOINC (or every filled-in row of --file); the next
    `medgov run` recodes the results already in silver, and so in gold."""
    from medgov.terms import accept, read_decisions

    if file is not None:
        if org or code or loinc:
            raise MedgovError("give ORG CODE LOINC or --file, not both")
        decisions = read_decisions(file)
    elif org and code and loinc:
        decisions = [(org, code, loinc)]
    else:
        raise MedgovError("give ORG CODE LOINC, or --file FILE.csv")
    path = accept(decisions, config, by)
    typer.echo(f"recorded {len(decisions)} decision(s) in {path}; the next `medgov run` recodes the results")


view_app = typer.Typer(help="SQL on FHIR v2 ViewDefinitions: run one over the lake, or run the conformance suite.",
                       no_args_is_help=True)
app.add_typer(view_app, name="view")


@view_app.command("run")
def view_run(view: Path = typer.Argument(..., help="ViewDefinition (JSON)"),
             lake: str = typer.Option(..., help="lake folder written by `medgov run`"),
             table: str = typer.Option("", help="silver table holding the resources (default: the view's resource "
                                                "type's table, e.g. silver/observation)"),
             out: Path | None = typer.Option(None, help="write the rows here (a Delta table, or .parquet / .csv)"),
             limit: int = typer.Option(20, min=0, help="rows shown on the terminal")) -> None:
    """Run a ViewDefinition over the silver resources of the lake (complete batches only)."""
    from medgov.views.definition import check, load

    definition = load(view)
    check(definition)
    from medgov.views.lake import run_on_lake

    rows, shown = run_on_lake(definition, lake, table or None, out, limit)
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{rows} rows" + (f" written to {out}" if out else ""))
    for name in (shown[0].keys() if shown else []):
        t.add_column(name, overflow="fold")
    for r in shown:
        t.add_row(*["" if v is None else str(v) for v in r.values()])
    Console().print(t)
    from medgov.views.runner import column_types, plan

    how = plan(definition)
    if how.typed:
        typer.echo("compiled typed: every column read natively")
    else:
        typer.echo(f"ran on the VARIANT compiler, all {len(column_types(definition))} columns: {how.reason}")


@view_app.command("bench")
def view_bench(lake: str = typer.Option(..., help="lake folder written by `medgov run` (its silver Observations)"),
               count: int = typer.Option(1_000_000, min=1000, help="Observations to run the view over (repeated)"),
               sample: int = typer.Option(20_000, min=100, help="resources evaluated row by row with fhirpathpy")
               ) -> None:
    """View throughput: a 15-column Observation view on Spark against fhirpathpy row by row."""
    from medgov.bench.views import view_throughput
    from medgov.storage.context import make_context
    from medgov.storage.lake import Lake

    ctx = make_context(Lake.at(lake))
    uri = ctx.lake.silver("observation")
    if not ctx.store.exists(uri):
        raise MedgovError(f"no silver/observation in {lake}: run `medgov run` first")
    r = view_throughput(ctx.spark, ctx.store.read(uri).select("resource_json"), count, sample)
    typer.echo(f"view ({r['plan']} compiler): {r['columns']} columns over {r['resources']:,} Observations in "
               f"{r['spark_seconds']} s on {r['cores']} cores: {r['spark_per_core_per_s']:,} resources/s per core")
    typer.echo(f"JSON parse alone (from_json into the view's struct): {r['parse_seconds']} s: "
               f"{r['parse_per_core_per_s']:,} resources/s per core, {r['parse_ratio']}x fhirpathpy")
    typer.echo(f"fhirpathpy row by row: {r['python_sample']:,} in {r['python_seconds']} s: "
               f"{r['python_per_core_per_s']:,} resources/s per core; Spark runner {r['ratio']}x")


@view_app.command("test")
def view_test(suite: Path = typer.Argument(..., help="folder of SQL on FHIR v2 test files (*.json)"),
              report: Path = typer.Option(Path("test_report.json"), help="the report, in the specification's format"),
              rows: Path | None = typer.Option(None, help="write each test's rows to ROWS/<file>/<index>.json"),
              compiler: str = typer.Option("auto", help="auto (typed where a view compiles typed), or variant")
              ) -> None:
    """Run the SQL on FHIR v2 conformance suite; exit 1 when a shareable test fails."""
    if not suite.is_dir():
        raise MedgovError(f"suite folder not found: {suite}")
    if compiler not in ("auto", "variant"):
        raise MedgovError(f"--compiler must be auto or variant, not {compiler!r}")
    from medgov.storage.spark import get_spark
    from medgov.views.conformance import run_suite

    result = run_suite(get_spark("medgov-view-test"), suite, report, rows, compiler)
    for tag in ("shareable", "experimental"):
        if result.total[tag]:
            typer.echo(f"{tag}: {result.passed[tag]}/{result.total[tag]} passed")
    for line in result.failures:
        typer.echo(f"  failed {line}")
    typer.echo(f"report: {report}" + (f"; rows: {rows}" if rows else ""))
    if result.passed["shareable"] < result.total["shareable"]:
        raise typer.Exit(1)


@app.command()
def checks(output: str = typer.Option("table", "--format", help="table or json"),
           layer: str | None = typer.Option(None, help="only this layer (ingest, bronze, normalize, silver)")) -> None:
    """List every check the pipeline runs (GX suites and medgov's own), from expectations/."""
    from medgov.spec.checks import catalogue

    if output not in ("table", "json"):
        raise MedgovError(f"--format must be table or json, not {output!r}")
    rows = [c for c in catalogue() if layer is None or c.layer == layer]
    if not rows:
        raise MedgovError(f"no checks in layer {layer!r}")
    if output == "json":
        import json
        from dataclasses import asdict

        typer.echo(json.dumps([asdict(c) for c in rows], ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(rows)} checks (expectations/)")
    for col in ("layer", "suite", "check", "column", "category", "context", "severity", "threshold", "engine",
                "description"):
        t.add_column(col, overflow="fold")
    for c in rows:
        t.add_row(c.layer, c.suite, c.expectation, c.column or "", c.category, c.context, c.severity,
                  f"{c.threshold:g}", c.engine, c.description)
    Console().print(t)


@app.command()
def dashboard(lake: str = typer.Option(..., help="lake folder written by `medgov run` (read only)"),
              export: Path | None = typer.Option(None, help="write a static site into this folder instead of serving"),
              host: str = typer.Option("127.0.0.1", help="address to listen on"),
              port: int = typer.Option(8050, min=1, max=65535, help="port to listen on"),
              lang: str | None = typer.Option(None, help="zh or en (default: the browser's preference)"),
              batches: int = typer.Option(10, min=2, help="batches shown in each trend"),
              config: Path | None = typer.Option(None, envvar="MEDGOV_CONFIG",
                                                 help="site configuration folder (institution names)")) -> None:
    """The data steward's quality dashboard: serve it on localhost, or export a static site."""
    from medgov.dashboard import site, snapshot
    from medgov.spec.site import load_site

    site_config = load_site(config)
    if lang is not None and lang not in ("zh", "en"):
        raise MedgovError(f"--lang must be zh or en, not {lang!r}")
    if export is not None:
        pages = site.export(snapshot.read(lake, site_config), export, batches)
        typer.echo(f"dashboard: {pages} pages written to {export} (open {export / 'index.html'})")
        return
    from medgov.dashboard.app import serve

    typer.echo(f"dashboard: http://{host}:{port}/ (read-only view of {lake}; Ctrl-C stops)")
    serve(lake, host, port, lang, batches, site_config)


@app.command()
def feasibility(query: Path = typer.Argument(..., help="feasibility query (YAML or JSON): dataset, criteria, strata"),
                lake: str = typer.Option(..., help="lake folder with published datasets (gold/)"),
                config: Path | None = typer.Option(None, help="site configuration folder (serving.yaml)"),
                output: str = typer.Option("table", "--format", help="table or json")) -> None:
    """Count a cohort offline, under the site's disclosure control; audited like the service."""
    import getpass

    import yaml

    from medgov.serving.feasibility import Caller, answer
    from medgov.spec.site import load_site
    from medgov.storage.lake import Lake

    if output not in ("table", "json"):
        raise MedgovError(f"--format must be table or json, not {output!r}")
    try:
        doc = yaml.safe_load(query.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MedgovError(f"cannot read {query}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise MedgovError(f"{query}: not YAML or JSON ({type(exc).__name__})") from None
    caller = Caller(client=f"cli:{getpass.getuser()}", role="steward")
    result = answer(Lake.at(lake), doc, caller, load_site(config).serving_policy())
    if output == "json":
        import json

        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    _print_feasibility(result)


def _print_feasibility(r: dict) -> None:  # type: ignore[type-arg]
    from rich.console import Console
    from rich.table import Table

    def shown(v: int | None) -> str:
        return "suppressed" if v is None else str(v)

    d = r["disclosure"]
    t = Table(title=f"{r['dataset']} (version {r['dataset_version']}): {shown(r['total'])} persons")
    for name in r["strata"]:
        t.add_column(name)
    t.add_column("persons", justify="right")
    for cell in r["cells"]:
        t.add_row(*[str(cell[n]) for n in r["strata"]], shown(cell["count"]))
    Console().print(t)
    typer.echo(f"counts below {d['min_cell']} suppressed ({d['suppressed_below_min_cell']}), "
               f"{d['suppressed_to_protect_others']} more to protect them; others rounded to {d['rounding']}")
    for note in d["notes"]:
        typer.echo(note)


@app.command("audit")
def audit_log(lake: str = typer.Option(..., help="lake folder"),
              client: str | None = typer.Option(None, help="only this client's requests"),
              limit: int = typer.Option(50, min=1, help="latest entries shown"),
              output: str = typer.Option("table", "--format", help="table or json")) -> None:
    """The serving audit: every request, answered or refused (no personal identifiers)."""
    from rich.console import Console
    from rich.table import Table

    from medgov.serving.audit import entries
    from medgov.storage.lake import Lake

    if output not in ("table", "json"):
        raise MedgovError(f"--format must be table or json, not {output!r}")
    rows = entries(Lake.at(lake), client)[-limit:]
    if output == "json":
        import json

        typer.echo(json.dumps(rows, ensure_ascii=False, default=str, indent=2))
        return
    t = Table(title=f"audit: {len(rows)} latest requests")
    for col in ("at", "client", "role", "endpoint", "status", "datasets", "cells", "suppressed", "query", "reason"):
        t.add_column(col, overflow="fold")
    for e in rows:
        t.add_row(f"{e['at']:%Y-%m-%d %H:%M:%S}", e["client"], e["role"], e["endpoint"], str(e["status"]),
                  ",".join(e["datasets"] or []), str(e["cells_released"]), str(e["cells_suppressed"]),
                  e["query_hash"], e["reason"])
    Console().print(t)


@app.command()
def serve(lake: str = typer.Option(..., help="lake folder with published datasets (gold/)"),
          config: Path = typer.Option(..., help="site configuration folder (roles.yaml, clients.yaml, serving.yaml)"),
          host: str = typer.Option("127.0.0.1", help="address to listen on (loopback unless told otherwise)"),
          port: int = typer.Option(8765, min=1, max=65535),
          workers: int = typer.Option(1, min=1, max=64, help="worker processes (each keeps its own table cache)")
          ) -> None:
    """Serve the catalogue, feasibility counts and Delta Sharing to downstream apps (OpenAPI docs at /docs)."""
    import os

    import uvicorn

    from medgov.serving.app import LAKE_ENV, create_app
    from medgov.serving.clients import clients
    from medgov.spec.site import CONFIG_ENV, load_site
    from medgov.storage.lake import Lake

    site = load_site(config)
    if not clients(site.folder):
        raise MedgovError(f"no clients in {config / 'clients.yaml'}: add one with `medgov clients add NAME --role R`")
    typer.echo(f"medgov serve: http://{host}:{port}/ (docs at /docs)")
    if workers == 1:
        uvicorn.run(create_app(Lake.at(lake), site), host=host, port=port, log_level="warning")
        return
    os.environ[LAKE_ENV], os.environ[CONFIG_ENV] = Lake.at(lake).root, str(config.resolve())
    uvicorn.run("medgov.serving.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                log_level="warning")


clients_app = typer.Typer(no_args_is_help=True, help="Clients of `medgov serve` and their tokens.")
app.add_typer(clients_app, name="clients")


@clients_app.command("add")
def clients_add(name: str = typer.Argument(..., help="the client's name (an application, not a person)"),
                role: str = typer.Option(..., help="a role of roles.yaml"),
                config: Path = typer.Option(..., help="site configuration folder"),
                profile: Path | None = typer.Option(None, help="also write the client's Delta Sharing profile here"),
                endpoint: str = typer.Option("http://127.0.0.1:8765", help="the service's URL, for the profile")
                ) -> None:
    """Register a client; its bearer token is printed once (only its hash is kept)."""
    import json
    from datetime import datetime, timezone

    from medgov.serving.clients import add_client

    if not config.is_dir():
        raise MedgovError(f"site configuration folder not found: {config}")
    token = add_client(config, name, role, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if profile is not None:
        from medgov.serving.sharing import profile as sharing_profile

        profile.write_text(json.dumps(sharing_profile(endpoint, token), indent=2) + "\n", encoding="utf-8")
        profile.chmod(0o600)
        typer.echo(f"client {name} ({role}) added; its Delta Sharing profile (with the token): {profile}")
        return
    typer.echo(f"client {name} ({role}) added. Its token, shown this once:\n{token}")


@app.command()
def catalog(lake: str = typer.Option(..., help="lake folder with published datasets (gold/)"),
            config: Path | None = typer.Option(None, help="site configuration folder (roles.yaml)"),
            output: str = typer.Option("json", "--format", help="json, jsonld (DCAT-AP 3) or ttl (DCAT-AP 3)"),
            base: str = typer.Option("http://127.0.0.1:8765", help="the service's public URL, for the DCAT links")
            ) -> None:
    """The data-asset catalogue: every curated dataset, its definition, columns and coverage."""
    import json

    from medgov.serving import catalog as cat
    from medgov.serving.clients import roles
    from medgov.spec.site import load_site
    from medgov.storage.lake import Lake

    if output not in ("json", "jsonld", "ttl"):
        raise MedgovError(f"--format must be json, jsonld or ttl, not {output!r}")
    entries = cat.catalogue(Lake.at(lake), roles(load_site(config).folder))
    if output == "json":
        typer.echo(json.dumps(entries, ensure_ascii=False, indent=2))
        return
    from medgov.serving import dcat

    typer.echo(dcat.serialize(dcat.graph(entries, base=base), output))


@app.command("spark-server")
def spark_server(port: int = typer.Option(15002, help="gRPC port the server listens on"),
                 host: str = typer.Option("127.0.0.1", help="address to bind (keep it local, or put TLS in front)"),
                 memory: str = typer.Option("4g", help="the server's JVM heap"),
                 warm: bool = typer.Option(True, "--warm/--no-warm",
                                           help="run the pipeline once on a generated sample (scratch lake, "
                                                "throwaway key) before saying ready, so the first delivery "
                                                "finds a warm JVM")) -> None:
    """Run a Spark Connect server in the foreground: processes started with
    SPARK_REMOTE=sc://HOST:PORT (Airflow tasks, repeated `medgov run`s) then share its warm JVM
    instead of starting their own. Ctrl-C (or SIGTERM) stops it."""
    import signal
    import subprocess
    from medgov.sample.generate import warm_up_sample
    from medgov.storage import connect_server

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # a service manager's stop ends the JVM too
    url = f"sc://{host}:{port}"
    typer.echo(f"spark-server: starting on {url}", err=True)
    proc = subprocess.Popen(connect_server.command(port, host, memory), env=connect_server.environment())
    try:
        connect_server.wait_ready(proc, host, port)
        if warm:
            typer.echo("spark-server: warming up on a generated sample", err=True)
            try:
                seconds = connect_server.warm_up(url, warm_up_sample)
                typer.echo(f"spark-server: warm after {seconds:.0f} s", err=True)
            except MedgovError as exc:  # a cold server still serves
                typer.echo(f"spark-server: {exc}; serving cold", err=True)
        typer.echo(f"spark-server: ready; clients set SPARK_REMOTE={url}", err=True)
        code = proc.wait()
    except KeyboardInterrupt:
        connect_server.stop(proc)
        code = 0
    if code:
        raise MedgovError(f"the Spark Connect server exited with code {code}")


@app.command()
def bench(sizes: str = typer.Option("100000,1000000,5000000", help="source rows per size, comma-separated"),
          reps: str = typer.Option("3", help="repetitions per size (the median is reported): one number for "
                                              "every size, or one per size, comma-separated (3,3,1)"),
          out: Path = typer.Option(Path("bench"), help="folder for results.json and scaling.png"),
          work: Path | None = typer.Option(None, help="scratch folder for feeds and lakes (default: a temp folder, removed at the end; a folder given here is kept)"),
          increment: int = typer.Option(10_000, min=0, help="rows of the one batch added to the largest lake "
                                                              "(0: no incremental measurement)"),
          server: bool = typer.Option(True, "--server/--no-server",
                                      help="time the increment through a warm Spark Connect server too")
          ) -> None:
    """Benchmark the whole pipeline on generated feeds; prints a table, writes results.json."""
    from medgov.bench import harness as benchmark

    try:
        counts = [int(s.replace("_", "")) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise MedgovError(f"--sizes must be numbers separated by commas, not {sizes!r}") from None
    if not counts or min(counts) < 100:
        raise MedgovError("--sizes needs at least one size of 100 rows or more")
    per_size = [r.strip() for r in reps.split(",")]
    if not all(r.isdigit() and int(r) >= 1 for r in per_size) or len(per_size) not in (1, len(counts)):
        raise MedgovError(f"--reps must be one whole number of repetitions (1 or more) or one per size "
                          f"({len(counts)}), comma-separated, not {reps!r}")
    repetitions = dict(zip(counts, [int(r) for r in per_size] * (len(counts) if len(per_size) == 1 else 1)))
    results = benchmark.run(sorted(counts), repetitions, out, work, progress=lambda m: typer.echo(f"bench: {m}", err=True),
                            increment_rows=increment, server=server)
    benchmark.render(results)
    typer.echo(f"results: {out / 'results.json'}, plot: {out / 'scaling.png'}")


@app.command("bench-serving")
def bench_serving(persons: int = typer.Option(1_000_000, min=1000, help="persons in the synthetic registry"),
                  clients: int = typer.Option(8, min=1, max=64, help="concurrent feasibility clients"),
                  requests: int = typer.Option(25, min=1, max=1000, help="queries per client"),
                  workers: int = typer.Option(1, min=1, max=16, help="`medgov serve --workers`")) -> None:
    """Serving benchmark: feasibility latency under concurrent clients, Delta Sharing against local Parquet."""
    import json

    from medgov.bench.serving import run

    root = Path(__file__).resolve().parents[2]
    result = run(persons, clients, requests, root / ".venv-sharing" / "bin" / "python", workers)
    typer.echo(json.dumps(result, indent=2))


def main() -> None:
    """Process entry point (`medgov`, `python -m medgov.cli`): run the command, then leave."""
    leave(dispatch())


def dispatch(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code: user mistakes end as one line on stderr and
    a non-zero code, never a traceback (MEDGOV_DEBUG=1 lets an unforeseen error through)."""
    def fail(message: str, code: int) -> int:
        print(f"medgov: error: {message}", file=sys.stderr)
        return code

    try:
        code = app(args=argv, standalone_mode=False)
    except MedgovError as exc:
        return fail(str(exc), 1)
    except click_exc.NoArgsIsHelpError:
        return 0
    except click_exc.UsageError as exc:
        return fail(f"{exc.format_message()} (see `medgov --help`)", 2)
    except Abort:
        return fail("aborted", 130)
    except Exception as exc:
        if os.environ.get("MEDGOV_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return fail(f"{type(exc).__name__}: {first[:300]} (set MEDGOV_DEBUG=1 for details)", 1)
    return code if isinstance(code, int) else 0


def leave(code: int) -> None:
    """End the process with `code` once its work and output are done.

    Non-daemon threads are joined and Python's own exit handlers run (logging flushes, pyspark
    stops its JVM), then the process exits without the interpreter's native finalisation.
    There, a pyarrow or delta-rs thread pool still alive can abort an otherwise finished
    command with "terminate called without an active exception" (exit -6; delta-io/delta-rs
    #2184, apache/arrow#34314): seen on `medgov audit` and `medgov terms` after their output
    was written."""
    import atexit
    import gc
    import threading

    try:
        for t in threading.enumerate():  # as a normal exit would, before the exit handlers
            if t is not threading.main_thread() and not t.daemon:
                t.join()
        atexit._run_exitfuncs()
        gc.collect()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # a closed pipe (`medgov … | head`) must not turn into a traceback
        pass
    os._exit(code)


if __name__ == "__main__":
    main()
