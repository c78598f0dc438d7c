"""Stage 4, publish: curated disease datasets (ckd_registry) from the batches that passed the gate, MERGEd into gold (stage).
Imports `spec`, `domain` and `storage`; never another stage."""
