"""Build FHIR R4 resources (as JSON-ready dicts) from typed bronze rows.

Pure Python, run inside the Spark executors by `silver`. Each builder returns
(resource, flat columns) pairs; raw direct identifiers are read here and never returned —
only their keyed pseudonyms are.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Callable
from zoneinfo import ZoneInfo

from medgov.domain.icd import parse_icd
from medgov.domain.identity import canonical_id_no, id_birth_date, id_sex_code, normalize_id_no
from medgov.domain.lab_terms import lab_terms
from medgov.domain.numbers import Reading, read_range, read_result
from medgov.domain.pseudonym import person_key, pseudonym
from medgov.domain.record_keys import record_key
from medgov.spec.contracts import interface
from medgov.spec.terminology import Terminology

TZ = ZoneInfo(interface()["timezone"])


def instant(ts: datetime | None) -> str | None:
    """FHIR dateTime/instant with the local offset (timestamps are stored as UTC instants)."""
    return ts.astimezone(TZ).isoformat(timespec="seconds") if ts else None


def rid(key: bytes, kind: str, *parts: str | None) -> str:
    """Stable resource id: keyed hash of the source key, so ids reveal no source number."""
    return pseudonym(key, kind, *[p or "" for p in parts])


def _ref(kind: str, ident: str | None) -> dict[str, str] | None:
    return {"reference": f"{kind}/{ident}"} if ident else None


_EMPTIABLE = (list, dict)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    """`d` without its null, [] and {} values (0, False and "" stay)."""
    return {k: v for k, v in d.items() if v is not None and (v or v.__class__ not in _EMPTIABLE)}


def _quantity(value: float, unit: str, comparator: str | None = None, ucum: bool = True) -> dict[str, Any]:
    """A Quantity; labelled with the UCUM system only when `unit` is a UCUM unit (a local
    spelling the maps do not know is kept as text)."""
    coded = {"system": "http://unitsofmeasure.org", "code": unit} if ucum else {}
    return _drop_none({"value": round(value, 6), "comparator": comparator, "unit": unit, **coded})


def _ucum_units(term: Terminology) -> frozenset[str]:
    """Every unit the maps write in UCUM: the spellings' targets and the concepts' units."""
    return frozenset(term.units.values()) | {c["unit"] for c in term.concepts.values()} | {
        u for c in term.concepts.values() for u in c.get("convert", {})}


def _reference_range(text: str | None, convert: Callable[[float], float], unit: str | None,
                     ucum: bool) -> list[dict[str, Any]] | None:
    """The range as delivered (text) and, where it is numeric, its bounds in the value's unit
    (converted as the value was)."""
    if not text:
        return None
    out: dict[str, Any] = {"text": text}
    bounds = read_range(text) if unit else None
    if bounds:
        for name, bound in zip(("low", "high"), bounds):
            if bound is not None:
                out[name] = _quantity(convert(bound), unit, None, ucum)
    return [out]


def build_patient(row: dict[str, Any], key: bytes, term: Terminology) -> list[tuple[dict, dict]]:
    org, pid = row["_org_code"], row["patient_id"]
    birth: date | None = row["birth_date"]
    pkey = person_key(key, org, pid, row["id_type"], row["id_no"], birth.isoformat() if birth else None,
                      row["sex_code"])
    canonical = canonical_id_no(row["id_no"]) if row["id_type"] in (None, "01") else None
    normalized = normalize_id_no(row["id_no"])
    linked = pkey != pseudonym(key, "LOCAL", org, pid)
    system = term.system("identity_pseudonym" if linked else "local_patient_pseudonym")
    resource = _drop_none({
        "resourceType": "Patient",
        "id": pkey,
        "identifier": [{"system": system, "value": pkey}],
        "gender": term.codes["sex_to_gender"].get(row["sex_code"], "unknown"),
        "birthDate": birth.isoformat() if birth else None,
        "meta": {"source": f"urn:medgov:org:{org}"},
    })
    flat = {
        "id": pkey, "patient_key": pkey, "source_key": pseudonym(key, "LOCAL", org, pid),
        "gender": resource.get("gender"), "birth_date": birth, "sex_code": row["sex_code"],
        "id_type": row["id_type"], "has_id_no": normalized is not None,
        "id_no_valid": canonical is not None if row["id_type"] in (None, "01") and normalized else None,
        "id_birth_matches": (id_birth_date(canonical) == birth.isoformat()) if canonical and birth else None,
        "id_sex_matches": (id_sex_code(canonical) == row["sex_code"]) if canonical and row["sex_code"] in ("1", "2") else None,
        "ethnicity_code": row["ethnicity_code"], "updated_at": row["updated_at"],
    }
    return [(resource, flat)]


@lru_cache(maxsize=65_536)  # a visit's lab results come together: its id is hashed once, not per result
def _encounter_id(key: bytes, org: str, visit_id: str | None) -> str | None:
    return record_key(key, "visit", org, {"visit_id": visit_id})


# outpatient, emergency and physical-examination visits (extract-spec §2 visit_type): an
# absent end time means the extract did not fill it, not that the visit is still going on
_AMBULATORY = ("1", "2", "4")
_VISIT_PAST = timedelta(hours=24)
# diagnosis types (extract-spec §2 diag_type) whose diagnosis is not yet confirmed
_PROVISIONAL = {"3": "provisional"}  # admission


def _encounter_status(row: dict[str, Any]) -> str:
    """finished with an end time; an ambulatory visit without one once a day has passed since
    it started (as of the delivery); otherwise in-progress (an inpatient still admitted)."""
    if row["end_time"]:
        return "finished"
    if row["start_time"] is None:
        return "unknown"
    received = row.get("_ingested_at")
    try:
        past = received is not None and received - row["start_time"] >= _VISIT_PAST
    except TypeError:  # one time zone-aware, the other not: say nothing more than the data does
        past = False
    return "finished" if row["visit_type"] in _AMBULATORY and past else "in-progress"


def build_encounter(row: dict[str, Any], key: bytes, term: Terminology) -> list[tuple[dict, dict]]:
    org = row["_org_code"]
    eid = _encounter_id(key, org, row["visit_id"])
    cls = term.codes["visit_type_to_encounter_class"].get(row["visit_type"])
    status = _encounter_status(row)
    resource = _drop_none({
        "resourceType": "Encounter", "id": eid, "status": status,
        "class": ({"system": term.system("encounter_class"), "code": cls["code"], "display": cls["display"]} if cls
                  else {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"}),
        "subject": _ref("Patient", row["patient_key"]),
        "period": _drop_none({"start": instant(row["start_time"]), "end": instant(row["end_time"])}),
        "serviceType": ({"coding": [{"system": f"urn:medgov:dept:{org}", "code": row["dept_code"]}],
                         "text": row["dept_name"]} if row["dept_code"] else None),
        "serviceProvider": {"identifier": {"system": "urn:medgov:org", "value": org}},
    })
    flat = {"id": eid, "patient_key": row["patient_key"], "visit_type": row["visit_type"],
            "class_code": cls["code"] if cls else None, "status": status, "start_time": row["start_time"],
            "end_time": row["end_time"], "dept_code": row["dept_code"]}
    return [(resource, flat)]


def build_condition(row: dict[str, Any], key: bytes, term: Terminology) -> list[tuple[dict, dict]]:
    org = row["_org_code"]
    icd = parse_icd(row["icd_code"])
    codings = []
    if icd.stem:
        codings.append({"system": term.system("icd10"), "code": icd.stem})
    codings.append({"system": term.system("icd10_cn_local"), "code": icd.original})
    cid = record_key(key, "diagnosis", org, row)
    resource = _drop_none({
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{"system": term.system("condition_clinical"), "code": "active"}]},
        "verificationStatus": {"coding": [{"system": term.system("condition_ver_status"),
                                           "code": _PROVISIONAL.get(row["diag_type"], "confirmed")}]},
        "category": [{"coding": [{"system": term.system("condition_category"), "code": "encounter-diagnosis"}]}],
        "code": _drop_none({"coding": codings, "text": row["diag_name"]}),
        "subject": _ref("Patient", row["patient_key"]),
        "encounter": _ref("Encounter", _encounter_id(key, org, row["visit_id"])),
        "recordedDate": instant(row["diag_time"]),
    })
    flat = {"id": cid, "patient_key": row["patient_key"], "encounter_id": _encounter_id(key, org, row["visit_id"]),
            "icd_code": icd.original, "icd_stem": icd.stem, "icd_category": icd.category,
            "icd_manifestations": list(icd.manifestations), "diag_type": row["diag_type"],
            "principal": row["diag_type"] == "1" and row["seq"] == "1", "recorded_time": row["diag_time"]}
    return [(resource, flat)]


def _observation(oid: str, category: str, codings: list[dict], text: str | None, row: dict[str, Any],
                 effective: datetime | None, issued: datetime | None, encounter: str | None, term: Terminology,
                 value: dict[str, Any] | None = None, value_string: str | None = None,
                 absent: str | None = None, components: list[dict] | None = None, interpretation: str | None = None,
                 ref_range: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return _drop_none({
        "resourceType": "Observation", "id": oid, "status": "final",
        "category": [{"coding": [{"system": term.system("observation_category"), "code": category}]}],
        "code": _drop_none({"coding": codings, "text": text}),
        "subject": _ref("Patient", row["patient_key"]),
        "encounter": _ref("Encounter", encounter),
        "effectiveDateTime": instant(effective),
        "issued": instant(issued),
        "valueQuantity": value,
        "valueString": value_string,
        # a result that is no finite number (NaN, an infinity, 1e309) keeps no value, and says why
        "dataAbsentReason": ({"coding": [{"system": term.system("data_absent_reason"), "code": absent}],
                              "text": "not a finite number"} if absent else None),
        "interpretation": ([{"coding": [{"system": term.system("interpretation"), "code": interpretation}]}]
                           if interpretation else None),
        "referenceRange": ref_range,
        "component": components,
    })


def build_lab(row: dict[str, Any], key: bytes, term: Terminology) -> list[tuple[dict, dict]]:
    org = row["_org_code"]
    oid = record_key(key, "lab_result", org, row)
    local = row["item_code"]
    labs = lab_terms(term)
    # by (org, code), else by name, specimen and unit; the mapping method travels with the row
    mapping = labs.map(org, local, row["item_name"], row.get("specimen"), row["unit"])
    loinc = mapping.loinc
    concept = term.concepts.get(loinc) if loinc else None
    unit = labs.unit(row["unit"])
    reading = read_result(row["result"])
    comparator, number = reading.comparator, reading.value
    value, unit_status = None, None
    ucum = term.derived("ucum_units", _ucum_units)
    convert: Callable[[float], float] = lambda v: v  # noqa: E731
    out_unit = unit
    if number is not None:
        unit_status = "as-reported"
        if concept and unit and unit != concept["unit"]:
            conv = concept.get("convert", {}).get(unit)
            if conv:
                convert = lambda v, c=conv: v * c["factor"] + c.get("offset", 0.0)  # noqa: E731
                out_unit, unit_status = concept["unit"], "converted"
            else:
                unit_status = "unit-mismatch"
        elif concept and unit == concept["unit"]:
            unit_status = "canonical"
        elif unit is None:
            unit_status = "no-unit"
        out_value = convert(number)
        value = _quantity(out_value, out_unit, comparator, out_unit in ucum) if out_unit else _drop_none(
            {"value": round(out_value, 6), "comparator": comparator})
    codings = []
    if concept:
        codings.append({"system": term.system("loinc"), "code": loinc, "display": concept["display"]})
    codings.append({"system": f"urn:medgov:lis:{org}", "code": local, "display": row["item_name"]} if row["item_name"]
                   else {"system": f"urn:medgov:lis:{org}", "code": local})
    encounter = _encounter_id(key, org, row["visit_id"])
    flag = {"H": "H", "L": "L", "N": "N"}.get((row["abnormal_flag"] or "").upper())
    resource = _observation(oid, "laboratory", codings, row["item_name"], row,
                            row["collected_time"] or row["reported_time"], row["reported_time"], encounter, term,
                            value=value, value_string=row["result"] if reading == Reading() else None,
                            absent=reading.absent, interpretation=flag,
                            ref_range=_reference_range(row["ref_range"], convert, out_unit if number is not None else None,
                                                       out_unit in ucum))
    flat = {"id": oid, "patient_key": row["patient_key"], "encounter_id": encounter, "category": "laboratory",
            "loinc": loinc, "local_code": local, "mapped": loinc is not None, "map_method": mapping.method,
            "map_confidence": mapping.confidence,
            "value": value.get("value") if value else None, "comparator": comparator,
            "unit": value.get("unit") if value else unit, "unit_status": unit_status,
            "value_string": row["result"] if reading == Reading() else None,
            "effective_time": row["collected_time"] or row["reported_time"], "issued_time": row["reported_time"],
            "components": {}}
    return [(resource, flat)]


# vital-sign columns -> the LOINC concept each becomes (`concept_maps/loinc.yaml`, domain.md §2);
# the unit is the concept's canonical unit, as the interface delivers them
VITAL_SIGN = "interface-column"  # a vital sign's concept is its column in the interface
_VITALS = (("heart_rate", "heart_rate"), ("height_cm", "body_height"), ("weight_kg", "body_weight"))
_BP_COMPONENTS = (("sbp", "systolic_bp"), ("dbp", "diastolic_bp"))


def build_vitals(row: dict[str, Any], key: bytes, term: Terminology) -> list[tuple[dict, dict]]:
    org = row["_org_code"]
    when = row["measured_time"]
    encounter = _encounter_id(key, org, row["visit_id"])
    out = []
    base = (org, row["patient_key"], when.isoformat() if when else "")

    def coding(concept: str) -> tuple[str, dict[str, Any], list[dict[str, str]]]:
        code, c = term.concept(concept)
        return code, c, [{"system": term.system("loinc"), "code": code, "display": c["display"]}]

    def emit(concept: str, value: float | None, components: list[dict] | None = None) -> None:
        code, c, codings = coding(concept)
        unit = c["unit"] if value is not None else None
        oid = rid(key, "Observation", *base, code)
        res = _observation(oid, "vital-signs", codings, None, row, when, None, encounter, term,
                           value=_quantity(value, unit) if value is not None else None, components=components)
        out.append((res, {"id": oid, "patient_key": row["patient_key"], "encounter_id": encounter,
                          "category": "vital-signs", "loinc": code, "local_code": None, "mapped": True,
                          "map_method": VITAL_SIGN, "map_confidence": 1.0,
                          "value": round(value, 6) if value is not None else None, "comparator": None,
                          "unit": unit, "unit_status": "canonical", "value_string": None,
                          "effective_time": when, "issued_time": None, "components": {}}))

    measured = [(col, coding(concept)) for col, concept in _BP_COMPONENTS if row[col] is not None]
    if measured:
        comps = [{"code": {"coding": codings}, "valueQuantity": _quantity(row[col], c["unit"])}
                 for col, (_, c, codings) in measured]
        emit("blood_pressure_panel", None, comps)
        out[-1][1]["components"] = {code: float(row[col]) for col, (code, _, _) in measured}
    for col, concept in _VITALS:
        if row[col] is not None:
            emit(concept, row[col])
    if row["height_cm"] and row["weight_kg"]:
        emit("bmi", row["weight_kg"] / (row["height_cm"] / 100) ** 2)
    return out


def build_medication(row: dict[str, Any], key: bytes, term: Terminology) -> list[tuple[dict, dict]]:
    org = row["_org_code"]
    mid = record_key(key, "prescription", org, row)
    codings = [{"system": f"urn:medgov:drug:{org}", "code": row["drug_code"]}]
    if row["atc_code"]:
        codings.insert(0, {"system": term.system("atc"), "code": row["atc_code"]})
    dose = ({"doseAndRate": [{"doseQuantity": _drop_none({"value": row["dose"], "unit": row["dose_unit"]})}]}
            if row["dose"] is not None else {})
    text = " ".join(x for x in (row["frequency"], row["route"]) if x) or None
    instruction = _drop_none({"text": text, "route": {"text": row["route"]} if row["route"] else None, **dose})
    encounter = _encounter_id(key, org, row["visit_id"])
    resource = _drop_none({
        "resourceType": "MedicationRequest", "id": mid, "status": "completed", "intent": "order",
        "medicationCodeableConcept": _drop_none({"coding": codings, "text": row["drug_name"]}),
        "subject": _ref("Patient", row["patient_key"]),
        "encounter": _ref("Encounter", encounter),
        "authoredOn": instant(row["prescribed_time"]),
        "dosageInstruction": [instruction] if instruction else None,
        "dispenseRequest": ({"expectedSupplyDuration": {"value": row["days"], "unit": "d",
                                                        "system": "http://unitsofmeasure.org", "code": "d"}}
                            if row["days"] is not None else None),
    })
    flat = {"id": mid, "patient_key": row["patient_key"], "encounter_id": encounter, "drug_code": row["drug_code"],
            "atc_code": row["atc_code"], "dose": row["dose"], "dose_unit": row["dose_unit"],
            "frequency": row["frequency"], "route": row["route"], "days": row["days"],
            "authored_time": row["prescribed_time"]}
    return [(resource, flat)]
