"""The text test a view runs before parsing: derived only where a `where` clause needs a
literal in the resource, and never changing a view's rows (escaped JSON, literals in the
wrong element, other resource types)."""

from __future__ import annotations

import json

import pytest

from medgov.views.fhirpath import parse
from medgov.views.prefilter import requirements, view_requirements

from test_typed import OBSERVATIONS, OTHERS, PATIENTS, _schema_views


@pytest.mark.parametrize("expression, expected", [
    ("code.coding.where(system = 'http://loinc.org' and code = '85354-9').exists()",
     [{"http://loinc.org"}, {"85354-9"}]),
    ("category.coding.where(code = 'laboratory').exists()", [{"laboratory"}]),
    ("a.where(b = 'x').c = 'y'", [{"x"}, {"y"}]),
    ("'y' = a.c", [{"y"}]),
    ("name[0].family = 'Wei'", [{"Wei"}]),
    ("gender in ('male' | 'female')", [{"male", "female"}]),
    ("(a = 'x' and b = 'y') or c = 'z'", [{"x", "z"}]),  # one of each side's requirements
    # nothing required: the literal need not be in the resource for these to be true
    ("code.coding.where(code = 'x').empty()", []),
    ("(code = 'x').not()", []),
    ("a != 'x'", []),
    ("a ~ 'X'", []),  # equivalence ignores case
    ("a = 'x' xor b = 'y'", []),
    ("name.family.lower() = 'x'", []),
    ("%constant = 'x'", []),
    ("a = 'x' or b.exists()", []),
    # literals a compiler may compare by value, or that JSON must escape
    ("value = '5'", []), ("active = 'true'", []), ("text = 'say \"hi\"'", []),
])
def test_requirements_only_where_truth_needs_the_literal(expression, expected):
    assert [set(r) for r in requirements(parse(expression))] == expected


def test_the_dataset_views_require_their_codes():
    views = _schema_views()
    assert [set(r) for r in view_requirements(views["blood_pressure"])] == [{"http://loinc.org"}, {"85354-9"}]
    assert [set(r) for r in view_requirements(views["lab_result"])] == [{"laboratory"}]
    assert view_requirements(views["patient"]) == []


def _texts() -> list[str]:
    plain = [json.dumps(r, ensure_ascii=False) for r in OBSERVATIONS + PATIENTS + OTHERS]
    bp = next(r for r in OBSERVATIONS if r["id"] == "o4")
    lab = next(r for r in OBSERVATIONS if r["id"] == "o1")
    escaped = [
        # the code and the system written with JSON escapes: the literal is not in the text verbatim
        json.dumps({**bp, "id": "o4-escaped"}).replace("85354-9", "85354\\u002d9").replace("/", "\\/"),
        json.dumps({**lab, "id": "o1-ascii"}, ensure_ascii=True),
        # the literals present, but in the wrong elements: the text test passes, the view's where decides
        json.dumps({**bp, "id": "o4-wrong", "code": {"coding": [{"system": "urn:x", "code": "1"}],
                                                     "text": "http://loinc.org 85354-9"}}),
    ]
    return plain + escaped


@pytest.fixture(scope="module")
def texts(spark):
    return spark.createDataFrame([(t, "org") for t in _texts()], "resource_json string, org_code string")


@pytest.mark.parametrize("name", ["blood_pressure", "lab_result", "diagnosis"])
@pytest.mark.parametrize("compiler", ["typed", "variant"])
def test_the_text_test_never_changes_a_views_rows(spark, texts, monkeypatch, name, compiler):
    from medgov.views import prefilter
    from medgov.views.runner import run_view

    view = _schema_views()[name]

    def rows():
        df = run_view(view, texts, "resource_json", keep=("org_code",), compiler=compiler)
        return sorted(json.dumps(r.asDict(recursive=True), sort_keys=True) for r in df.collect())

    with_test = rows()
    monkeypatch.setattr(prefilter, "text_test", lambda view, text: None)
    assert with_test == rows()
    ids = {json.loads(r)["id"] for r in with_test}
    if name == "blood_pressure":
        assert ids == {"o4", "o4-escaped"}  # the escaped spelling kept, the wrong elements not
    if name == "lab_result":
        assert {"o1", "o1-ascii"} <= ids


def test_the_text_test_skips_resources_without_the_literal(spark, texts):
    from pyspark.sql import functions as F

    from medgov.views.prefilter import text_test

    test = text_test(_schema_views()["blood_pressure"], F.col("resource_json"))
    kept = {json.loads(r[0])["id"] for r in texts.where(test).select("resource_json").collect()}
    # the blood-pressure resource, those holding a backslash (escapes: they may spell the code
    # otherwise) and the one naming the code elsewhere; every other resource is skipped
    assert kept == {"o4", "o4-escaped", "o1-ascii", "o4-wrong"}
