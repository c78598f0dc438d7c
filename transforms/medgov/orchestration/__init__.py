"""Airflow integration beside the DAG files: the landing-zone event trigger.
Imports `ingest.landing`, `storage` and Airflow; the DAGs in dags/ import this and `pipeline`."""
