"""Where data lives and how it is written safely: lake paths, Delta commits, table stores, control tables, visibility, locks, staging, the Spark session and the run size its profile is chosen from, the stage context, lineage events and fault points.
Imports `spec`, `domain` and `errors`; never a stage."""
