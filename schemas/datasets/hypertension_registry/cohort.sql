-- Hypertension registry: one row per person (linkage key) meeting the definition of
-- dataset.yaml. Views: patient, blood_pressure, diagnosis, medication (rows carry org_code);
-- ckd_registry and diabetes_registry for the comorbidities. `codes` holds the code lists.
-- `person` (gender, birth date) and `institutions` (who delivered the person's rows) are the
-- standard tables every cohort query has (medgov.publish.cohort.standard_tables).
-- office readings inside the plausibility limits (SBP 50-300, DBP 20-200, SBP > DBP)
WITH readings AS (
  SELECT b.id, b.patient_key, to_date(b.effective) AS day, b.effective, b.systolic, b.diastolic,
         (b.systolic >= :sbp_at_least OR b.diastolic >= :dbp_at_least) AS raised
  FROM blood_pressure b
  WHERE b.systolic BETWEEN :sbp_min AND :sbp_max AND b.diastolic BETWEEN :dbp_min AND :dbp_max
    AND b.systolic > b.diastolic
),
raised_days AS (
  SELECT patient_key, count(DISTINCT day) AS days, min(day) AS first_day,
         try_element_at(array_sort(collect_set(day)), 2) AS second_day
  FROM readings WHERE raised GROUP BY patient_key
),
dx AS (
  SELECT d.patient_key, min(to_date(d.recorded)) AS diagnosis_day, array_sort(collect_set(d.icd10)) AS codes
  FROM diagnosis d JOIN codes c ON c.list = 'diagnosis' AND startswith(d.icd10, c.code)
  WHERE coalesce(d.verification, 'confirmed') <> 'refuted'
  GROUP BY d.patient_key
),
excluded AS (
  SELECT DISTINCT d.patient_key
  FROM diagnosis d JOIN codes c ON c.list = 'exclude' AND startswith(d.icd10, c.code)
  WHERE coalesce(d.verification, 'confirmed') <> 'refuted'
),
drugs AS (
  SELECT m.patient_key, min(to_date(m.authored)) AS first_day, array_sort(collect_set(c.reason)) AS classes
  FROM medication m JOIN codes c ON c.list = 'antihypertensive' AND startswith(m.atc, c.code)
  WHERE coalesce(m.status, 'active') NOT IN ('entered-in-error', 'cancelled')
  GROUP BY m.patient_key
),
cohort AS (
  SELECT * FROM (
    SELECT p.patient_key, dx.diagnosis_day,
           IF(r.days >= 2, r.second_day, NULL) AS reading_day,
           IF(dr.patient_key IS NOT NULL AND r.days >= 1, greatest(dr.first_day, r.first_day), NULL) AS drug_day,
           dx.codes, dr.classes
    FROM (SELECT patient_key FROM dx UNION SELECT patient_key FROM raised_days) p
    LEFT JOIN dx USING (patient_key)
    LEFT JOIN raised_days r USING (patient_key)
    LEFT JOIN drugs dr USING (patient_key)
    LEFT ANTI JOIN excluded x USING (patient_key))
  WHERE diagnosis_day IS NOT NULL OR reading_day IS NOT NULL OR drug_day IS NOT NULL
),
latest AS (
  SELECT patient_key, max_by(struct(systolic, diastolic, day), struct(effective, id)) AS b
  FROM readings GROUP BY patient_key
)
SELECT
  c.patient_key,
  p.gender AS sex,
  CAST(floor(months_between(least(c.diagnosis_day, c.reading_day, c.drug_day), p.birth_date) / 12) AS INT) AS age_at_onset,
  filter(array(IF(c.diagnosis_day IS NOT NULL, 'diagnosis', NULL), IF(c.reading_day IS NOT NULL, 'blood_pressure', NULL),
               IF(c.drug_day IS NOT NULL, 'medication', NULL)), x -> x IS NOT NULL) AS qualifying_basis,
  least(c.diagnosis_day, c.reading_day, c.drug_day) AS first_qualifying_date,
  l.b.systolic AS latest_systolic_mmhg,
  l.b.diastolic AS latest_diastolic_mmhg,
  l.b.day AS latest_bp_date,
  CASE WHEN l.b.systolic >= 180 OR l.b.diastolic >= 110 THEN '3'
       WHEN l.b.systolic >= 160 OR l.b.diastolic >= 100 THEN '2'
       WHEN l.b.systolic >= 140 OR l.b.diastolic >= 90 THEN '1'
       WHEN l.b.systolic IS NOT NULL THEN '0' END AS latest_bp_grade,
  l.b.systolic < :sbp_at_least AND l.b.diastolic < :dbp_at_least AS bp_controlled,
  size(coalesce(c.classes, array())) AS n_drug_classes,
  coalesce(c.classes, array()) AS drug_classes,
  k.patient_key IS NOT NULL AS has_ckd,
  dm.patient_key IS NOT NULL AS has_diabetes,
  coalesce(c.codes, array()) AS hypertension_diagnosis_codes,
  coalesce(o.institutions, array()) AS source_institutions
FROM cohort c
LEFT JOIN person p USING (patient_key)
LEFT JOIN latest l USING (patient_key)
LEFT JOIN ckd_registry k USING (patient_key)
LEFT JOIN diabetes_registry dm USING (patient_key)
LEFT JOIN institutions o USING (patient_key)
