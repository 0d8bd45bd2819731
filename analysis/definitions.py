"""What *anytime* means here, taken from the seed papers, as code and as the report's text.

A candidate (a setting without its seed, with one weights variant; :mod:`analysis.tables`) is

- **horizon-free** ("anytime") when nothing in it depends on the training length: the LR rule is
  ``constant``, ``polynomial`` or ``inverse_sqrt``, or the optimizer is schedule-free (no
  schedule at all), *and* its weights variant is the raw iterate, a schedule-free ``x``, an EMA,
  LAWA, polynomial averaging or an SWA from a fixed step. One run serves every horizon: its loss
  at horizon T is read off the same trajectory (Meterez et al. 2026, arXiv 2602.03702; Defazio
  et al. 2024).
- **horizon-aware** otherwise: ``cosine`` and ``linear`` train one run per horizon, each WSD
  cooldown (Hägele et al. 2024, arXiv 2405.18392) is placed for its horizon, and an SWA whose
  window starts at a *fraction* of the horizon (``swa@0.5``) must know the horizon before it
  starts averaging (docs/equations.md §6.2). An unknown schedule name counts as horizon-aware: it is
  never claimed to be anytime without evidence.

The horizon-aware candidates form the **per-horizon tuned envelope**: at each horizon T,
``envelope(T)`` is the lowest mean loss over every horizon-aware candidate (any schedule, peak
LR and cooldown, each tuned for T). The regret of an anytime candidate c at T is
``loss(c, T)/envelope(T) − 1`` (negative when c beats the envelope); its worst-case and mean
regret run over the horizons. The **anytime-optimal** candidate minimises the worst-case regret
(ties: mean regret, then label). When a sweep has no horizon-aware candidate the envelope falls
back to the per-horizon best over all candidates, and the report says so.
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = [
    "ANYTIME",
    "DEFINITIONS",
    "HORIZON_AWARE",
    "HORIZON_AWARE_SCHEDULES",
    "HORIZON_FREE_SCHEDULES",
    "candidate_kind",
    "kinds",
    "member_label",
    "weights_horizon_aware",
]

ANYTIME = "anytime"
HORIZON_AWARE = "horizon-aware"

HORIZON_FREE_SCHEDULES: frozenset[str] = frozenset({"constant", "polynomial", "inverse_sqrt"})
"""LR rules that never read the horizon (trials.schedules: ``horizon_free = True``)."""

HORIZON_AWARE_SCHEDULES: frozenset[str] = frozenset({"cosine", "linear", "wsd"})
"""LR rules placed for one horizon: one run per horizon, or one cooldown branch per horizon."""

_FRACTION = re.compile(r"^swa@(0?\.\d+)(/\d+)?$")

DEFINITIONS: tuple[str, ...] = (
    "Candidate: a setting (schedule and its parameters, optimizer and its parameters, peak LR, "
    "warmup, batch) without its seed, together with one weights variant (raw, schedule-free x, "
    "EMA, SWA, …). Losses are means over seeds.",
    "Anytime (horizon-free) candidates: constant, polynomial and inverse-sqrt LR, and "
    "schedule-free optimizers, each with every averager that does not read the horizon — one "
    "run answers every horizon.",
    "Horizon-aware candidates: cosine and linear (one run per horizon), each WSD cooldown "
    "(placed for its horizon), and SWA windows starting at a fraction of the horizon "
    "(swa@0.5). At each horizon, the best of them (re-tuned for that horizon) is the envelope.",
    "Regret of an anytime candidate at horizon T: loss/envelope(T) − 1, negative when it beats "
    "the envelope. Anytime-optimal: the anytime candidate with the lowest worst-case regret over "
    "the horizons (ties: lower mean regret).",
    "Noise: seeds with the same number share initialisation and data order, so candidates are "
    "compared pair-wise by seed (paired t-test, two-sided 5%). A difference is significant only "
    "when |mean difference| > t(0.975, n−1) · its standard error; with one seed no comparison "
    "can be made (n/a). A leader is called a winner only when its lead is significant.",
)
"""The definitions as the report prints them (one sentence each)."""


def weights_horizon_aware(weights: str) -> bool:
    """Whether a weights label needs the horizon: an SWA window starting at a fraction of it.

    ``"swa@0.5"`` (start_fraction 0.5 of each horizon) is; ``"swa@500"`` (from step 500),
    ``"ema@0.1"`` (half-life a fraction of the steps *so far*), ``"raw"`` and ``"x"`` are not.
    """
    return bool(_FRACTION.match(str(weights)))


def candidate_kind(schedule: str | None, weights: str, family: str = "") -> str:
    """:data:`ANYTIME` or :data:`HORIZON_AWARE` for one candidate.

    Args:
        schedule: the schedule name; ``""``/``None`` for a schedule-free optimizer.
        weights: the weights label.
        family: the family (the schedule's name, or the schedule-free optimizer's); decides
            when ``schedule`` is not given.
    """
    name = "" if schedule is None or str(schedule) in ("", "None", "nan") else str(schedule)
    rule = name or str(family)
    if rule in HORIZON_AWARE_SCHEDULES or (name and name not in HORIZON_FREE_SCHEDULES):
        return HORIZON_AWARE
    return HORIZON_AWARE if weights_horizon_aware(weights) else ANYTIME


def kinds(frame: pd.DataFrame) -> pd.Series:
    """:func:`candidate_kind` of every row of a frame with ``schedule``, ``weights``, ``family``."""
    cols = ["schedule", "weights", "family"]
    keys = [tuple(r) for r in frame[cols].astype(str).itertuples(index=False)]
    lookup = {k: candidate_kind(*k) for k in set(keys)}
    return pd.Series([lookup[k] for k in keys], index=frame.index, dtype=object)


def member_label(family: str, schedule_params: str) -> str:
    """A family member's name: the family, plus its schedule parameters when it has any
    (``"wsd (cooldown_fraction=0.2, cooldown_shape=1-sqrt)"``)."""
    import json

    try:
        params = json.loads(schedule_params) if schedule_params else {}
    except (TypeError, ValueError):
        params = {}
    if not isinstance(params, dict) or not params:
        return str(family)
    inner = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )
    return f"{family} ({inner})"
