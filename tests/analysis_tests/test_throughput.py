"""The report's throughput sentence from a lineages frame with known numbers."""

from __future__ import annotations

import pandas as pd

from analysis.throughput import throughput_sentence, throughput_summary


def frame(mfu=(None, None, None)) -> pd.DataFrame:
    # two settings share the trunk (its row appears twice in the lineages view; counted once)
    return pd.DataFrame({
        "lineage_id": ["a", "a", "a", "b"], "branch": ["trunk", "trunk", "h=8", "trunk"],
        "tokens_per_s": [1000.0, 1000.0, 3000.0, None], "train_time_s": [3.0, 3.0, 1.0, None],
        "step_time_s": [0.1, 0.1, 0.3, None], "mfu": [mfu[0], mfu[0], mfu[1], mfu[2]],
        "device": ["cpu", "cpu", "cpu", None],
    })


def test_tokens_over_time_counts_a_shared_trunk_once_and_mfu_is_na_on_cpu():
    s = throughput_summary(frame())
    assert s == {"tokens_per_s": (3000.0 + 3000.0) / 4.0, "step_time_s": 0.2, "mfu": None, "runs": 2,
                 "devices": ["cpu"]}
    assert throughput_sentence(frame()) == ("throughput per lineage: 1.5K tokens/s, step time 200 ms (median), "
                                            "MFU n/a on cpu (2 runs)")


def test_mfu_is_the_median_where_recorded_and_old_stores_give_no_sentence():
    assert throughput_summary(frame(mfu=(0.3, 0.5, None)))["mfu"] == 0.4
    old = frame().assign(tokens_per_s=None, train_time_s=None)
    assert throughput_sentence(old) is None and throughput_sentence(frame().drop(columns=["mfu"])) is None
