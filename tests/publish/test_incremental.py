"""Publish recomputes only the persons a batch touched, and what it MERGEs equals a rebuild
over every person: after the follow-up deliveries (a corrected re-delivery withdrawing rows,
results arriving before their patient, an accepted terminology decision)."""

from __future__ import annotations

import json

from deltalake import DeltaTable

from medgov.publish.cohort import build, view_frames
from medgov.publish.stage import _resources
from medgov.spec.datasets import datasets
from medgov.spec.lifecycle import PUBLISHABLE
from medgov.spec.site import load_site
from medgov.storage import control
from medgov.storage.commits import sql_in
from medgov.storage.context import make_context
from medgov.storage.lake import Lake


def _rows(rows) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k != "updated_run_id"}, default=str, sort_keys=True)
                  for r in rows)


def test_the_follow_up_runs_recompute_only_the_persons_touched(followups):
    everyone = len(set(DeltaTable(str(followups.lake / "silver" / "patient")).to_pyarrow_table()
                       .column("id").to_pylist()))
    for run in (followups.first, followups.second):
        for name, scope in run["publish"].recomputed.items():
            assert scope != "all", (name, scope)
            assert 0 < int(scope.split()[0]) < everyone, (name, scope, everyone)
    # the second run brought one patient, a visit and a terminology decision: a few persons
    assert all(int(v.split()[0]) <= 3 for v in followups.second["publish"].recomputed.values())


def test_what_was_merged_equals_a_rebuild_over_everyone(followups, spark):
    ctx = make_context(str(followups.lake), config=load_site(followups.site))
    lake = Lake.at(followups.lake)
    allowed = [k for k, b in control.batches(lake).items() if b["stage"] in PUBLISHABLE]
    resources = _resources(ctx, sql_in("batch_key", allowed), None)
    upstream = {}
    for d in datasets():
        rebuilt = build(spark, d, view_frames(d, resources), upstream, "rebuild")
        upstream[d.name] = rebuilt
        gold = DeltaTable(str(followups.lake / "gold" / d.name)).to_pyarrow_table().to_pylist()
        assert _rows(gold) == _rows([r.asDict(recursive=True) for r in rebuilt.collect()]), d.name
