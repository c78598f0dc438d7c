import pytest

from medgov.domain.icd import parse_icd


@pytest.mark.parametrize("code,stem,category,manifestations", [
    ("I10.x00x002", "I10", "I10", ()),               # domain.md §2 examples
    ("N18.300x001+D63.8*", "N18.3", "N18", ("D63.8",)),
    ("E11.900", "E11.9", "E11", ()),
    ("I12.000x001", "I12.0", "I12", ()),
    ("N18.3", "N18.3", "N18", ()),
    ("ｎ１８．３００", "N18.3", "N18", ()),
    (" e11.200x002+N08.3* ", "E11.2", "E11", ("N08.3",)),
    ("E112", "E11.2", "E11", ()),                    # written without the dot: the subcategory stays
    ("N183", "N18.3", "N18", ()),
    ("I10", "I10", "I10", ()),
    ("D63.8*+N18.3", "N18.3", "N18", ("D63.8",)),   # manifestation first: the etiology is still primary
    ("D63.8*+N18.3†", "N18.3", "N18", ("D63.8",)),
    ("M8140/3", None, None, ()),                     # ICD-O morphology: not a diagnosis (not M81.4)
    ("D63.8*", None, None, ("D63.8",)),              # a manifestation alone names no etiology
])
def test_stems(code, stem, category, manifestations):
    icd = parse_icd(code)
    assert (icd.stem, icd.category, icd.manifestations) == (stem, category, manifestations)


def test_original_code_is_kept():
    assert parse_icd("N18.300x001").original == "N18.300x001"


def test_not_icd_shaped():
    assert parse_icd("abc").stem is None
