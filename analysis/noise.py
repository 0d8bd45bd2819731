"""Seed noise: standard errors and paired comparisons of candidates.

Two candidates run with the same seed share their initialisation and data order, so their
difference is measured seed by seed (a *paired* comparison): ``d_s = loss_a(s) − loss_b(s)``
over the seeds both have, ``mean(d)``, ``se = sd(d)/√n`` and ``t = mean(d)/se``. The difference
is **significant** when ``|t| > t(0.975, n − 1)`` — the two-sided 5% paired t-test — and
*within noise* otherwise. With fewer than two common seeds nothing can be said: the verdict is
``"n/a (1 seed)"`` and the difference is never called significant (a missing standard error is
not a zero one). A seed that diverged on one side only is a real, observed failure: the verdict
is ``"diverged"`` and it counts as significant against the side that diverged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import stdtrit

__all__ = [
    "NA_ONE_SEED",
    "NOISE_RULE",
    "Comparison",
    "paired",
    "paired_frame",
    "t_critical",
]

NOISE_RULE = "paired t-test over common seeds, two-sided 5%: |mean Δ| > t(0.975, n−1)·se(Δ)"
NA_ONE_SEED = "n/a (1 seed)"
SIGNIFICANT = "significant"
WITHIN = "within noise"
DIVERGED = "diverged"


def t_critical(n: np.ndarray | int) -> np.ndarray:
    """Two-sided 5% critical value of Student's t with ``n − 1`` degrees of freedom (NaN, n < 2)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):  # stdtrit is scipy.stats.t.ppf's own kernel (same bits)
        return np.where(n >= 2, stdtrit(np.maximum(n - 1, 1), 0.975), np.nan)


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of candidate a against candidate b (Δ = a − b; lower loss is better).

    Attributes:
        diff: mean of the paired differences (NaN without a common seed; ±inf if one diverged).
        stderr: sd(Δ)/√n (NaN for n < 2).
        n: common seeds.
        t: diff/stderr (±inf when every paired difference is equal and non-zero).
        critical: t(0.975, n − 1) (NaN for n < 2).
        verdict: ``"significant"``, ``"within noise"``, ``"diverged"`` or ``"n/a (…)"``.
    """

    diff: float
    stderr: float
    n: int
    t: float
    critical: float
    verdict: str

    @property
    def significant(self) -> bool:
        """True for a significant difference (or a one-sided divergence)."""
        return self.verdict in (SIGNIFICANT, DIVERGED)

    def text(self, scale: float = 1.0, unit: str = "") -> str:
        """``"+0.012 ± 0.003 (3 seeds, significant)"``, or the n/a verdict alone."""
        if self.verdict.startswith("n/a"):
            return self.verdict
        if self.verdict == DIVERGED:
            return "diverged (one side)"
        return (
            f"{self.diff * scale:+.3g}{unit} ± {self.stderr * scale:.2g}{unit} "
            f"({self.n} seeds, {self.verdict})"
        )


def _verdict(n: int, diff: float, se: float, has_inf: bool, both_inf: bool) -> tuple[str, float]:
    if n == 0:
        return "n/a (no common seed)", math.nan
    if both_inf:
        return "n/a (both diverged)", math.nan
    if has_inf:
        return DIVERGED, math.copysign(math.inf, diff)
    if n < 2:
        return NA_ONE_SEED, math.nan
    if se == 0.0:
        return (WITHIN, 0.0) if diff == 0.0 else (SIGNIFICANT, math.copysign(math.inf, diff))
    t = diff / se
    return (SIGNIFICANT if abs(t) > float(t_critical(n)) else WITHIN), t


def paired(a: pd.Series, b: pd.Series) -> Comparison:
    """Paired comparison of two candidates' per-seed losses (Series indexed by seed).

    Seeds present in only one of them are ignored; NaN (failed) seeds too.
    """
    frames = [pd.DataFrame({"_k": 0, "seed": s.index, "loss": s.to_numpy(float)}) for s in (a, b)]
    out = paired_frame(frames[0], frames[1], ["_k"])
    if out.empty:
        return Comparison(math.nan, math.nan, 0, math.nan, math.nan, "n/a (no common seed)")
    r = out.iloc[0]
    return Comparison(
        float(r["diff"]),
        float(r["stderr"]),
        int(r["n"]),
        float(r["t"]),
        float(r["critical"]),
        str(r["verdict"]),
    )


def paired_frame(
    left: pd.DataFrame, right: pd.DataFrame, keys: list[str], value: str = "loss"
) -> pd.DataFrame:
    """:func:`paired` for many pairs at once.

    Args:
        left, right: per-seed frames with ``keys``, ``seed`` and ``value`` columns; a row of
            ``left`` is compared with the row of ``right`` with the same keys and seed.
        keys: the columns identifying one comparison.
        value: the compared column.

    Returns:
        One row per key present in both: ``keys``, ``diff``, ``stderr``, ``n``, ``t``,
        ``critical``, ``verdict``, ``significant``.
    """
    m = left[[*keys, "seed", value]].merge(
        right[[*keys, "seed", value]], on=[*keys, "seed"], suffixes=("_a", "_b")
    )
    m = m.loc[m[f"{value}_a"].notna() & m[f"{value}_b"].notna()]
    inf_a, inf_b = np.isinf(m[f"{value}_a"]), np.isinf(m[f"{value}_b"])
    m = m.assign(
        d=np.where(inf_a | inf_b, np.nan, m[f"{value}_a"] - m[f"{value}_b"]),
        inf_a=inf_a,
        inf_b=inf_b,
    )
    g = m.groupby(keys, sort=True, dropna=False)
    out = g.agg(
        n=("seed", "size"),
        diff=("d", "mean"),
        sd=("d", "std"),
        inf_a=("inf_a", "any"),
        inf_b=("inf_b", "any"),
    ).reset_index()
    n = out["n"].to_numpy(int)
    se = out.pop("sd").to_numpy(float) / np.sqrt(np.maximum(n, 1))
    crit = t_critical(n)
    rows = [
        _verdict(
            int(k),
            float(dv) if ia == ib else (math.inf if ia else -math.inf),
            float(s),
            bool(ia or ib),
            bool(ia and ib),
        )
        for k, dv, s, ia, ib in zip(n, out["diff"], se, out["inf_a"], out["inf_b"], strict=True)
    ]
    out["diff"] = [
        math.inf if ia and not ib else -math.inf if ib and not ia else dv
        for dv, ia, ib in zip(out["diff"], out["inf_a"], out["inf_b"], strict=True)
    ]
    out["stderr"] = np.where((n >= 2) & ~(out["inf_a"] | out["inf_b"]), se, np.nan)
    out["t"] = [t for _, t in rows]
    out["critical"] = crit
    out["verdict"] = [v for v, _ in rows]
    out["significant"] = out["verdict"].isin([SIGNIFICANT, DIVERGED])
    return out.drop(columns=["inf_a", "inf_b"])[
        [*keys, "diff", "stderr", "n", "t", "critical", "verdict", "significant"]
    ]
