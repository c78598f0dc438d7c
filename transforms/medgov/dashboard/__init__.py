"""The data steward's quality dashboard, read-only from a lake or exported as a static site: `snapshot` reads, `queries` computes, `charts` draws, `site` renders, `app` serves.
Imports `spec`, `domain`, `storage` and `quality.results`; no Spark, no Great Expectations."""
