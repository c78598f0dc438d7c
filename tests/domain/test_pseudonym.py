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


@pytest.mark.parametrize("key", [b"0123456789abcdef", "ключ-密钥-key-of-many-bytes".encode() * 2, b"k" * 64, b"x" * 65,
                                 bytes(range(1, 120))])
def test_the_spark_source_key_equals_the_python_pseudonym(spark, key):
    """`with_source_key` computes HMAC-SHA256 in Spark expressions: equal to `pseudonym` for
    keys shorter than, as long as and longer than SHA-256's block, and any text."""
    from medgov.domain.columns import with_source_key
    from medgov.domain.pseudonym import pseudonym

    rows = [("H33030200001", "P001"), ("H33030200001", ""), ("ORG9", "患者-０１|x"), ("", "p"), ("A", None)]
    df = spark.createDataFrame(rows, "_org_code string, patient_id string")
    got = {(r["_org_code"], r["patient_id"]): r["source_key"] for r in with_source_key(df, key).collect()}
    for org, pid in rows[:-1]:
        assert got[(org, pid)] == pseudonym(key, "LOCAL", org, pid), (org, pid)
    assert got[("A", None)] is None  # no local id, no key (the contract requires one)
    # the key is data in the plan, not a literal Spark could print
    from medgov.domain.columns import _hmac_pads

    plan = with_source_key(df, key)._jdf.queryExecution().toString().upper()
    assert "_IPAD" in plan and not any(p.hex().upper()[:32] in plan for p in _hmac_pads(key))
