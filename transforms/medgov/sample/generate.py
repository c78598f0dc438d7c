"""Realistic sample landing batches in the extract interface (for the demo, tests, benchmark).

Three institutions with their own LIS codes, units, encodings and date shapes; shared
patients (the same identity number at two institutions); a share of CKD patients with
persistently low eGFR; and the dirt real deliveries have — blanks, full-width digits, a
missing required value, an impossible date, a bad identity check character — plus one
batch whose file does not match its manifest (rejected).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from medgov.domain.identity import id_check_char
from medgov.spec.contracts import TABLES, contract

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉斌宇浩凯健俊帆"
ADDRESS_CODES = ["330302", "330303", "330304", "330305", "330324", "330326", "330327", "330328"]


@dataclass(frozen=True)
class Org:
    code: str
    encoding: str
    newline: str
    datetime_fmt: str
    date_fmt: str
    lab: dict[str, tuple[str, str]]  # concept -> (local code, unit)
    source_system: str


ORGS = (
    Org("H33030200001", "utf-8", "\n", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d",
        {"creatinine": ("CREA", "umol/L"), "acr": ("UACR", "mg/g"), "glucose": ("GLU", "mmol/L"),
         "hba1c": ("HBA1C", "%"), "other": ("WBC", "10^9/L")}, "HIS"),
    Org("11500000MB1670604W", "gbk", "\r\n", "%Y/%-m/%-d %-H:%M", "%Y/%m/%d",
        {"creatinine": ("Cr", "mg/dl"), "acr": ("ACR", "mg/mmol"), "glucose": ("FBG", "mmol/L"),
         "hba1c": ("GHb", "%"), "other": ("TP", "g/L")}, "mixed"),
    Org("91350100M000100Y43", "utf-8-sig", "\n", "%Y%m%d%H%M%S", "%Y%m%d",
        {"creatinine": ("SCR", "μmol/L"), "acr": ("MALB/CR", "mg/g"), "glucose": ("FPG", "mmol/L"),
         "hba1c": ("HBA1C", "%"), "other": ("ALT", "U/L")}, "LIS"),
)

# a blood-count panel: the name dictionary codes most of it (MCH, MCHC and MON are not in it and
# stay under their local codes, as in real feeds)
PANEL = (("RBC", "红细胞计数", "10^12/L"), ("HGB", "血红蛋白", "g/L"), ("PLT", "血小板计数", "10^9/L"),
         ("HCT", "红细胞压积", "%"), ("MCV", "平均红细胞体积", "fL"), ("MCH", "平均血红蛋白量", "pg"),
         ("MCHC", "平均血红蛋白浓度", "g/L"), ("LYM", "淋巴细胞百分比", "%"), ("NEU", "中性粒细胞百分比", "%"),
         ("MON", "单核细胞百分比", "%"))

# the header of each file: the contract's columns in contract order (`schemas/contracts/`)
COLUMNS = {t: contract(t).names for t in TABLES}

CKD_CODES = [("N18.300x001", "慢性肾脏病3期"), ("N18.400", "慢性肾脏病4期"), ("N18.900", "慢性肾脏病"),
             ("E11.200x002+N08.3*", "2型糖尿病肾病"), ("I12.000x001", "高血压肾病")]
OTHER_CODES = [("I10.x00x002", "原发性高血压"), ("E11.900", "2型糖尿病"), ("J06.900", "急性上呼吸道感染"),
               ("K29.700", "胃炎"), ("M54.500", "腰痛"), ("I25.100", "冠状动脉粥样硬化性心脏病")]
DRUGS = [("D001", "二甲双胍片", "A10BA02", 500, "mg", "bid"), ("D002", "氨氯地平片", "C08CA01", 5, "mg", "qd"),
         ("D003", "厄贝沙坦片", "C09CA04", 150, "mg", "qd"), ("D004", "阿托伐他汀钙片", "C10AA05", 20, "mg", "qn"),
         ("D005", "碳酸氢钠片", "", 1, "g", "tid")]
# heart failure (I50 and the hypertensive forms of schemas/datasets/heart_failure_registry) and
# its drugs: loop diuretic, MRA, ARNI, SGLT2 inhibitor
HF_CODES = [("I50.900x007", "慢性心力衰竭"), ("I50.000x001", "充血性心力衰竭"), ("I11.000", "高血压性心脏病伴心力衰竭")]
HF_DRUGS = [("D101", "呋塞米片", "C03CA01", 20, "mg", "qd"), ("D102", "螺内酯片", "C03DA01", 20, "mg", "qd"),
            ("D103", "沙库巴曲缬沙坦钠片", "C09DX04", 100, "mg", "bid"), ("D104", "达格列净片", "A10BK01", 10, "mg", "qd")]
DEPTS = [("NEPH", "肾内科"), ("ENDO", "内分泌科"), ("CARD", "心内科"), ("GEN", "全科")]


@dataclass
class Person:
    idx: int
    id_no: str
    name: str
    sex: str
    birth: date
    phone: str
    ckd: bool
    diabetic: bool
    orgs: list[Org]
    id_type: str = "01"
    heart_failure: bool = False


@dataclass
class Generated:
    """What was written, for the report and for tests (raw identifiers: tests only)."""

    batches: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    identifiers: set[str] = field(default_factory=set)


def make_id_no(rng: random.Random, birth: date, sex: str) -> str:
    seq = rng.randrange(0, 50) * 2 + (1 if sex == "1" else 0) + 100
    body = f"{rng.choice(ADDRESS_CODES)}{birth:%Y%m%d}{seq:03d}"
    return body + id_check_char(body)


def _people(rng: random.Random, n: int, first: int = 0) -> list[Person]:
    """`n` people, numbered from `first` (their local patient, visit and report ids follow)."""
    people = []
    for i in range(n):
        sex = rng.choice("12")
        birth = date(1935, 1, 1) + timedelta(days=rng.randrange(0, 365 * 68))
        id_no = make_id_no(rng, birth, sex)
        home = ORGS[i % len(ORGS)]
        orgs = [home]
        if rng.random() < 0.15:
            orgs.append(rng.choice([o for o in ORGS if o is not home]))
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        phone = "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))
        p = Person(first + i, id_no, name, sex, birth, phone, ckd=rng.random() < 0.3, diabetic=rng.random() < 0.25, orgs=orgs)
        if rng.random() < 0.03:  # a mistyped check character: a quality finding, not a crash
            p.id_no = id_no[:17] + ("0" if id_no[17] != "0" else "1")
        elif rng.random() < 0.03:  # foreigners: passport, no GB 11643 check
            p.id_type, p.id_no = "03", "E" + "".join(rng.choice("0123456789") for _ in range(8))
        people.append(p)
    return people


def _creatinine_umol(rng: random.Random, p: Person, t: date) -> float:
    if p.ckd:
        return rng.uniform(125, 380) * (1.0 if p.sex == "1" else 0.85)
    return rng.uniform(45, 95) * (1.0 if p.sex == "1" else 0.85)


def _fmt(dt: datetime, pattern: str) -> str:
    return dt.strftime(pattern)


def generate(out: str | Path, patients: int = 300, seed: int = 7, start: date = date(2023, 1, 1),
             lab_panel: int = 0, first_patient: int = 0) -> Generated:
    """Write sample batches under `out` (landing-zone layout) and return what was written.

    `first_patient` numbers the people from there: a later feed of new patients whose local
    ids do not collide with an earlier feed's (the same ids would be other people's records).

    `lab_panel` adds that many items of a blood-count panel to every visit's lab report: the
    benchmark uses it for a city feed's mix, where lab results are most of the rows."""
    rng = random.Random(seed)
    out = Path(out)
    gen = Generated()
    rows: dict[tuple[str, str], dict[str, list[list[str]]]] = {}
    people = _people(rng, patients, first_patient)
    # heart failure from a stream of its own, so the rest of a seed's sample stays as it was
    hf_rng = random.Random(f"{seed}-heart-failure")
    for p in people:
        p.heart_failure = hf_rng.random() < 0.06
    split = start + timedelta(days=365)
    for p in people:
        for org in p.orgs:
            local = f"P{org.code[-4:]}{p.idx:06d}"
            gen.identifiers.update({p.id_no, p.name, p.phone})
            first_batch = "b1"
            table_rows = rows.setdefault((org.code, first_batch), {t: [] for t in COLUMNS})
            updated = datetime.combine(start, datetime.min.time()) + timedelta(hours=8)
            table_rows["patient"].append([local, p.id_type, p.id_no, p.name, p.sex, p.birth.strftime(org.date_fmt),
                                          "01" if rng.random() < 0.9 else f"{rng.randrange(2, 57):02d}", p.phone,
                                          rng.choice(ADDRESS_CODES), _fmt(updated, org.datetime_fmt)])
            n_visits = rng.randint(2, 5)
            days = sorted(rng.sample(range(0, 700), n_visits))
            if p.ckd:  # two low results >= 90 days apart make the KDIGO persistence criterion
                days[-1] = max(days[-1], days[0] + 120)
            for v, d in enumerate(days):
                t = datetime.combine(start + timedelta(days=d), datetime.min.time()) + timedelta(hours=rng.randint(8, 16))
                batch = "b1" if t.date() < split else "b2"
                r = rows.setdefault((org.code, batch), {tn: [] for tn in COLUMNS})
                vid = f"V{org.code[-4:]}{p.idx:06d}{v:02d}"
                vt = rng.choice("1113")
                dept = rng.choice(DEPTS)
                end = t + timedelta(days=rng.randint(3, 10)) if vt == "3" else t + timedelta(hours=1)
                r["visit"].append([vid, local, vt, dept[0], dept[1], _fmt(t, org.datetime_fmt),
                                   _fmt(end, org.datetime_fmt), _fmt(end, org.datetime_fmt)])
                codes = [rng.choice(CKD_CODES)] if (p.ckd and rng.random() < 0.5) else []
                if p.diabetic:
                    codes.append(("E11.900", "2型糖尿病"))
                codes.append(rng.choice(OTHER_CODES))
                if p.heart_failure:
                    codes.append(hf_rng.choice(HF_CODES))
                for s, (code, name) in enumerate(codes, 1):
                    r["diagnosis"].append([vid, local, str(s), "1" if s == 1 else "2", code, name,
                                           _fmt(t, org.datetime_fmt)])
                rid = f"R{org.code[-4:]}{p.idx:06d}{v:02d}"
                rep = t + timedelta(hours=3)
                items = []
                code, unit = org.lab["creatinine"]
                cr = _creatinine_umol(rng, p, t.date())
                value = cr / 88.4 if unit.lower() == "mg/dl" else cr
                items.append((code, "肌酐", f"{value:.2f}" if unit.lower() == "mg/dl" else f"{value:.0f}", unit,
                              "0.6-1.2" if unit.lower() == "mg/dl" else "57-111", "血清"))
                if p.ckd or rng.random() < 0.2:
                    code, unit = org.lab["acr"]
                    acr = rng.uniform(35, 900) if (p.ckd and rng.random() < 0.7) else rng.uniform(3, 25)
                    acr_v = acr / 8.84 if unit == "mg/mmol" else acr
                    items.append((code, "尿微量白蛋白/肌酐", f"{acr_v:.1f}", unit, "", "尿"))
                if p.diabetic or rng.random() < 0.3:
                    code, unit = org.lab["glucose"]
                    items.append((code, "空腹血糖", f"{rng.uniform(7.2, 12) if p.diabetic else rng.uniform(4, 6):.1f}",
                                  unit, "3.9-6.1", "血清"))
                    code, unit = org.lab["hba1c"]
                    items.append((code, "糖化血红蛋白", f"{rng.uniform(6.6, 9.5) if p.diabetic else rng.uniform(4.5, 5.8):.1f}",
                                  unit, "4-6", "全血"))
                if rng.random() < 0.4:
                    code, unit = org.lab["other"]
                    items.append((code, "其他", rng.choice(["阴性", "5.6", "<5", "12.3"]), unit, "", "血清"))
                if p.heart_failure and hf_rng.random() < 0.7:  # by name only: the terminology maps it
                    items.append((f"HF{org.code[-2:]}", "N末端B型利钠肽原",
                                  f"{hf_rng.uniform(90, 4000):.0f}", "pg/mL", "0-125", "血清"))
                for code, name, unit in PANEL[:lab_panel]:
                    items.append((code, name, f"{rng.uniform(3, 150):.1f}", unit, "", "全血"))
                for s, (code, name, res, unit, ref, spec) in enumerate(items, 1):
                    flag = ""
                    r["lab_result"].append([rid, str(s), vid, local, code, name, res, unit, ref, flag, spec,
                                            _fmt(t, org.datetime_fmt), _fmt(rep, org.datetime_fmt)])
                sbp = rng.randint(105, 175)
                r["vital_sign"].append([vid, local, _fmt(t, org.datetime_fmt), str(sbp), str(sbp - rng.randint(30, 60)),
                                        str(rng.randint(58, 98)), str(rng.randint(150, 185)), f"{rng.uniform(45, 95):.1f}"])
                if p.diabetic or p.ckd or rng.random() < 0.3:
                    drug = rng.choice(DRUGS)
                    r["prescription"].append([f"RX{org.code[-4:]}{p.idx:06d}{v:02d}", "1", vid, local, drug[0], drug[1],
                                              drug[2], str(drug[3]), drug[4], drug[5], "口服", str(rng.choice((7, 14, 30))),
                                              _fmt(t, org.datetime_fmt)])
                if p.heart_failure and hf_rng.random() < 0.6:
                    drug = hf_rng.choice(HF_DRUGS)
                    r["prescription"].append([f"RH{org.code[-4:]}{p.idx:06d}{v:02d}", "1", vid, local, drug[0], drug[1],
                                              drug[2], str(drug[3]), drug[4], drug[5], "口服", "30",
                                              _fmt(t, org.datetime_fmt)])
    _add_dirt(rng, rows)
    for (org_code, batch), tables in sorted(rows.items()):
        org = next(o for o in ORGS if o.code == org_code)
        batch_id = f"{start:%Y%m%d}-{batch}"
        _write_batch(out, org, batch_id, tables, gen)
    _write_rejected(out, ORGS[2], f"{start:%Y%m%d}-b9", gen)
    return gen


