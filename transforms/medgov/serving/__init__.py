"""Serving the curated datasets to downstream apps: feasibility counts under disclosure control (query, disclosure, feasibility) and the audit of every request (audit).
Imports `spec`, `storage` and `errors`; reads gold through delta-rs and Polars, never Spark."""
