import pytest

from medgov.errors import MedgovError
from medgov.identity import (
    canonical_id_no,
    id_check_char,
    load_key,
    normalize_id_no,
    person_key,
    upgrade_15,
    valid_id_no,
)

KEY = b"k" * 32


@pytest.mark.parametrize("number", ["11010519491231002X", "440524188001010014", "34052419800101001X"])
def test_domain_examples_are_valid(number):  # domain.md §1
    assert valid_id_no(number)


def test_domain_invalid_example_and_its_right_check_character():
    assert not valid_id_no("110101199003077777")
    assert id_check_char("11010119900307777") == "4"


def test_normalisation_full_width_blanks_and_lowercase_x():
    assert normalize_id_no(" １１０１０５１９４９１２３１００２ｘ ") == "11010519491231002X"
    assert canonical_id_no("11010519491231002x") == "11010519491231002X"


def test_legacy_15_digit_number_upgrades():
    assert upgrade_15("110105491231002") == "11010519491231002X"
    assert canonical_id_no("110105491231002") == "11010519491231002X"


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
