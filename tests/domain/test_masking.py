"""Masking before a person sees example rows (schemas/masking.yaml, domain.md §4)."""

from medgov.domain.masking import SUPPRESSED, mask_record, mask_value


def test_masking_generalises_quasi_identifiers_and_cuts_long_text():
    assert mask_value("birth_date", "1980-05-06") == "1980-**-**"
    assert mask_value("address_code", "110105") == "11****"
    assert mask_value("visit_id", "V0001") == SUPPRESSED and mask_value("patient_id", "***") == SUPPRESSED
    assert mask_value("result", "6.6") == "6.6" and mask_value("value", 6.5) == "6.5"
    assert mask_value("item_name", "x" * 500).endswith("…") and len(mask_value("item_name", "x" * 500)) == 61
    assert mask_record({"sex_code": "1", "unit": "mmol/L", "dbp": None}) == {"sex_code": SUPPRESSED,
                                                                            "unit": "mmol/L", "dbp": None}


def test_a_hold_reason_medgov_wrote_is_shown_whole():
    reason = "held: patient quarantined (patient_20240101.csv line 1234: missing required value in birth_date)"
    assert len(reason) > 60 and mask_value("hold_reason", reason) == reason
    assert mask_value("diag_name", reason).endswith("…")  # a delivered text of that length is cut
