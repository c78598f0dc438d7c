-- Heart failure registry: one row per person (linkage key) meeting the definition of
-- dataset.yaml. Views: patient, lab_result, diagnosis, medication (rows carry org_code).
-- `person` (gender, birth date) and `institutions` (who delivered the person's rows) are the
-- standard tables every cohort query has (medgov.publish.cohort.standard_tables).
WITH dx AS (
  SELECT d.patient_key, min(to_date(d.recorded)) AS diagnosis_day, array_sort(collect_set(d.icd10)) AS codes
  FROM diagnosis d JOIN codes c ON c.list = 'diagnosis' AND startswith(d.icd10, c.code)
  WHERE coalesce(d.verification, 'confirmed') <> 'refuted'
  GROUP BY d.patient_key
),
-- NT-proBNP in pg/mL (ng/L converted); a censored result counts where it decides (">35000")
ntprobnp AS (
  SELECT l.id, l.patient_key, to_date(l.effective) AS day, l.effective, l.value, l.comparator,
         (l.comparator IS NULL OR l.comparator IN ('>', '>=')) AND l.value >= :ntprobnp_at_least AS raised
  FROM lab_result l
  WHERE l.loinc = :loinc_ntprobnp AND l.unit = 'pg/mL' AND l.value BETWEEN 0 AND :ntprobnp_max
),
raised AS (SELECT patient_key, min(day) AS first_day FROM ntprobnp WHERE raised GROUP BY patient_key),
drugs AS (
  SELECT m.patient_key, min(to_date(m.authored)) AS first_day, array_sort(collect_set(c.reason)) AS classes
  FROM medication m JOIN codes c ON c.list = 'hf_medication' AND startswith(m.atc, c.code)
  WHERE coalesce(m.status, 'active') NOT IN ('entered-in-error', 'cancelled')
  GROUP BY m.patient_key
),
cohort AS (  -- a diagnosis, supported by a raised NT-proBNP or a heart-failure medication
  SELECT dx.patient_key, dx.codes, dr.classes,
         filter(array(IF(r.patient_key IS NOT NULL, 'nt_probnp', NULL), IF(dr.patient_key IS NOT NULL, 'medication', NULL)),
                x -> x IS NOT NULL) AS support,
         greatest(dx.diagnosis_day, least(r.first_day, dr.first_day)) AS qualifying_day
  FROM dx LEFT JOIN raised r USING (patient_key) LEFT JOIN drugs dr USING (patient_key)
  WHERE r.patient_key IS NOT NULL OR dr.patient_key IS NOT NULL
),
latest AS (
  SELECT patient_key, max_by(struct(value, day), struct(effective, id)) AS n
  FROM ntprobnp WHERE comparator IS NULL GROUP BY patient_key
)
SELECT
  c.patient_key,
  p.gender AS sex,
  CAST(floor(months_between(c.qualifying_day, p.birth_date) / 12) AS INT) AS age_at_onset,
  c.support AS supported_by,
  c.qualifying_day AS first_qualifying_date,
  l.n.value AS latest_ntprobnp_pg_ml,
  l.n.day AS latest_ntprobnp_date,
  coalesce(c.classes, array()) AS drug_classes,
  c.codes AS heart_failure_diagnosis_codes,
  coalesce(o.institutions, array()) AS source_institutions
FROM cohort c
LEFT JOIN person p USING (patient_key)
LEFT JOIN latest l USING (patient_key)
LEFT JOIN institutions o USING (patient_key)
