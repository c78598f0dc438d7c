"""Shared fixtures: one Spark session per test run, one pipeline run on generated sample data."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"  # ../shared beside the checkout (tests only)
TEST_KEY = "test-only-pseudonym-key-0123456789abcdef"


def shared_file(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{path} not present: the shared reference files are needed for this test")
    return path


@pytest.fixture(scope="session", autouse=True)
def _env(tmp_path_factory):
    os.environ["MEDGOV_PSEUDONYM_KEY"] = TEST_KEY
    os.environ.setdefault("MEDGOV_SHUFFLE_PARTITIONS", "4")
    for var in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        os.environ.pop(var, None)
    yield


@pytest.fixture(scope="session")
def spark():
    from medgov.spark import get_spark

    session = get_spark("medgov-tests")
    yield session
    session.stop()


@dataclass
class DemoRun:
    landing: Path
    lake: Path
    generated: object
    result: object


@pytest.fixture(scope="session")
def demo(tmp_path_factory, spark) -> DemoRun:
    """The sample (3 institutions, 6 good batches, 1 corrupt) run once through every stage."""
    from medgov.context import make_context
    from medgov.generate import generate
    from medgov.pipeline import run_all

    root = tmp_path_factory.mktemp("demo")
    landing, lake = root / "landing", root / "lake"
    gen = generate(landing, patients=60, seed=11)
    result = run_all(make_context(str(lake)), landing)
    return DemoRun(landing, lake, gen, result)


def copy_landing(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@dataclass
class ReferenceRun:
    landing: Path
    lake: Path
    tables: dict  # table -> sorted rows without volatile columns (lakes.tables)
    visible: dict  # batch -> table -> rows a reader sees (lakes.visible_by_batch)


@pytest.fixture(scope="session")
def one_org(tmp_path_factory) -> ReferenceRun:
    """One institution's two sample batches, run once by `medgov run` without interruption:
    what crashed and concurrent runs must end up equal to."""
    from lakes import medgov, tables, visible_by_batch
    from medgov.generate import generate

    root = tmp_path_factory.mktemp("one_org")
    landing, lake = root / "landing", root / "reference"
    generate(landing, patients=24, seed=5)
    for org in sorted(p for p in landing.iterdir() if p.is_dir())[1:]:
        shutil.rmtree(org)
    medgov("run", "--landing", str(landing), "--lake", str(lake))
    return ReferenceRun(landing, lake, tables(lake), visible_by_batch(lake))
