"""medgov: hospital extracts -> bronze -> FHIR R4 silver -> quality gate -> curated datasets."""

__version__ = "0.1.0"
