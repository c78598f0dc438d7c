-- Type 2 diabetes registry: one row per person (linkage key) meeting the definition of
-- dataset.yaml. Views: patient, lab_result, diagnosis, medication (rows carry org_code);
-- ckd_registry: the CKD registry's rows for the same persons. `codes` holds the code lists.
-- `person` (gender, birth date) and `institutions` (who delivered the person's rows) are the
-- standard tables every cohort query has (medgov.publish.cohort.standard_tables).
-- glucose in mmol/L and HbA1c in NGSP %: canonical or converted units, plausible values only
WITH glycaemia AS (
  SELECT l.id, l.patient_key, to_date(l.effective) AS day, l.effective, l.comparator,
         CASE WHEN l.loinc IN (:loinc_glucose_fasting, :loinc_glucose) AND l.unit = 'mmol/L' THEN l.value
              WHEN l.loinc IN (:loinc_glucose_fasting_mass, :loinc_glucose_mass) AND l.unit = 'mg/dL'
                THEN l.value / :glucose_mgdl_per_mmol
              WHEN l.loinc = :loinc_hba1c AND l.unit = '%' THEN l.value
              WHEN l.loinc = :loinc_hba1c_ifcc AND l.unit = 'mmol/mol' THEN 0.0915 * l.value + 2.15 END AS value,
         CASE WHEN l.loinc IN (:loinc_glucose_fasting, :loinc_glucose_fasting_mass) THEN 'fpg'
              WHEN l.loinc IN (:loinc_glucose, :loinc_glucose_mass) THEN 'random'
              ELSE 'hba1c' END AS kind
  FROM lab_result l
  WHERE l.loinc IN (:loinc_glucose_fasting, :loinc_glucose_fasting_mass, :loinc_glucose, :loinc_glucose_mass,
                    :loinc_hba1c, :loinc_hba1c_ifcc) AND l.value IS NOT NULL
),
plausible AS (
  SELECT *, CASE kind WHEN 'fpg' THEN :fpg_at_least WHEN 'random' THEN :random_glucose_at_least
                      ELSE :hba1c_at_least END AS threshold
  FROM glycaemia
  WHERE value IS NOT NULL
    AND ((kind <> 'hba1c' AND value BETWEEN :glucose_min AND :glucose_max)
         OR (kind = 'hba1c' AND value BETWEEN :hba1c_min AND :hba1c_max))
),
-- a censored result counts where it decides the threshold (">20 mmol/L" is >= 11.1)
abnormal AS (
  SELECT patient_key, day FROM plausible
  WHERE (comparator IS NULL AND value >= threshold) OR (comparator IN ('>', '>=') AND value >= threshold)
),
abnormal_days AS (
  SELECT patient_key, count(DISTINCT day) AS days, min(day) AS first_day,
         try_element_at(array_sort(collect_set(day)), 2) AS second_day
  FROM abnormal GROUP BY patient_key
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
  FROM medication m JOIN codes c ON c.list = 'glucose_lowering' AND startswith(m.atc, c.code)
  WHERE coalesce(m.status, 'active') NOT IN ('entered-in-error', 'cancelled')
  GROUP BY m.patient_key
),
basis AS (
  SELECT p.patient_key,
         dx.diagnosis_day,
         IF(a.days >= 2, a.second_day, NULL) AS lab_day,
         IF(dr.patient_key IS NOT NULL AND a.days >= 1, greatest(dr.first_day, a.first_day), NULL) AS drug_day,
         dx.codes, dr.classes
  FROM (SELECT patient_key FROM dx UNION SELECT patient_key FROM abnormal_days UNION SELECT patient_key FROM drugs) p
  LEFT JOIN dx USING (patient_key)
  LEFT JOIN abnormal_days a USING (patient_key)
  LEFT JOIN drugs dr USING (patient_key)
  LEFT ANTI JOIN excluded x USING (patient_key)
),
cohort AS (
  SELECT * FROM basis WHERE diagnosis_day IS NOT NULL OR lab_day IS NOT NULL OR drug_day IS NOT NULL
),
latest_hba1c AS (
  SELECT patient_key, max_by(struct(value, day), struct(effective, id)) AS h
  FROM plausible WHERE kind = 'hba1c' AND comparator IS NULL GROUP BY patient_key
)
SELECT
  c.patient_key,
  p.gender AS sex,
  CAST(floor(months_between(least(c.diagnosis_day, c.lab_day, c.drug_day), p.birth_date) / 12) AS INT) AS age_at_onset,
  filter(array(IF(c.diagnosis_day IS NOT NULL, 'diagnosis', NULL), IF(c.lab_day IS NOT NULL, 'laboratory', NULL),
               IF(c.drug_day IS NOT NULL, 'medication', NULL)), x -> x IS NOT NULL) AS qualifying_basis,
  least(c.diagnosis_day, c.lab_day, c.drug_day) AS first_qualifying_date,
  round(h.h.value, 1) AS latest_hba1c_percent,
  h.h.day AS latest_hba1c_date,
  h.h.value < :hba1c_control_below AS hba1c_controlled,
  k.patient_key IS NOT NULL AS diabetic_kidney_disease,
  coalesce(c.classes, array()) AS drug_classes,
  coalesce(c.codes, array()) AS diabetes_diagnosis_codes,
  coalesce(o.institutions, array()) AS source_institutions
FROM cohort c
LEFT JOIN person p USING (patient_key)
LEFT JOIN latest_hba1c h USING (patient_key)
LEFT JOIN ckd_registry k USING (patient_key)
LEFT JOIN institutions o USING (patient_key)
