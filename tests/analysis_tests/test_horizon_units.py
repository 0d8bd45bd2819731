"""Horizon units follow the workload: steps and samples for a linear regression, tokens and
multiples of Chinchilla's 20 tokens per parameter for a language model."""

from __future__ import annotations

from analysis.figures._common import horizon_axis, horizon_text, multiples_text
from analysis.horizons import horizon_multiples, loss_table
from analysis.summary import summary_sentences
from tests.analysis_tests._frames import frame, rows


def _table(workload: str):
    fl = frame(
        rows("cosine", 0.1, "raw", {100: [1.0], 200: [0.9], 400: [0.8]}),
        rows("constant", 0.1, "raw", {100: [1.1], 200: [1.0], 400: [0.9]}),
    ).assign(workload=workload)
    return loss_table(fl)


def test_language_model_horizons_read_tokens_and_chinchilla() -> None:
    t = _table("shakespeare")
    mults, unit = horizon_multiples(t)
    assert unit == "Chinchilla" and list(mults["multiple"]) == [1.0, 2.0, 4.0]  # 20·5000 = 1e5 tokens
    assert horizon_text(t).iloc[0] == "100 steps · 100K tokens · 1× Chinchilla"
    assert multiples_text(t)[("shakespeare", "s", 400)] == "4× Chinchilla (400 steps, 400K tokens)"
    assert horizon_axis(t) == ("tokens", "training tokens")


def test_linreg_horizons_read_steps_and_samples_never_chinchilla() -> None:
    t = _table("linreg")
    mults, unit = horizon_multiples(t)
    assert unit == "shortest horizon" and list(mults["multiple"]) == [1.0, 2.0, 4.0]
    assert horizon_text(t).iloc[0] == "100 steps · 100K samples · 1× shortest"
    assert multiples_text(t)[("linreg", "s", 400)] == "4× shortest (400 steps, 400K samples)"
    assert horizon_axis(t) == ("tokens", "training samples")
    text = "\n".join(summary_sentences(t))
    assert "Chinchilla" not in text and "tokens" not in text
