"""The suite runs on the short Spark profile (tests/conftest.py); production's large runs and
increments into a large lake run on long's Spark settings (generated code, the vectorised
Parquet reader, adaptive plans, 8 shuffle partitions), which change plans, not results. One
run on the increment profile (long's settings with short's JVM flags, so the same Spark-side
paths as long) must give the short run's tables."""

from __future__ import annotations

import shutil

import pytest

from lakes import medgov, tables
from medgov.storage.spark import PROFILES

pytestmark = pytest.mark.system


def test_the_increment_profile_gives_the_short_profiles_tables(one_org, tmp_path):
    # the settings this run differs by from the suite's, so the run exercises them
    assert PROFILES["increment"]["conf"] != PROFILES["short"]["conf"]
    assert PROFILES["increment"]["partitions"] != PROFILES["short"]["partitions"]
    landing = tmp_path / "landing"
    shutil.copytree(one_org.landing, landing)
    lake = tmp_path / "lake"
    proc = medgov("run", "--landing", str(landing), "--lake", str(lake), env={"MEDGOV_SPARK_PROFILE": "increment"})
    assert "publish: gold.ckd_registry" in proc.stdout
    got, want = tables(lake), one_org.tables
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], f"{name} differs between the increment and the short profile's run"
