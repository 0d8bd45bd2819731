"""Weight averagers that ride along one lineage (docs/equations.md §6).

>>> import torch
>>> w = [torch.zeros(3)]
>>> avg = AveragerSet(w, [AveragerSpec(kind="swa", params={"start": 0})])
>>> for step in (1, 2, 3):
...     _ = w[0].fill_(float(step))
...     avg.update(step)
>>> with avg.swapped("swa@0"):
...     w[0].tolist()
[2.0, 2.0, 2.0]
>>> w[0].tolist()
[3.0, 3.0, 3.0]
"""

from __future__ import annotations

from trials.averaging._base import Averager
from trials.averaging._registry import AVERAGERS, averager_label, build_averager, default_label
from trials.averaging.averager_set import AveragerSet
from trials.averaging.ema import EMA
from trials.averaging.lawa import LAWA
from trials.averaging.poly import Poly
from trials.averaging.swa import SWA
from trials.lineage_spec import AveragerSpec

__all__ = [
    "AVERAGERS",
    "EMA",
    "LAWA",
    "SWA",
    "Averager",
    "AveragerSet",
    "AveragerSpec",
    "Poly",
    "averager_label",
    "build_averager",
    "default_label",
]
