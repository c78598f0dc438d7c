"""Stage 1, ingest: landing batches verified (landing, manifest, extract_csv), typed against their contracts (bronze) and written to bronze and quarantine (stage).
Imports `spec`, `domain`, `storage` and `quality.results`; never another stage."""
