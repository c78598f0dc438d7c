"""Terminology translation: local lab items to LOINC by code, then by name, specimen and unit,
on spellings unlike our sample's; anything not certain goes to the worklist with candidates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medgov.domain.lab_terms import CODE, NAME, SITE, UNMAPPED, LabTerms, name_key
from medgov.errors import MedgovError
from medgov.spec.terminology import Terminology

TERM = Terminology.load()
LABS = LabTerms.of(TERM)
LAB = {code: c for code, c in TERM.concepts.items() if c["category"] == "laboratory"}
# the LOINC property axis and the shape its canonical UCUM unit must have
PROPERTY_UNITS = {"SCnc": r"mol/", "MCnc": r"g(/|\{)|g/", "CCnc": r"^(U|\[IU\])/", "NCnc": r"^10\*\d+/", "ACnc": r"\[IU\]",
                  "MFr": r"^%$", "NFr": r"^%$", "VFr": r"^%$", "SFr": r"mol/mol", "MRto": r"^mg/g$",
                  "EntVol": r"^fL$", "Time": r"^s$", "RelTime": r"\{INR\}", "PrThr": r"^1$", "Rden": r"^1$",
                  "pH": r"\[pH\]", "Naric": r"HPF", "VRat/Area": r"mL/min"}


def test_the_dictionary_holds_sixty_concepts_each_with_its_axes():
    assert len(LAB) >= 60
    for code, c in LAB.items():
        assert re.fullmatch(r"\d{1,7}-\d", code), code
        assert c["display"] and c["synonyms"] and c["specimen"], code
        assert set(c["specimen"]) <= {"serum", "plasma", "serum_or_plasma", "blood", "urine", "ppp"}, code
        assert re.search(PROPERTY_UNITS[c["property"]], c["unit"]), (code, c["property"], c["unit"])


def test_a_mass_concentration_code_never_carries_a_molar_unit():
    """Whatever unit an item arrives in, the Observation carries the concept's canonical one
    (converted), and that unit has the concept's property."""
    from datetime import datetime, timezone

    from medgov.normalize.builders import build_lab

    when = datetime(2024, 3, 1, tzinfo=timezone.utc)
    checked = 0
    for code, c in LAB.items():
        for unit in [c["unit"], *c.get("convert", {})]:
            if unit in ("1",):
                continue
            row = {"_org_code": "SITEX", "report_id": "R", "item_seq": "1", "visit_id": None, "patient_key": "p",
                   "item_code": "LOCAL", "item_name": c["synonyms"][0], "result": "1.5", "unit": unit,
                   "ref_range": None, "abnormal_flag": None, "specimen": c["specimen"][0],
                   "collected_time": when, "reported_time": when}
            [(resource, flat)] = build_lab(row, b"k" * 32, TERM)
            if flat["loinc"] is None:
                continue  # left to the steward: checked below
            checked += 1
            assert resource["valueQuantity"]["unit"] == TERM.concepts[flat["loinc"]]["unit"], (code, unit, flat)
            assert re.search(PROPERTY_UNITS[TERM.concepts[flat["loinc"]]["property"]], flat["unit"]), (code, unit)
    assert checked > 100


@pytest.mark.parametrize("item,expected", [
    # (code, name, specimen, unit) -> (LOINC, method)
    (("9001", "肌酐", "血清", "μmol/L"), ("14682-9", NAME)),
    (("9001", "肌酐(酶法)", "静脉血清", "umol/l"), ("14682-9", NAME)),
    (("9002", "肌酐", "随机尿", "mmol/L"), ("14683-7", NAME)),          # urine creatinine stays urine
    (("CREA", "肌酐", "尿液", "umol/L"), ("14683-7", NAME)),            # a packaged code does not override the specimen
    (("9003", "尿肌酐", "尿", "mg/dL"), ("2161-8", NAME)),
    (("9004", "Creatinine", "Serum", "mg/dl"), ("2160-0", NAME)),       # mass unit: the mass concept
    (("9005", "总胆固醇", "血清", "mmol/L"), ("14647-2", NAME)),
    (("9006", "谷丙转氨酶（ALT）", "血清", "IU/L"), ("1742-6", NAME)),
    (("9007", "ＮＴ－ｐｒｏＢＮＰ", "血浆", "pg/ml"), ("33762-6", NAME)),
    (("9008", "hs-CRP", "", "mg/L"), ("30522-7", NAME)),                 # no specimen: lower confidence
    (("9009", "白细胞计数", "EDTA抗凝血", "×10^9/L"), ("6690-2", NAME)),
    (("9010", "D-二聚体", "枸橼酸钠血浆", "mg/L FEU"), ("48065-7", NAME)),
    (("9011", "尿蛋白", "晨尿", ""), ("20454-5", NAME)),                 # dipstick, no unit: the presence concept
    (("CREA", "肌酐", "血清", "umol/L"), ("14682-9", CODE)),
])
def test_items_written_the_way_hospitals_write_them(item, expected):
    m = LABS.map("H99999999999", *item)
    assert (m.loinc, m.method) == expected, m
    assert m.confidence == (0.8 if not item[2] else 0.95 if m.method == CODE else 0.9)


