"""A feed unlike our own sample, as three institutions medgov has never seen might write it:
their own LIS codes (numeric, prefixed, look-alike), item names in Chinese, English,
abbreviations and full-width characters, serum and urine creatinine side by side, units
in mass and in molar concentration, items no dictionary knows and items only a steward can
decide; a few patients whose demographics are quarantined while their results are not, a
patient delivered one batch after their results, and ICD codes written without the dot.

Each item says what it truly is (`truth`), so tests can check what the mapping made of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from medgov.sample.generate import COLUMNS, Generated, Org, _write_batch, make_id_no
from medgov.spec.terminology import loinc

# creatinine molar <-> mass (domain.md §2, 88.4 µmol/L per mg/dL)
_MGDL = 88.4


@dataclass(frozen=True)
class Item:
    """One lab item of one institution: its local code, name, specimen and unit, what it
    truly is (a concept of `concept_maps/loinc.yaml` by name, or None where only a steward
    can say), and its normal range."""

    code: str
    name: str
    specimen: str
    unit: str
    truth: str | None
    low: float
    high: float
    qualitative: tuple[str, ...] = ()


@dataclass(frozen=True)
class Site:
    org: Org
    items: tuple[Item, ...]
    creatinine: str  # the code of its serum creatinine item (CKD patients run high)
    urine_creatinine: tuple[str, ...] = ()


def _org(code: str, encoding: str, newline: str, dt: str, d: str) -> Org:
    return Org(code, encoding, newline, dt, d, {}, "LIS")


SITES = (
    # numeric codes, Chinese names with method notes
    Site(_org("H44010600031", "utf-8", "\n", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"), (
        Item("10001", "肌酐(酶法)", "血清", "μmol/L", "creatinine_molar", 57, 111),
        Item("10002", "尿肌酐", "尿", "mmol/L", "creatinine_urine_molar", 3, 20),
        Item("10003", "尿微量白蛋白/尿肌酐", "随机尿", "mg/mmol", "acr_urine", 0.2, 3),
        Item("10010", "葡萄糖", "血浆", "mmol/L", "glucose", 3.9, 6.1),
        Item("10011", "糖化血红蛋白A1c", "全血", "%", "hba1c", 4, 6),
        Item("10020", "谷丙转氨酶", "血清", "U/L", "alt", 7, 40),
        Item("10021", "谷草转氨酶", "血清", "U/L", "ast", 13, 35),
        Item("10030", "总胆固醇", "血清", "mmol/L", "cholesterol_molar", 3, 5.2),
        Item("10031", "甘油三酯", "血清", "mmol/L", "triglyceride_molar", 0.5, 1.7),
        Item("10032", "高密度脂蛋白胆固醇", "血清", "mmol/L", "hdl_molar", 1, 1.9),
        Item("10033", "低密度脂蛋白胆固醇", "血清", "mmol/L", "ldl_molar", 1.5, 3.4),
        Item("10040", "钾", "血清", "mmol/L", "potassium", 3.5, 5.3),
        Item("10041", "钠", "血清", "mmol/L", "sodium", 137, 147),
        Item("10050", "尿素", "血清", "mmol/L", "urea_molar", 2.9, 8.2),
        Item("10051", "尿酸", "血清", "μmol/L", "urate_molar", 150, 420),
        Item("10060", "白细胞计数", "EDTA抗凝血", "10^9/L", "wbc", 3.5, 9.5),
        Item("10061", "血红蛋白", "EDTA抗凝血", "g/L", "hemoglobin", 115, 150),
        Item("10062", "血小板计数", "EDTA抗凝血", "10^9/L", "platelets", 125, 350),
        Item("10070", "N末端脑钠肽前体", "血浆", "pg/mL", "nt_probnp", 10, 125),
        Item("10099", "肝纤维化四项组合", "血清", "", None, 1, 5),  # a local panel no dictionary knows
    ), creatinine="10001", urine_creatinine=("10002",)),
    # English and abbreviations, mass units
    Site(_org("52330100MJ98765430", "utf-8-sig", "\r\n", "%Y/%m/%d %H:%M", "%Y/%m/%d"), (
        Item("L001", "CREA", "Serum", "mg/dL", "creatinine_mass", 0.6, 1.2),
        Item("L002", "U-CREA", "Urine", "mg/dL", "creatinine_urine_mass", 20, 300),
        Item("L003", "UACR", "Urine", "mg/g", "acr_urine", 2, 30),
        Item("L004", "GLU", "Plasma", "mg/dL", "glucose_mass", 70, 110),
        Item("L005", "HbA1c", "Whole blood", "%", "hba1c", 4, 6),
        Item("L006", "ALT", "Serum", "IU/L", "alt", 7, 40),
        Item("L007", "hs-CRP", "Serum", "mg/L", "hs_crp", 0, 3),
        Item("L008", "hs-cTnI", "Serum", "ng/L", "troponin_i_hs", 0, 26),
        Item("L009", "PT", "Citrated plasma", "s", "prothrombin_time", 10, 14),
        Item("L010", "INR", "Citrated plasma", "", "inr", 0.8, 1.2),
        Item("L011", "D-Dimer", "Citrated plasma", "mg/L FEU", "d_dimer_feu", 0, 0.5),
        Item("L012", "WBC", "Whole blood", "10^9/L", "wbc", 3.5, 9.5),
        Item("L013", "Creatinine", "", "umol/L", None, 57, 111),  # no specimen: serum or urine?
    ), creatinine="L001", urine_creatinine=("L002",)),
    # look-alike codes and names, full-width characters, GB18030
    Site(_org("H33072100518", "gb18030", "\r\n", "%Y%m%d%H%M%S", "%Y%m%d"), (
        Item("JY-CR", "肌　酐", "血清", "umol/l", "creatinine_molar", 57, 111),
        Item("JY-CR2", "肌酐", "尿液", "μmol/L", "creatinine_urine_molar", 3000, 20000),  # urine, under a look-alike code
        Item("JY-ALB", "白蛋白", "血清", "g/L", "albumin_serum", 40, 55),
        Item("JY-TBIL", "总胆红素", "血清", "μmol/L", "bilirubin_total_molar", 3.4, 20.5),
        Item("JY-K", "Ｋ", "血清", "mmol/L", "potassium", 3.5, 5.3),
        Item("JY-GLU", "ＧＬＵ", "血清", "mmol/L", "glucose", 3.9, 6.1),
        Item("JY-PRO", "尿蛋白", "晨尿", "", "protein_urine_strip_presence", 0, 0, ("阴性", "±", "1+", "2+")),
        Item("JY-TP", "TP", "血清", "", None, 0, 0, ("阴性", "阳性")),  # total protein, or syphilis? a steward says
    ), creatinine="JY-CR", urine_creatinine=("JY-CR2",)),
)

CKD_DX = (("N183", "慢性肾脏病3期"), ("N184", "慢性肾脏病4期"), ("E112", "2型糖尿病伴肾病"))
OTHER_DX = (("I10", "高血压"), ("E119", "2型糖尿病"), ("J069", "上呼吸道感染"), ("K297", "胃炎"))
SURNAMES = "欧阳司马上官诸葛东方皇甫尉迟公孙慕容长孙"
GIVEN = "天佑婉清子涵一诺梓轩雨泽欣怡浩宇"


@dataclass
class ForeignFeed:
    """What was written: the batches, and per lab item (org, code) the LOINC code it truly is."""

    generated: Generated
    truth: dict[tuple[str, str], str | None] = field(default_factory=dict)
    quarantined_patients: list[tuple[str, str]] = field(default_factory=list)  # (org, patient id)
    late_patients: list[tuple[str, str]] = field(default_factory=list)  # delivered in the second batch


def _value(rng: random.Random, item: Item, high: bool) -> str:
    if item.qualitative:
        return rng.choice(item.qualitative)
    lo, hi = (item.high * 1.6, item.high * 4) if high else (item.low, item.high)
    return f"{rng.uniform(lo, hi):.2f}"


def generate_foreign(out: str | Path, patients: int = 90, seed: int = 3, start: date = date(2024, 1, 1)) -> ForeignFeed:
    """Write the foreign feed under `out` (landing-zone layout): two batches per institution."""
    rng = random.Random(seed)
    out = Path(out)
    feed = ForeignFeed(Generated())
    for s, site in enumerate(SITES):
        org = site.org
        feed.truth.update({(org.code, i.code): loinc(i.truth) if i.truth else None for i in site.items})
        batches: dict[str, dict[str, list[list[str]]]] = {b: {t: [] for t in COLUMNS} for b in ("01", "02")}
        for n in range(patients // len(SITES)):
            pid = f"{org.code[-3:]}-{n:05d}"
            sex = rng.choice("12")
            birth = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 50))
            id_no = make_id_no(rng, birth, sex)
            name = rng.choice(SURNAMES) + rng.choice(GIVEN)
            feed.generated.identifiers.update({id_no, name})
            ckd = rng.random() < 0.35
            quarantined = n % 15 == 3  # the patient row lacks its birth date: quarantined, its results are not
            late = s == 2 and n % 15 == 7  # results in the first batch, the patient in the second
            patient = [pid, "01", id_no, name, sex, "" if quarantined else birth.strftime(org.date_fmt), "01",
                       "", "", datetime.combine(start, datetime.min.time()).strftime(org.datetime_fmt)]
            batches["02" if late else "01"]["patient"].append(patient)
            if quarantined:
                feed.quarantined_patients.append((org.code, pid))
            if late:
                feed.late_patients.append((org.code, pid))
            days = sorted(rng.sample(range(0, 300), 3))
            if ckd:
                days[-1] = max(days[-1], days[0] + 120)  # two low eGFRs >= 90 days apart
            for v, d in enumerate(days):
                t = datetime.combine(start + timedelta(days=d), datetime.min.time()) + timedelta(hours=9)
                batch = batches["01" if d < 150 or late else "02"]
                vid = f"{pid}-V{v}"
                stamp = t.strftime(org.datetime_fmt)
                batch["visit"].append([vid, pid, "1", "NK", "肾内科", stamp, "", stamp])
                dx = [rng.choice(CKD_DX)] if ckd else []
                dx.append(rng.choice(OTHER_DX))
                for q, (code, dname) in enumerate(dx, 1):
                    batch["diagnosis"].append([vid, pid, str(q), "1" if q == 1 else "2", code, dname,
                                               t.strftime(org.datetime_fmt)])
                chosen = [site.items[0]] + rng.sample(site.items[1:], min(6, len(site.items) - 1))
                for q, item in enumerate(chosen, 1):
                    high = ckd and item.code == site.creatinine
                    ref = "" if item.qualitative else f"{item.low:g}-{item.high:g}"
                    batch["lab_result"].append([f"{vid}-R", str(q), vid, pid, item.code, item.name,
                                                _value(rng, item, high), item.unit, ref, "", item.specimen,
                                                t.strftime(org.datetime_fmt),
                                                (t + timedelta(hours=4)).strftime(org.datetime_fmt)])
        for b, tables in batches.items():
            _write_batch(out, org, f"{start:%Y%m}-{b}", tables, feed.generated)
    return feed
