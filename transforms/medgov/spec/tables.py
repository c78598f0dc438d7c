"""The lake's tables: which exist in each zone, the lineage columns every row carries, and the
shape of each silver table (Spark DDL strings; no Spark here)."""

from __future__ import annotations

from dataclasses import dataclass

from medgov.spec.contracts import TABLES

# bronze: one table per interface table, as delivered and typed
BRONZE_TABLES: tuple[str, ...] = TABLES

# Where each bronze row came from: added at ingest, carried into silver under the names below.
BRONZE_LINEAGE: tuple[tuple[str, str], ...] = (
    ("_org_code", "string"), ("_batch_id", "string"), ("_batch_key", "string"), ("_file", "string"),
    ("_line", "bigint"), ("_ingested_at", "timestamp"))
BRONZE_LINEAGE_COLUMNS: tuple[str, ...] = tuple(name for name, _ in BRONZE_LINEAGE)
SILVER_LINEAGE: dict[str, str] = {"_org_code": "org_code", "_batch_id": "batch_id", "_batch_key": "batch_key",
                                  "_file": "source_file", "_line": "source_line"}

# the column holding a row's batch key, per zone (what `visible` filters on)
BATCH_COLUMN = {"bronze": "_batch_key", "silver": SILVER_LINEAGE["_batch_key"]}

# lab results and vital signs both become Observations with the same flattened columns
_OBSERVATION_FLAT = ("encounter_id string, category string, loinc string, local_code string, mapped boolean, "
                     "map_method string, map_confidence double, "
                     "value double, comparator string, unit string, unit_status string, value_string string, "
                     "effective_time timestamp, issued_time timestamp, components map<string,double>")


@dataclass(frozen=True)
class SilverTable:
    """A silver table of FHIR resources: its resource type, the bronze tables it is built
    from, and its flattened columns (Spark DDL) beside the common ones."""

    name: str
    resource_type: str
    sources: tuple[str, ...]
    flat: str

    @property
    def ddl(self) -> str:
        """Every column of the built rows, `error` included (dropped before the table)."""
        lineage = ", ".join(f"{SILVER_LINEAGE[n]} {t}" for n, t in BRONZE_LINEAGE if n in SILVER_LINEAGE)
        return f"id string, patient_key string, {lineage}, resource_json string, error string, {self.flat}"


SILVER_RESOURCES: tuple[SilverTable, ...] = (
    SilverTable("patient", "Patient", ("patient",),
                "source_key string, gender string, birth_date date, sex_code string, id_type string, "
                "has_id_no boolean, id_no_valid boolean, id_birth_matches boolean, id_sex_matches boolean, "
                "ethnicity_code string, updated_at timestamp"),
    SilverTable("encounter", "Encounter", ("visit",),
                "visit_type string, class_code string, status string, start_time timestamp, end_time timestamp, "
                "dept_code string"),
    SilverTable("condition", "Condition", ("diagnosis",),
                "encounter_id string, icd_code string, icd_stem string, icd_category string, "
                "icd_manifestations array<string>, diag_type string, principal boolean, recorded_time timestamp"),
    SilverTable("observation", "Observation", ("lab_result", "vital_sign"), _OBSERVATION_FLAT),
    SilverTable("medication_request", "MedicationRequest", ("prescription",),
                "encounter_id string, drug_code string, atc_code string, dose double, dose_unit string, "
                "frequency string, route string, days double, authored_time timestamp"),
)

# local patient key -> person pseudonym, written by normalize before the resources
PATIENT_XREF = "patient_xref"
SILVER_TABLES: tuple[str, ...] = (PATIENT_XREF, *(t.name for t in SILVER_RESOURCES))


def silver_table(name: str) -> SilverTable:
    """The silver resource table called `name`."""
    return next(t for t in SILVER_RESOURCES if t.name == name)


def silver_of(source: str) -> SilverTable:
    """The silver table built from bronze table `source`."""
    return next(t for t in SILVER_RESOURCES if source in t.sources)
