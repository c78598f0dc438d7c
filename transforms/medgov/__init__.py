"""medgov: hospital extracts -> bronze -> FHIR R4 silver -> quality gate -> curated datasets.

Importing the package stays light (no Spark, Great Expectations or Airflow); each subpackage's
docstring says what lives there and what it may import.
"""

__version__ = "0.1.0"
