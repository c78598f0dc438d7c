"""`medgov bench`: the pipeline timed on generated feeds (harness) with each run in its own process (timed_run).
Imports `sample`, `pipeline` and below; nothing imports it but the CLI."""
