"""Per-batch outcomes from one pass over all batches equal what Great Expectations reports
when run on each batch alone: counts, percentages and the verdict, for every kind of check
the catalogue uses, with nulls, thresholds, ignored rows and values repeated across batches."""

from __future__ import annotations

import pytest

from gx_reference import GxReference
from medgov.quality.outcomes import Outcome, batch_outcomes
from medgov.spec.checks import catalogue

ROWS = [  # batch, code, value, low, high, extra
    ("A/1", "X", 5.0, 1.0, 2.0, "p"),
    ("A/1", "Y", None, 3.0, 3.0, "p"),
    ("A/1", "X", 50.0, None, 1.0, None),
    ("A/1", None, 0.5, 2.0, None, "q"),
    ("A/2", "Z9", 10.0, 4.0, 1.0, "p"),  # Z9 repeats only inside A/2; X of A/1 appears once here
    ("A/2", "Z9", 10.0, None, None, "p"),
    ("A/2", "X", None, 1.0, 1.0, None),
    ("B/1", None, None, None, None, None),  # a batch with every value missing
    ("B/1", None, None, 7.0, None, None),
]
CASES = [
    ("expect_column_values_to_not_be_null", {"column": "value"}),
    ("expect_column_values_to_not_be_null", {"column": "value", "mostly": 0.5}),
    ("expect_column_values_to_be_in_set", {"column": "code", "value_set": ["X", "Y"]}),
    ("expect_column_values_to_be_in_set", {"column": "code", "value_set": ["X", "Y"], "mostly": 0.6}),
    ("expect_column_values_to_be_between", {"column": "value", "min_value": 1, "max_value": 10}),
    ("expect_column_values_to_be_between", {"column": "value", "min_value": 1, "max_value": 10, "strict_max": True}),
    ("expect_column_values_to_be_between", {"column": "value", "min_value": 5, "mostly": 0.99}),
    ("expect_column_values_to_match_regex", {"column": "code", "regex": "^[A-Z]$"}),
    ("expect_column_values_to_be_unique", {"column": "code"}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["code", "extra"]}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["code", "extra"], "ignore_row_if": "any_value_is_missing"}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "low", "column_B": "high"}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "low", "column_B": "high", "or_equal": True,
                                                          "ignore_row_if": "either_value_is_missing"}),
]
NUMBERS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count", "missing_percent",
           "unexpected_percent_total", "unexpected_percent_nonmissing")


def test_the_cases_cover_every_kind_of_check_in_the_catalogue():
    used = {c.expectation for c in catalogue() if c.engine == "gx"}
    assert used <= {kind for kind, _ in CASES}


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(ROWS, "batch string, code string, value double, low double, high double, "
                                       "extra string")


@pytest.fixture(scope="module")
def gx_by_batch(frame):
    """GX run on each batch alone, every case in one suite."""
    gx = GxReference()
    definition = gx.definition(CASES)
    summary = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
    return {batch: GxReference.run(definition, frame.where(frame.batch == batch), summary)
            for batch in sorted({r[0] for r in ROWS})}


def _gx_result(results, kind, kwargs):
    """The result of one case: same type, and the kwargs the case set."""
    for r in results:
        cfg = r.expectation_config
        if cfg.type == kind and all(cfg.kwargs.get(k) == v for k, v in kwargs.items()) and \
                set(kwargs) == {k for k in cfg.kwargs if k != "batch_id"}:
            return r
    raise AssertionError((kind, kwargs))


def test_one_pass_gives_each_batch_what_gx_gives_it_alone(frame, gx_by_batch):
    mine = batch_outcomes(frame, CASES, "batch")
    assert set(mine) == set(gx_by_batch)
    compared = 0
    for batch, results in gx_by_batch.items():
        for (kind, kwargs), outcome in zip(CASES, mine[batch]):
            gx_result = _gx_result(results, kind, kwargs)
            expected = {k: gx_result.result.get(k) for k in NUMBERS if k in gx_result.result}
            got = outcome.result()
            assert got == pytest.approx(expected), (batch, kind, kwargs, got, expected)
            assert outcome.success(kwargs.get("mostly", 1.0)) == gx_result.success, (batch, kind, kwargs)
            compared += 1
    assert compared == len(CASES) * 3
    # the cases are not trivial: some pass, some fail, some batches hold nothing to consider
    verdicts = [o.success(kw.get("mostly", 1.0)) for b in mine for (_, kw), o in zip(CASES, mine[b])]
    assert True in verdicts and False in verdicts
    assert any(o.considered == 0 for b in mine for o in mine[b])


def test_an_outcome_on_no_rows_is_vacuous():
    assert Outcome(0, 0, 0).success(1.0) and Outcome(0, None, 0).success(1.0)
    assert Outcome(0, 0, 0).result()["unexpected_percent"] is None
