"""The stages in order and the one runner that sequences them for `medgov run`, the Airflow DAGs and the benchmark.
Imports the stages lazily (through the lifecycle's function paths) and `storage`."""
