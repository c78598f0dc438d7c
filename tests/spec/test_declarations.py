"""Declarations that code reads instead of repeating them: the stage registry, the tables and
their lineage columns, the contracts and the LOINC concepts code names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from medgov.spec.contracts import TABLES, contract
from medgov.spec.lifecycle import COMPLETE_FROM, PUBLISHABLE, STAGES, BatchStage, stage
from medgov.spec.tables import BRONZE_TABLES, SILVER_RESOURCES, SILVER_TABLES, silver_of
from medgov.spec.terminology import loinc

PACKAGE = Path(__file__).resolve().parents[2] / "transforms" / "medgov"
SCHEMAS = PACKAGE.parents[1] / "schemas"


def test_stages_hand_batches_on_in_order():
    assert [s.name for s in STAGES] == ["ingest", "normalize", "validate", "publish"]
    assert STAGES[0].takes is None  # ingest takes ready flags
    for before, after in zip(STAGES, STAGES[1:]):
        assert after.takes in before.leaves, (before.name, after.name)
    assert stage("validate").leaves == (BatchStage.VALIDATED, BatchStage.BLOCKED)
    with pytest.raises(KeyError, match="no stage 'export'"):
        stage("export")


def test_stage_functions_resolve():
    from medgov.pipeline.runner import stage_function

    for s in STAGES:
        fn = stage_function(s)
        assert callable(fn) and fn.__name__ == s.function.split(":")[1]


def test_zones_are_complete_from_the_stage_that_writes_them_on():
    assert COMPLETE_FROM["bronze"][0] == BatchStage.BRONZE and COMPLETE_FROM["silver"][0] == BatchStage.SILVER
    assert BatchStage.RECEIVING not in COMPLETE_FROM["bronze"]
    assert set(PUBLISHABLE) == {BatchStage.VALIDATED, BatchStage.PUBLISHED}


def test_every_interface_table_has_its_contract_and_one_silver_table():
    on_disk = {p.stem for p in (SCHEMAS / "contracts").glob("*.yaml") if not p.name.startswith("_")}
    assert set(TABLES) == on_disk and BRONZE_TABLES == TABLES
    assert sorted(s for t in SILVER_RESOURCES for s in t.sources) == sorted(TABLES)
    assert {silver_of(t).name for t in TABLES} | {"patient_xref"} == set(SILVER_TABLES)
    assert {"id_no", "name", "phone"} <= set(contract("patient").direct_identifiers)


def test_silver_shapes_parse(spark):
    from pyspark.sql.types import StructType

    for t in SILVER_RESOURCES:
        names = StructType.fromDDL(t.ddl).fieldNames()
        assert {"id", "patient_key", "org_code", "batch_key", "source_file", "source_line", "resource_json"} <= set(names)


def _named_concepts() -> set[str]:
    """Every LOINC concept name the package's code passes as a string literal."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                    "loinc", "concept", "emit", "coding") and node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
    from medgov.normalize.builders import _BP_COMPONENTS, _VITALS
    from medgov.quality.views import COMPONENT_COLUMNS, CONCEPT_COLUMNS

    names |= {c for cs in CONCEPT_COLUMNS.values() for c in cs} | set(COMPONENT_COLUMNS.values())
    names |= {c for _, c in _VITALS} | {c for _, c in _BP_COMPONENTS}
    return names


def test_every_concept_code_names_is_in_the_concept_map():
    names = _named_concepts()
    assert {"creatinine_molar", "acr_urine", "systolic_bp", "bmi"} <= names
    for name in names:
        assert re.fullmatch(r"\d{1,6}-\d", loinc(name)), name


def test_no_loinc_code_is_written_in_the_code():
    """LOINC codes live in concept_maps/loinc.yaml; code names the concept."""
    code = re.compile(r"""["']\d{3,6}-\d["']""")
    found = [f"{p.relative_to(PACKAGE)}: {m.group()}" for p in PACKAGE.rglob("*.py")
             for m in code.finditer(p.read_text(encoding="utf-8"))]
    assert found == []
