"""Example rows of failing checks: selected with GX's own semantics, masked, file-ordered."""

import json

import pytest

from gx_reference import GxReference
from medgov.quality.examples import examples
from medgov.quality.outcomes import unexpected_rows

ROWS = [  # file, line, code, value, low, high, birth_date
    ("a.csv", 1, "X", 5.0, 1.0, 2.0, "1980-05-06"),
    ("a.csv", 2, "Y", None, 3.0, 3.0, "1990-01-02"),
    ("a.csv", 3, "X", 50.0, None, 1.0, None),
    ("a.csv", 4, None, 0.5, 2.0, None, "2001-12-31"),
    ("b.csv", 1, "Z9", 10.0, 4.0, 1.0, "1975-07-07"),
    ("b.csv", 2, "Z9", 10.0, None, None, "1975-07-07"),
]
CASES = [
    ("expect_column_values_to_not_be_null", {"column": "value"}),
    ("expect_column_values_to_be_in_set", {"column": "code", "value_set": ["X", "Y"]}),
    ("expect_column_values_to_be_between", {"column": "value", "min_value": 1, "max_value": 10}),
    ("expect_column_values_to_be_between", {"column": "value", "min_value": 1, "max_value": 10, "strict_max": True}),
    ("expect_column_values_to_be_between", {"column": "value", "min_value": 5}),
    ("expect_column_values_to_match_regex", {"column": "code", "regex": "^[A-Z]$"}),
    ("expect_column_values_to_be_unique", {"column": "code"}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["code", "value"]}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "low", "column_B": "high"}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "low", "column_B": "high", "or_equal": True}),
]


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(ROWS, "file string, line long, code string, value double, low double, "
                                       "high double, birth_date string")


@pytest.fixture(scope="module")
def gx_counts(frame):
    """GX's own unexpected counts for each case, one suite per case so results map to cases."""
    gx = GxReference()
    return [GxReference.run(gx.definition([case]), frame)[0].result["unexpected_count"] for case in CASES]


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{k[7:]}-{i}" for i, (k, _) in enumerate(CASES)])
def test_selected_rows_are_the_rows_gx_counts(frame, gx_counts, i):
    kind, kwargs = CASES[i]
    assert unexpected_rows(frame, kind, kwargs).count() == gx_counts[i]


def test_examples_are_few_file_ordered_and_masked(frame):
    got = examples(frame, "expect_column_values_to_be_unique", {"column": "birth_date"}, "file", "line", limit=3)
    assert [(e["file"], e["line"]) for e in got] == [("b.csv", 1), ("b.csv", 2)]
    assert json.loads(got[0]["values"]) == {"birth_date": "1975-**-**"}
    many = examples(frame, "expect_column_values_to_be_in_set", {"column": "code", "value_set": []}, "file", "line",
                    limit=3)
    assert [(e["file"], e["line"]) for e in many] == [("a.csv", 1), ("a.csv", 2), ("a.csv", 3)]


def test_unknown_expectation_type_is_named():
    with pytest.raises(KeyError, match="expect_table_row_count"):
        unexpected_rows(None, "expect_table_row_count_to_equal", {"column": "x"})
