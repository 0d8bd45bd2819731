"""A status stored by an earlier attempt does not outlive the rerun that finishes the lineage:
a trunk recorded ``failed`` (disk full, a lost node past its retries) and then trained to its end
is recorded ``completed``; a stored ``diverged`` stays ``diverged``."""

from __future__ import annotations

import pytest

from trials.identity import TRUNK
from trials.lineage import run_lineage
from trials.lineage_plan import PlanConfig, TrialSetting, plan_lineages
from trials.sinks import MemorySink
from trials.work import StoredLineage


def _lineage():
    s = TrialSetting(workload="linreg", workload_params={"dim": 10}, optimizer="sgd", optimizer_params={},
                     schedule_free=False, schedule="polynomial", schedule_params={"gamma": 0.5, "t0": 10.0},
                     peak_lr=0.1, warmup=0, batch_size=4, seed=0, horizons=(20, 60))
    (lineage,), _ = plan_lineages([s], PlanConfig(checkpoint_grid=0))
    return lineage


@pytest.mark.parametrize("before", ["failed", None])
def test_a_rerun_that_trains_the_trunk_to_its_end_records_it_completed(before):
    spec = _lineage()
    sink = MemorySink()
    # what an earlier attempt left: a trunk row with that status and no rows or checkpoints
    result = run_lineage(spec, sink=sink, stored=StoredLineage(rows_frontier=0, trunk_status=before))
    assert result.status == "completed"
    assert sink.results[TRUNK]["status"] == "completed" and sink.results[TRUNK]["max_step"] == 60
    assert sink.results[TRUNK]["error"] is None


def test_a_stored_divergence_is_kept_by_a_continued_trunk():
    spec = _lineage()
    sink = MemorySink()
    result = run_lineage(spec, sink=sink, stored=StoredLineage(rows_frontier=0, trunk_status="diverged"))
    assert result.status == "diverged"
