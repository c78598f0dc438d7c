"""Checks and stage 3, validate: the results table every layer writes (results), the views and GX runs of the catalogue's suites (views, gx_runner), masked examples (examples), the gate (stage).
Imports `spec`, `domain` and `storage`; never another stage. Great Expectations is imported only by gx_runner."""
