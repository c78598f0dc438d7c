"""Rules of the domain reference: identity numbers, pseudonyms, ICD-10 stems, clinical formulas, masking, finite numbers, lab-item translation; pure Python, with their Spark column forms in `columns`.
Imports `medgov.spec` and `medgov.errors` only."""
