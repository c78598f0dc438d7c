-- Chronic kidney disease registry: one row per person (linkage key) meeting the definition of
-- dataset.yaml. Views: patient, lab_result, diagnosis (rows carry org_code). `codes` holds the
-- code lists (list, code, reason); :names are the dataset's parameters.
-- `person` (gender, birth date) and `institutions` (who delivered the person's rows) are the
-- standard tables every cohort query has (medgov.publish.cohort.standard_tables).
-- serum/plasma creatinine in umol/L: only canonical or converted units (the view's unit is
-- the UCUM code normalize wrote after conversion), uncensored, inside the plausibility limits
WITH creatinine AS (
  SELECT l.id, l.patient_key, to_date(l.effective) AS day, l.effective,
         IF(l.loinc = :loinc_creatinine_mass, l.value * :creatinine_umol_per_mgdl, l.value) AS scr_umol
  FROM lab_result l
  WHERE ((l.loinc = :loinc_creatinine_molar AND l.unit = 'umol/L') OR (l.loinc = :loinc_creatinine_mass AND l.unit = 'mg/dL'))
    AND l.comparator IS NULL AND l.value IS NOT NULL
),
scr AS (
  SELECT c.*, p.gender, CAST(floor(months_between(c.day, p.birth_date) / 12) AS INT) AS age
  FROM creatinine c LEFT JOIN person p USING (patient_key)
  WHERE c.scr_umol BETWEEN :creatinine_min_umol AND :creatinine_max_umol
),
-- CKD-EPI 2021 (race-free), adults with a known sex (medgov's function, domain.md §3);
-- eGFR outside its plausibility limits is dropped
scored AS (
  SELECT s.*, IF(s.age >= :adult_age AND s.gender IN ('male', 'female'),
                 ckd_epi_2021(s.scr_umol / :creatinine_umol_per_mgdl, s.age, s.gender = 'female'), NULL) AS egfr
  FROM scr s
),
egfr AS (SELECT * FROM scored WHERE egfr IS NULL OR egfr BETWEEN :egfr_min AND :egfr_max),
-- urine ACR in mg/g; a censored result counts where it decides the threshold (">300" is >= 30,
-- "<5" is < 30; ">20" decides nothing and is left out)
acr AS (
  SELECT l.id, l.patient_key, to_date(l.effective) AS day, l.effective, l.value, l.comparator,
         CASE WHEN l.comparator IS NULL THEN l.value >= :acr_at_least
              WHEN l.comparator IN ('>', '>=') AND l.value >= :acr_at_least THEN TRUE
              WHEN l.comparator = '<' AND l.value <= :acr_at_least THEN FALSE
              WHEN l.comparator = '<=' AND l.value < :acr_at_least THEN FALSE END AS abnormal
  FROM lab_result l
  WHERE l.loinc = :loinc_acr AND l.unit = 'mg/g' AND l.value BETWEEN 0 AND :acr_max
),
flags AS (
  SELECT patient_key, day, 'egfr' AS kind, egfr < :egfr_below AS abnormal FROM egfr WHERE egfr IS NOT NULL
  UNION ALL
  SELECT patient_key, day, 'acr' AS kind, abnormal FROM acr WHERE abnormal IS NOT NULL
),
-- persistence (KDIGO 2012 §1.1, "> 3 months"): abnormal on two days more than
-- :persistence_days apart with no normal result of the same kind strictly between them
pairs AS (
  SELECT a.patient_key, a.kind, a.day AS first_day, b.day AS second_day
  FROM flags a JOIN flags b
    ON a.patient_key = b.patient_key AND a.kind = b.kind AND a.abnormal AND b.abnormal
   AND datediff(b.day, a.day) > :persistence_days
),
persistent AS (
  SELECT p.patient_key, p.kind, min(p.second_day) AS qualifying_day
  FROM pairs p LEFT ANTI JOIN flags n
    ON n.patient_key = p.patient_key AND n.kind = p.kind AND NOT n.abnormal
   AND n.day > p.first_day AND n.day < p.second_day
  GROUP BY p.patient_key, p.kind
),
-- diagnoses: the ICD-10 stem and the manifestation codes (after "+") of the local code
dx_codes AS (
  SELECT d.patient_key, to_date(d.recorded) AS day, code
  FROM diagnosis d
  LATERAL VIEW explode(concat(array(d.icd10),
      regexp_extract_all(upper(coalesce(d.local_code, '')), '\\+([A-Z][0-9]{2}(\\.[0-9])?)', 1))) t AS code
  WHERE code IS NOT NULL AND coalesce(d.verification, 'confirmed') <> 'refuted'
),
dx_matched AS (
  SELECT x.patient_key, x.day, x.code, c.list
  FROM dx_codes x JOIN codes c ON c.list IN ('diagnosis', 'diagnosis_needs_results') AND startswith(x.code, c.code)
),
any_abnormal AS (SELECT DISTINCT patient_key FROM flags WHERE abnormal),
dx AS (  -- a code of the "needs results" list (N19) counts only beside an abnormal kidney result
  SELECT m.patient_key, min(m.day) AS diagnosis_day, array_sort(collect_set(m.code)) AS codes
  FROM dx_matched m LEFT JOIN any_abnormal a USING (patient_key)
  WHERE m.list = 'diagnosis' OR a.patient_key IS NOT NULL
  GROUP BY m.patient_key
),
cohort AS (
  SELECT patient_key FROM dx UNION SELECT patient_key FROM persistent
),
latest_scr AS (
  SELECT patient_key, max_by(struct(scr_umol, day, egfr, age, gender), struct(effective, id)) AS s, count(*) AS n
  FROM egfr GROUP BY patient_key
),
latest_acr AS (
  SELECT patient_key, max_by(value, struct(effective, id)) AS value
  FROM acr WHERE comparator IS NULL GROUP BY patient_key
)
SELECT
  c.patient_key,
  coalesce(ls.s.gender, p.gender) AS sex,
  ls.s.age AS age_years,
  round(ls.s.scr_umol, 1) AS latest_creatinine_umol_l,
  ls.s.day AS latest_creatinine_date,
  round(ls.s.egfr, 2) AS egfr,
  kdigo_g_stage(ls.s.egfr) AS g_stage,
  round(la.value, 1) AS latest_acr_mg_g,
  kdigo_a_stage(la.value) AS a_stage,
  filter(array(IF(dx.patient_key IS NOT NULL, 'diagnosis', NULL), IF(pe.patient_key IS NOT NULL, 'egfr', NULL),
               IF(pa.patient_key IS NOT NULL, 'acr', NULL)), x -> x IS NOT NULL) AS qualifying_basis,
  least(dx.diagnosis_day, pe.qualifying_day, pa.qualifying_day) AS first_qualifying_date,
  coalesce(dx.codes, array()) AS ckd_diagnosis_codes,
  coalesce(ls.n, 0) AS n_creatinine_results,
  coalesce(o.institutions, array()) AS source_institutions
FROM cohort c
LEFT JOIN person p USING (patient_key)
LEFT JOIN latest_scr ls USING (patient_key)
LEFT JOIN latest_acr la USING (patient_key)
LEFT JOIN dx USING (patient_key)
LEFT JOIN (SELECT * FROM persistent WHERE kind = 'egfr') pe USING (patient_key)
LEFT JOIN (SELECT * FROM persistent WHERE kind = 'acr') pa USING (patient_key)
LEFT JOIN institutions o USING (patient_key)
