"""Generated sample deliveries in the extract interface, for the demo, the tests and the benchmark (not product code).
Imports `spec` and `domain` only."""