@pytest.mark.parametrize("item,first,why", [
    (("9101", "肌酐", "", "umol/L"), "14682-9", "2 concepts fit"),                   # serum or urine?
    (("9102", "糖化血红蛋白", "血清", "%"), "4548-4", "specimen serum is not"),
    (("9103", "肌酐", "血清", "g/L"), "14682-9", "unit g/L is not one of"),
    (("9104", "肌酐", "脑脊液", "umol/L"), "14682-9", "specimen not recognised"),
    (("9105", "TP", "血清", ""), "2885-2", "no unit given"),                         # total protein, or syphilis?
    (("ALT", "其他", "血清", "U/L"), "1742-6", "only the code reads as an abbreviation"),
    (("9106", "脂肪酶同工酶X", "血清", "U/L"), None, "no concept has this name"),
])
def test_anything_uncertain_goes_to_the_worklist_with_ranked_candidates(item, first, why):
    m = LABS.map("H99999999999", *item)
    assert m.loinc is None and m.method == UNMAPPED and m.confidence is None
    assert (m.candidates[0] if m.candidates else None) == first
    assert why in m.note


def test_names_compare_without_width_case_blanks_or_punctuation():
    assert name_key("Ｎ Ｔ－ｐｒｏ ＢＮＰ") == name_key("nt-probnp") == "ntprobnp"
    assert name_key("尿微量白蛋白/肌酐") == name_key("尿微量白蛋白 肌酐")
    assert name_key("NEUT%") != name_key("NEUT#")


def test_a_sites_own_entries_win_and_its_spellings_extend_the_maps(tmp_path):
    maps = tmp_path / "concept_maps"
    maps.mkdir()
    (maps / "lab_items.yaml").write_text("entries:\n  - {org: H99999999999, local: 'X-77', loinc: 14957-5}\n",
                                         encoding="utf-8")
    (maps / "specimens.yaml").write_text("urine: [小便]\n", encoding="utf-8")
    (maps / "units.yaml").write_text("毫克/升: mg/L\n", encoding="utf-8")
    site = LabTerms.of(Terminology.load(tmp_path))
    assert site.map("H99999999999", "X-77", "whatever", None, None).method == SITE
    assert site.map("H99999999999", "Q", "尿肌酐", "小便", "umol/L").loinc == "14683-7"
    assert site.map("H99999999999", "Q", "尿微量白蛋白", "尿", "毫克/升").loinc == "14957-5"
    assert Terminology.load(tmp_path).version != TERM.version  # lineage can tell the mappings apart


@pytest.mark.parametrize("file,text,message", [
    ("lab_items.yaml", "entries:\n  - {org: H1, local: X}\n", "entries[0]: needs org, local and loinc"),
    ("lab_items.yaml", "entries:\n  - {org: H1, local: X, loinc: 1-1}\n", "entries[0].loinc: 1-1 is not a concept"),
    ("lab_items.yaml", "entries: [\n", "line"),
    ("specimens.yaml", "saliva: [唾液]\n", "saliva: not a specimen category"),
])
def test_a_malformed_site_map_is_one_line_naming_the_file(tmp_path, file, text, message):
    (tmp_path / "concept_maps").mkdir()
    (tmp_path / "concept_maps" / file).write_text(text, encoding="utf-8")
    with pytest.raises(MedgovError) as exc:
        Terminology.load(tmp_path)
    assert message in str(exc.value) and file in str(exc.value) and "\n" not in str(exc.value)


def test_every_observation_keeps_its_local_coding_and_says_how_it_was_coded():
    from datetime import datetime, timezone

    from medgov.normalize.builders import build_lab

    when = datetime(2024, 3, 1, tzinfo=timezone.utc)
    row = {"_org_code": "H99999999999", "report_id": "R", "item_seq": "1", "visit_id": None, "patient_key": "p",
           "item_code": "L-0042", "item_name": "尿肌酐", "result": "8.1", "unit": "mmol/L", "ref_range": None,
           "abnormal_flag": None, "specimen": "尿", "collected_time": when, "reported_time": when}
    [(resource, flat)] = build_lab(row, b"k" * 32, TERM)
    assert [c["code"] for c in resource["code"]["coding"]] == ["14683-7", "L-0042"]
    assert resource["code"]["coding"][1]["system"] == "urn:medgov:lis:H99999999999"
    assert (flat["map_method"], flat["map_confidence"]) == (NAME, 0.9)
    assert flat["value"] == 8100.0 and flat["unit"] == "umol/L" and flat["unit_status"] == "converted"


def test_the_packaged_maps_name_only_known_concepts():
    root = Path(__file__).resolve().parents[2] / "schemas" / "concept_maps"
    assert (root / "specimens.yaml").is_file()
    for (org, local), code in TERM.lab_map.items():
        assert code in TERM.concepts, (org, local)