def warm_up_sample(landing: Path) -> Generated:
    """The small sample a Spark Connect server runs once to warm its JIT (`medgov
    spark-server`, the benchmark's warm-server run: `storage.connect_server.warm_up`)."""
    return generate(landing, patients=20, seed=1)


def _add_dirt(rng: random.Random, rows: dict) -> None:
    """Noise that must be normalised, and rows that must be quarantined with a reason."""
    for (org_code, _), tables in rows.items():
        labs = tables["lab_result"]
        if len(labs) > 10:
            labs[1][6] = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in labs[1][6])  # full-width digits
            labs[2][4] = f"  {labs[2][4]} "  # blanks around a code
            labs[3][6] = ""  # missing required result -> quarantine
            labs[4][12] = "2024-02-30 10:00:00"  # impossible date -> quarantine
        vit = tables["vital_sign"]
        if len(vit) > 5:
            vit[0][3] = "—"  # non-numeric in a decimal column -> quarantine


def _csv_bytes(columns: list[str], data: list[list[str]], org: Org) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=org.newline)
    w.writerow(columns)
    w.writerows(data)
    return buf.getvalue().encode(org.encoding)


def _write_batch(out: Path, org: Org, batch_id: str, tables: dict, gen: Generated,
                 corrupt: bool = False) -> None:
    folder = out / org.code / batch_id
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for table, data in tables.items():
        if not data:
            continue
        raw = _csv_bytes(COLUMNS[table], data, org)
        files.append({"name": f"{table}.csv", "table": table, "rows": len(data),
                      "sha256": hashlib.sha256(raw).hexdigest(), "encoding": org.encoding})
        if corrupt and table == "lab_result":
            raw = raw.replace(b"\n", b"\n\n", 1)[:-20]  # damaged in transfer after the manifest was written
        (folder / f"{table}.csv").write_bytes(raw)
        gen.rows[table] = gen.rows.get(table, 0) + len(data)
    manifest = {"spec_version": "1", "org_code": org.code, "batch_id": batch_id, "source_system": org.source_system,
                "vendor": "medgov sample generator", "extracted_at": f"{datetime.now():%Y-%m-%dT%H:%M:%S}+08:00",
                "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / org.code / f"{batch_id}.ready").touch()  # the flag is written last
    gen.batches.append(f"{org.code}/{batch_id}")


def _write_rejected(out: Path, org: Org, batch_id: str, gen: Generated) -> None:
    rows = [[f"RBAD{i}", "1", "", f"PBAD{i}", "SCR", "肌酐", "88", "μmol/L", "", "", "血清", "", "20240401120000"]
            for i in range(20)]
    _write_batch(out, org, batch_id, {"lab_result": rows}, gen, corrupt=True)
    gen.rows["lab_result"] -= len(rows)  # never accepted: not part of the sample's data rows
