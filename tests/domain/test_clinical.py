"""eGFR and KDIGO staging against the reference values published in domain.md §3."""

import re

import pytest
from pyspark.sql import functions as F

from conftest import shared_file
from medgov.domain.clinical import a_stage, egfr_ckd_epi_2021, g_stage
from medgov.domain.columns import a_stage_expr, egfr_expr, g_stage_expr, register_sql_functions


def reference_rows():
    text = shared_file("reference/domain.md").read_text(encoding="utf-8")
    rows = re.findall(r"\|\s*([\d.]+) mg/dL, (\d+) y, (female|male)\s*\|\s*([\d.]+)\s*\|", text)
    assert len(rows) >= 6, "domain.md's eGFR reference table was not found"
    return [(float(s), int(a), sex == "female", float(e)) for s, a, sex, e in rows]


def test_egfr_matches_domain_reference_values():
    for scr, age, female, expected in reference_rows():
        assert egfr_ckd_epi_2021(scr, age, female) == pytest.approx(expected, abs=0.01), (scr, age, female)


def test_spark_expression_equals_reference(spark):
    register_sql_functions(spark)
    rows = reference_rows()
    df = spark.createDataFrame([(s, a, f) for s, a, f, _ in rows], "scr double, age int, female boolean")
    got = df.select(egfr_expr(F.col("scr"), F.col("age"), F.col("female")).alias("e")).collect()
    for (_, _, _, expected), r in zip(rows, got):
        assert r["e"] == pytest.approx(expected, abs=0.01)


G_CASES = [(90, "G1"), (89.999, "G2"), (60, "G2"), (59.99, "G3a"), (45, "G3a"), (44.9, "G3b"), (30, "G3b"),
           (29.9, "G4"), (15, "G4"), (14.99, "G5"), (None, None)]
A_CASES = [(29.9, "A1"), (30, "A2"), (300, "A2"), (300.1, "A3"), (None, None)]


@pytest.mark.parametrize("egfr,stage", [c for c in G_CASES if c[0] is not None])
def test_g_stage_half_open_intervals(egfr, stage):
    assert g_stage(egfr) == stage


@pytest.mark.parametrize("acr,stage", [c for c in A_CASES if c[0] is not None])
def test_a_stage(acr, stage):
    assert a_stage(acr) == stage


def test_spark_stages_equal_the_pure_ones(spark):
    """One Spark job for every boundary: the column forms stage as the pure functions do (null stays null)."""
    register_sql_functions(spark)
    rows = [(None if e is None else float(e), None if a is None else float(a))
            for (e, _), (a, _) in zip(G_CASES, A_CASES + [(None, None)] * (len(G_CASES) - len(A_CASES)))]
    got = (spark.createDataFrame(rows, "e double, a double")
           .select(g_stage_expr(F.col("e")).alias("g"), a_stage_expr(F.col("a")).alias("a")).collect())
    assert [r["g"] for r in got] == [s for _, s in G_CASES]
    assert [r["a"] for r in got][:len(A_CASES)] == [s for _, s in A_CASES]


def test_the_functions_are_registered_once_per_session():
    """Each statement is a round trip to the JVM or the Connect server: a second dataset in the
    same session does not send them again; another session gets its own."""
    class Session:
        def __init__(self):
            self.statements = []

        def sql(self, statement):
            self.statements.append(statement)

    first, second = Session(), Session()
    for session in (first, first, second):
        register_sql_functions(session)
    assert len(first.statements) == len(second.statements) == 3
    assert all(s.startswith("CREATE OR REPLACE TEMPORARY FUNCTION") for s in first.statements)
