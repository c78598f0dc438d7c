"""The catalogue on the demo lake: each published dataset with its persons equal to its gold
rows, and a quality score over the silver tables its views read."""

from __future__ import annotations

from deltalake import DeltaTable

from medgov.serving.catalog import catalogue
from medgov.storage.lake import Lake


def test_every_published_dataset_has_its_size_and_quality_score(demo):
    entries = {e["name"]: e for e in catalogue(Lake.at(demo.lake), {})}
    assert set(entries) == {"ckd_registry", "diabetes_registry", "hypertension_registry", "heart_failure_registry"}
    for name, e in entries.items():
        gold = DeltaTable(str(demo.lake / "gold" / name))
        assert e["published"]["persons"] == gold.to_pyarrow_dataset().count_rows() > 0
        assert e["published"]["version"] == gold.version() and e["published"]["institutions"]
        q = e["quality"]
        assert q is not None and 0 < q["share_passing"] <= 1 and q["checks"] > 0
    assert entries["ckd_registry"]["quality"]["tables"] == ["condition", "observation", "patient"]
    assert entries["hypertension_registry"]["quality"]["tables"] == ["condition", "medication_request", "observation",
                                                                     "patient"]
