"""Resident identity numbers (GB 11643, domain.md §1): check characters, normalisation, 15 -> 18."""

import pytest

from medgov.domain.identity import canonical_id_no, id_check_char, normalize_id_no, upgrade_15, valid_id_no


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


@pytest.mark.parametrize("number", ["١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "11010519491231002X"[:-3] + "²0X", "١١٠١٠٥٤٩١٢٣١٠٠٢"])
def test_digits_are_ascii_only(number):
    assert not valid_id_no(number) and canonical_id_no(number) is None
