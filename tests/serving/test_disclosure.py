"""Disclosure control of released counts: small cells suppressed, the others rounded, and
complementary suppression so that no suppressed value is one subtraction away from the
margins or the total beside it."""

from __future__ import annotations

import random

from medgov.serving.disclosure import Policy, protect, recoverable


def test_a_small_cell_is_suppressed_and_so_is_its_complement():
    # female 7, male 30: the total 37 less the male count would give the female 7 back
    r = protect(["sex"], [["female", "male"]], {("female",): 7, ("male",): 30}, Policy(10, 5))
    assert r.cells == {("female",): None, ("male",): None}
    assert r.total == 35  # 37 rounded to 5
    assert r.margins["sex"] == {"female": None, "male": None}
    assert r.suppressed_primary == 2  # the female cell and its (equal) margin
    assert recoverable(r, [["female", "male"]]) == []


def test_counts_at_or_above_the_minimum_are_rounded_and_zero_stays_zero():
    domains = [["a", "b", "c"]]
    r = protect(["x"], domains, {("a",): 10, ("b",): 23, ("c",): 0}, Policy(10, 5))
    assert r.cells == {("a",): 10, ("b",): 25, ("c",): 0} and r.total == 35 and r.suppressed == 0
    r = protect(["x"], domains, {("a",): 10, ("b",): 23, ("c",): 0}, Policy(10, 5, suppress_zero=True))
    assert r.cells[("c",)] is None and r.cells[("a",)] is None  # the zero's complement: the smallest other


def test_the_cms_rule_and_no_rounding_are_settings():
    r = protect(["x"], [["a", "b", "c"]], {("a",): 10, ("b",): 11, ("c",): 12}, Policy(min_cell=11, rounding=1))
    assert r.cells == {("a",): None, ("b",): None, ("c",): 12} and r.total == 33


def test_a_cohort_below_the_minimum_suppresses_everything():
    r = protect(["x"], [["a", "b"]], {("a",): 4, ("b",): 3}, Policy(10, 5))
    assert r.total is None and all(v is None for v in r.cells.values()) and r.notes


def test_no_suppressed_value_is_one_subtraction_away_in_random_tables():
    rng = random.Random(11)
    for trial in range(200):
        dims = rng.randint(1, 3)
        domains = [[f"v{j}" for j in range(rng.randint(2, 5))] for _ in range(dims)]
        counts = {}
        import itertools

        for key in itertools.product(*domains):
            counts[key] = rng.choice([0, 0, 1, 2, 3, 5, 8, 9, 10, 12, 20, 40, 100])
        r = protect([f"d{i}" for i in range(dims)], domains, counts, Policy(10, 5))
        assert recoverable(r, domains) == [], (trial, counts)
        for key, c in counts.items():  # every small cell is hidden; every shown value a multiple of 5
            if 0 < c < 10:
                assert r.cells[key] is None, (trial, key)
            if r.cells[key] is not None:
                assert r.cells[key] % 5 == 0
