"""SQL on FHIR v2 ViewDefinitions on Spark: FHIRPath compiled to native Spark expressions, typed from the FHIR R4 model (fhir_model, typed) or over VARIANT resources (fhirpath), the view's checks (definition), rows from resources (runner), the official suite (conformance).
Imports `spec`, `errors` and `storage`; never a stage. PySpark is imported by fhirpath and runner only."""
