"""The fitted scaling laws :mod:`analysis.scaling` returns: parameters, objective, bootstrap
intervals and replicates (for prediction bands), and bound flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["ChinchillaFit", "DataLawFit"]


@dataclass(frozen=True, kw_only=True)
class ChinchillaFit:
    """A fitted ``L(N, D) = E + A/N^alpha + B/D^beta``.

    Attributes:
        E, A, B, alpha, beta: the law's parameters.
        objective: Σ Huber_δ(log L − log L̂) at the optimum, over the points fitted.
        n_points: points fitted (after ``exclude_highest``).
        start: the grid start (a, b, e, alpha, beta) that reached the optimum.
        delta: the Huber threshold used.
        ci: ``{name: (low, high)}`` percentile intervals for E, A, B, alpha, beta and the two
            compute-optimal exponents; empty without bootstrap.
        n_bootstrap: bootstrap replicates behind ``ci``.
        flags: parameters on a bound (``E ≈ 0``, an exponent at 0); empty for a sound fit.
        replicates: the bootstrap refits' parameters (for prediction bands).
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    n_points: int
    start: dict[str, float]
    delta: float = 1e-3
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_bootstrap: int = 0
    flags: tuple[str, ...] = ()
    replicates: tuple[dict[str, float], ...] = field(default=(), repr=False)

    @property
    def n_opt_exponent(self) -> float:
        """a in N_opt ∝ C^a: beta/(alpha+beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def d_opt_exponent(self) -> float:
        """b in D_opt ∝ C^b: alpha/(alpha+beta)."""
        return self.alpha / (self.alpha + self.beta)

    def predict(self, N: np.ndarray | float, D: np.ndarray | float) -> np.ndarray:
        """L(N, D), broadcasting N against D."""
        N, D = np.asarray(N, dtype=np.float64), np.asarray(D, dtype=np.float64)
        return self.E + self.A * N ** (-self.alpha) + self.B * D ** (-self.beta)

    def optimal_allocation(self, C: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) minimising L under C = 6·N·D (docs/equations.md §8.1).

        N_opt = G·(C/6)^(beta/(alpha+beta)), D_opt = G⁻¹·(C/6)^(alpha/(alpha+beta)),
        G = (alpha·A/(beta·B))^(1/(alpha+beta)).
        """
        c6 = np.asarray(C, dtype=np.float64) / 6.0
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        return g * c6**self.n_opt_exponent, c6**self.d_opt_exponent / g

    def band(
        self, N: np.ndarray | float, D: np.ndarray | float, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Percentile band of L(N, D) over the bootstrap replicates; None without them."""
        if len(self.replicates) < 10:
            return None
        N, D = np.asarray(N, dtype=np.float64), np.asarray(D, dtype=np.float64)
        preds = np.vstack(
            [
                r["E"] + r["A"] * N ** (-r["alpha"]) + r["B"] * D ** (-r["beta"])
                for r in self.replicates
            ]
        )
        tail = 100 * (1 - level) / 2
        lo, hi = np.percentile(preds, [tail, 100 - tail], axis=0)
        return lo, hi

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form (JSON-serialisable), with the derived exponents."""
        out = asdict(self)
        out.pop("replicates")
        out["ci"] = {k: list(v) for k, v in self.ci.items()}
        out["flags"] = list(self.flags)
        out["n_opt_exponent"] = self.n_opt_exponent
        out["d_opt_exponent"] = self.d_opt_exponent
        return out


@dataclass(frozen=True, kw_only=True)
class DataLawFit:
    """A fitted ``L(D) = E + B/D^beta`` (one model; D in the units it was fitted in).

    Attributes:
        E, B, beta: the law's parameters.
        objective: Σ Huber_δ(log L − log L̂) at the optimum.
        n_points: points fitted.
        start: the start (b, e, beta) that reached the optimum.
        delta: the Huber threshold used.
        ci: ``{name: (low, high)}`` percentile intervals for E, B, beta; empty without bootstrap.
        n_bootstrap: bootstrap replicates behind ``ci``.
        flags: parameters on a bound (``E ≈ 0``, ``E`` at ``min L``, ``beta ≈ 0``); empty for a
            sound fit.
        replicates: the bootstrap refits' parameters (for prediction bands).
    """

    E: float
    B: float
    beta: float
    objective: float
    n_points: int
    start: dict[str, float]
    delta: float = 1e-3
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_bootstrap: int = 0
    flags: tuple[str, ...] = ()
    replicates: tuple[dict[str, float], ...] = field(default=(), repr=False)

    def predict(self, D: np.ndarray | float) -> np.ndarray:
        """L(D)."""
        return self.E + self.B * np.asarray(D, dtype=np.float64) ** (-self.beta)

    def band(
        self, D: np.ndarray | float, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Percentile band of L(D) over the bootstrap replicates; None with fewer than 10."""
        if len(self.replicates) < 10:
            return None
        D = np.asarray(D, dtype=np.float64)
        preds = np.vstack([r["E"] + r["B"] * D ** (-r["beta"]) for r in self.replicates])
        tail = 100 * (1 - level) / 2
        lo, hi = np.percentile(preds, [tail, 100 - tail], axis=0)
        return lo, hi

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form (JSON-serialisable)."""
        out = asdict(self)
        out.pop("replicates")
        out["ci"] = {k: list(v) for k, v in self.ci.items()}
        out["flags"] = list(self.flags)
        return out
