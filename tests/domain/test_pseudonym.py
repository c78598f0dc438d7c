"""Keyed pseudonyms (domain.md §4): one per person across institutions, keyed, and the key's sources."""

import pytest

from medgov.domain.pseudonym import load_key, person_key
from medgov.errors import MedgovError

KEY = b"k" * 32


def test_same_person_same_pseudonym_across_institutions():
    a = person_key(KEY, "H33030200001", "P1", "01", "11010519491231002X")
    b = person_key(KEY, "91350100M000100Y43", "X99", "01", "11010519491231002x")
    c = person_key(KEY, "H33030200001", "P1", "01", "110105491231002")
    assert a == b == c and len(a) == 32


def test_bad_check_character_falls_back_to_local_key():
    bad = person_key(KEY, "H33030200001", "P1", "01", "110101199003077777")
    other_org = person_key(KEY, "91350100M000100Y43", "P1", "01", "110101199003077777")
    assert bad != other_org  # not linkable without a valid number


def test_pseudonym_depends_on_key():
    assert person_key(KEY, "O", "P", "01", "11010519491231002X") != person_key(b"j" * 32, "O", "P", "01", "11010519491231002X")


def test_missing_key_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDGOV_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("MEDGOV_PSEUDONYM_KEY_FILE", raising=False)
    with pytest.raises(MedgovError, match="no pseudonym key"):
        load_key()
    monkeypatch.setenv("MEDGOV_PSEUDONYM_KEY_FILE", str(tmp_path / "absent.key"))
    with pytest.raises(MedgovError, match="cannot read the pseudonym key file"):
        load_key()
    (tmp_path / "k").write_text("s3cr3t-key-from-a-file-0000\n")
    monkeypatch.setenv("MEDGOV_PSEUDONYM_KEY_FILE", str(tmp_path / "k"))
    assert load_key() == b"s3cr3t-key-from-a-file-0000"


def test_a_number_links_only_where_the_record_agrees_with_it():
    """A newborn registered under a parent's number must not become the parent: the number
    links records across institutions only where its birth date and sex agree with the record."""
    parent = person_key(KEY, "H33030200001", "P1", "01", "11010519491231002X", "1949-12-31", "2")
    elsewhere = person_key(KEY, "91350100M000100Y43", "X9", "01", "11010519491231002X", "1949-12-31", None)
    newborn = person_key(KEY, "91350100M000100Y43", "B1", "01", "11010519491231002X", "2024-05-01", "1")
    wrong_sex = person_key(KEY, "91350100M000100Y43", "B2", "01", "11010519491231002X", "1949-12-31", "1")
    assert parent == elsewhere == person_key(KEY, "O", "P", "01", "11010519491231002X")  # unknown: no contradiction
    assert newborn != parent and wrong_sex != parent
    assert newborn == person_key(KEY, "91350100M000100Y43", "B1", None, None)  # the local key


def test_only_ascii_digits_make_a_number():
    arabic_indic = "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X"  # the same digits in another script: str.isdigit() says yes
    assert person_key(KEY, "H33030200001", "P1", "01", arabic_indic) == person_key(KEY, "H33030200001", "P1", None, None)
