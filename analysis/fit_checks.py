"""Fit honesty: refuse fits the data cannot determine, flag fits that ended on a bound.

- A law with p free parameters is only fitted to at least ``p + 1`` points: with ``p`` points a
  p-parameter law interpolates them exactly (the Huber objective reaches 0 whatever the truth),
  so neither its parameters nor its extrapolation mean anything. :func:`require_points` raises
  :class:`FitRefused` with that reason.
- A fitted parameter that sits on (or numerically at) a bound of its domain — an irreducible
  loss ``E ≈ 0`` (the whole loss put into the power law), ``E`` at its cap ``min L``, an
  exponent at 0 — means the optimum lies outside the model's domain: the fit is *flagged*
  (``flags`` on every fit), and the report draws no extrapolation of a flagged fit.
"""

from __future__ import annotations

__all__ = ["E_ZERO_RATIO", "EXPONENT_ZERO", "FitRefused", "flag_bounds", "require_points"]

E_ZERO_RATIO = 1e-3
"""``E`` below this fraction of the smallest loss fitted counts as ``E ≈ 0``."""

EXPONENT_ZERO = 1e-3
"""An exponent below this counts as sitting on its lower bound 0."""


class FitRefused(ValueError):
    """The data cannot determine the law (too few points); the message says why."""


def require_points(n: int, n_params: int, law: str) -> None:
    """Raise :class:`FitRefused` unless ``n >= n_params + 1``.

    Args:
        n: points available.
        n_params: free parameters of the law.
        law: the law's name, for the message (``"L(D) = E + B/D^beta"``).
    """
    if n < n_params + 1:
        raise FitRefused(
            f"fit of {law} refused: it has {n_params} parameters and needs at least "
            f"{n_params + 1} points ({n_params} + 1), got {n}"
        )


def flag_bounds(
    *,
    E: float | None = None,
    min_loss: float | None = None,
    exponents: dict[str, float] | None = None,
) -> tuple[str, ...]:
    """The bound flags of a fit: ``E ≈ 0``, ``E`` at its cap ``min L``, an exponent at 0."""
    flags: list[str] = []
    if E is not None and min_loss is not None and min_loss > 0:
        if E < E_ZERO_RATIO * min_loss:
            flags.append(
                f"E ≈ 0 (E = {E:.3g} < {E_ZERO_RATIO:g}·min L): the irreducible loss sits on its "
                "lower bound; the fit is degenerate and its extrapolation unreliable"
            )
        elif E > (1.0 - 1e-6) * min_loss:
            flags.append(
                f"E at its upper bound min L = {min_loss:.4g}: the law cannot bend below the data"
            )
    for name, value in (exponents or {}).items():
        if value < EXPONENT_ZERO:
            flags.append(f"{name} ≈ 0 ({value:.3g}): the exponent sits on its lower bound")
    return tuple(flags)
