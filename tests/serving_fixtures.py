"""Fixtures of the serving tests (registered by tests/conftest.py): a small published
ckd_registry (hand-chosen persons, written with delta-rs) and a site folder with two roles."""

from __future__ import annotations

from datetime import date
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from medgov.storage.lake import Lake


def persons() -> list[dict]:
    """40 persons: sex alternating, ages 30..69, G3a for the first 25 and G4 after,
    institution A for even numbers and B for multiples of 3, onset in 2023 for the first 20."""
    out = []
    for i in range(40):
        out.append({"patient_key": f"k{i:03d}", "sex": "female" if i % 2 else "male", "age_years": 30 + i,
                    "g_stage": "G3a" if i < 25 else "G4", "egfr": 59.0 - i,
                    "source_institutions": [o for o, ok in (("A", i % 2 == 0), ("B", i % 3 == 0)) if ok],
                    "first_qualifying_date": date(2023, 6, 1) if i < 20 else date(2024, 6, 1)})
    return out


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = Lake.at(tmp_path / "lake")
    table = pa.Table.from_pylist(persons(), schema=pa.schema([
        ("patient_key", pa.string()), ("sex", pa.string()), ("age_years", pa.int32()), ("g_stage", pa.string()),
        ("egfr", pa.float64()), ("source_institutions", pa.list_(pa.string())),
        ("first_qualifying_date", pa.date32())]))
    write_deltalake(lake.gold("ckd_registry"), table)
    from medgov.publish.release import write_releases
    from medgov.spec.datasets import dataset

    write_releases(lake, dataset("ckd_registry"))  # as publish does after its MERGE
    return lake


@pytest.fixture(name="persons")
def persons_fixture() -> list[dict]:
    return persons()


@pytest.fixture
def site_folder(tmp_path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "roles.yaml").write_text(
        "researcher: {datasets: [ckd_registry, diabetes_registry], max_level: 2, description: research platforms}\n"
        "screening: {datasets: [diabetes_registry], max_level: 3}\n", encoding="utf-8")
    return folder


@contextmanager
def serving(lake: Lake, site: Path) -> Iterator[int]:
    """`medgov serve` on a free loopback port while the block runs; yields the port."""
    from medgov.bench.serving import serve

    with serve(lake, site) as url:
        yield int(url.rsplit(":", 1)[1])
