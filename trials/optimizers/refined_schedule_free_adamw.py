"""Refined Schedule-Free AdamW (Song, Baek, Ahn, Yun 2025, "Through the River", arXiv 2507.09846).

Vanilla SF's ``beta1`` both smooths the gradients seen at ``y`` and sets the width of the average
``x``. The refined variant decouples the two with a constant ``C`` (docs/equations.md §2)::

    c ← min(1, c_SF · (1 - beta1) · C)

everything else as :class:`ScheduleFreeAdamW`. ``C = 1/(1 - beta1)`` is vanilla SF exactly; a
larger ``C`` shortens the averaging window. The rule is from secondary sources
(docs/equations.md §9): the paper's default ``C`` is unverified, so ``C`` has no default here.
Registered as ``"sf_adamw_refined"`` (``C`` required there too).

Why ``C = 1/(1 - beta1)`` is bitwise vanilla: the factor is computed as ``(1 - beta1) * C`` first;
for the usual beta1 that product rounds to exactly 1.0 in float64, and ``c_SF * 1.0 == c_SF`` and
``min(1, c_SF) == c_SF`` (c_SF <= 1) exactly, so every other operation sees the same numbers.
"""

from __future__ import annotations

from typing import Any

from trials.optimizers._arguments import check_number
from trials.optimizers.schedule_free_adamw import ScheduleFreeAdamW

__all__ = ["RefinedScheduleFreeAdamW"]


class RefinedScheduleFreeAdamW(ScheduleFreeAdamW):
    """:class:`ScheduleFreeAdamW` with the averaging weight scaled by ``(1 - beta1) · C``.

    Args:
        C: the averaging constant (> 0); keyword-only. Other arguments as for
            :class:`ScheduleFreeAdamW`.
    """

    def __init__(self, params: Any, lr: float = 0.0025, *, C: float, **kwargs: Any) -> None:  # noqa: N803
        check_number("C", C, 0, low_open=True)
        super().__init__(params, lr, **kwargs)
        for group in self.param_groups:
            group.setdefault("C", C)
        self.defaults["C"] = C

    def _averaging_weight(self, group: dict[str, Any], k: int, lr_k: float) -> float:
        c_sf = super()._averaging_weight(group, k, lr_k)
        # c = min(1, c_SF · ((1 - beta1) · C)); grouped so that C = 1/(1 - beta1) gives a factor
        # of exactly 1.0 for the usual beta1 (0.5 … 0.999) and reproduces vanilla SF bit for bit
        return min(1.0, c_sf * ((1.0 - group["betas"][0]) * group["C"]))
