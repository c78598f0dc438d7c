"""The GX runner: one run of a suite over every batch, a result row per check and batch with
its declared metadata, a Data Docs page per batch, and runs that may share a process on
several threads."""

from __future__ import annotations

from datetime import datetime, timezone

from medgov.quality.outcomes import batch_outcomes
from medgov.spec.checks import suite_checks
from medgov.spec.site import Institution, SiteConfig, load_site
from medgov.storage.lake import Lake


def test_one_run_over_all_batches_gives_rows_and_a_page_per_batch(spark, tmp_path, monkeypatch):
    """GX parses its config-variables file on every run with one ruamel parser shared by all
    threads, which is not thread-safe (validate runs suites on two threads). The runner's
    project has no such file, so a run parses no YAML."""
    import great_expectations.core.config_provider as config_provider

    from medgov.quality.gx_runner import QualityRunner, all_batches_run_name

    runner = QualityRunner(Lake.at(tmp_path))
    providers = [type(p).__name__ for p in runner.context.config_provider._providers.values()]
    assert "_ConfigurationVariablesConfigurationProvider" not in providers, providers

    def no_yaml(*args, **kwargs):
        raise AssertionError("a GX run parsed YAML through the shared parser")

    monkeypatch.setattr(config_provider.yaml, "load", no_yaml)
    runner = QualityRunner(Lake.at(tmp_path))  # a project made before is reopened the same way
    df = spark.createDataFrame([("ORG001/b1", "V1", "1", "1", "N18.300", False),
                                ("ORG001/b1", "V1", "1", "9", "N18.3", False),
                                ("ORG002/b1", "V1", "1", "2", "bad", False)],
                               "_batch_key string, visit_id string, seq string, diag_type string, icd_code string, "
                               "has_future_date boolean")
    checks = suite_checks("bronze.diagnosis")
    at = datetime.now(timezone.utc)
    whole = runner.run_suite("bronze.diagnosis", df, all_batches_run_name("run1"), at)
    outcomes = batch_outcomes(df, [(c.expectation, c.kwargs) for c in checks], "_batch_key")
    rows = runner.batch_results("bronze.diagnosis", whole, outcomes, "run1", at)
    assert len(rows) == 2 * len(checks)
    got = {(r["batch_key"], r["column"]): r for r in rows}
    # (V1, 1) repeats within ORG001/b1 only: uniqueness is per batch, though the run saw both
    assert got[("ORG001/b1", "visit_id,seq")]["unexpected_count"] == 2
    assert got[("ORG002/b1", "visit_id,seq")]["success"] is True
    assert got[("ORG001/b1", "diag_type")]["unexpected_count"] == 1 and got[("ORG002/b1", "icd_code")]["success"] is False
    for r in rows:
        c = next(c for c in checks if (c.expectation, c.column) == (r["expectation"], r["column"]))
        assert (r["severity"], r["category"], r["layer"], r["run_id"]) == (c.severity, c.category, "bronze", "run1")
    # a site that lets one institution's ICD codes fail: its verdict and recorded threshold
    # change, the other institution's do not
    site = SiteConfig(None, load_site().landing,
                      {"ORG002": Institution(name_zh="乙院", thresholds={"bronze.diagnosis": {"icd_code": 0.0}})})
    lenient = {(r["batch_key"], r["column"]): r
               for r in runner.batch_results("bronze.diagnosis", whole, outcomes, "run1", at, site)}
    assert lenient[("ORG002/b1", "icd_code")]["success"] is True and lenient[("ORG002/b1", "icd_code")]["threshold"] == 0
    assert lenient[("ORG001/b1", "icd_code")] == got[("ORG001/b1", "icd_code")]
    runner.build_docs()
    pages = {p.parts[-3] for p in (tmp_path / "quality/gx/gx/uncommitted/data_docs/local_site/validations"
                                   ).glob("bronze/diagnosis/*/*/*.html")}
    assert pages == {"ORG001__b1__run1", "ORG002__b1__run1", "all-batches__run1"}
    # every page carries its numbers: each batch's, and the whole run's summed over them
    import json

    stored = {p.parts[-3]: json.loads(p.read_text()) for p in (tmp_path / "quality/gx/gx/uncommitted/validations"
                                                               ).glob("bronze/diagnosis/*/*/*.json")}
    icd = {run: next(r for r in v["results"] if r["expectation_config"]["kwargs"].get("column") == "icd_code")
           for run, v in stored.items()}
    assert {run: (r["result"]["element_count"], r["result"]["unexpected_count"], r["success"])
            for run, r in icd.items()} == {"ORG001__b1__run1": (2, 0, True),
                                          "ORG002__b1__run1": (1, 1, True),  # stored last, by the lenient site
                                          "all-batches__run1": (3, 1, False)}
