"""Stage 2, normalize: bronze rows become pseudonymised FHIR R4 resources (builders), validated (fhir_validation) in the executors (silver), written to silver (stage).
Imports `spec`, `domain`, `storage` and `quality.results`; never another stage."""
