"""Averager kinds by name, and building one from an :class:`AveragerSpec`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from trials.averaging._base import Averager
from trials.averaging.ema import EMA
from trials.averaging.lawa import LAWA
from trials.averaging.poly import Poly
from trials.averaging.swa import SWA
from trials.errors import ConfigError
from trials.lineage_spec import AveragerSpec

__all__ = ["AVERAGERS", "averager_label", "build_averager", "default_label"]

AVERAGERS: dict[str, type[Averager]] = {cls.kind: cls for cls in (EMA, SWA, LAWA, Poly)}


def _make(kind: str, params: Mapping[str, Any]) -> Averager:
    if kind not in AVERAGERS:
        raise ConfigError("averagers.kind", kind, f"one of {sorted(AVERAGERS)}")
    cls = AVERAGERS[kind]
    fields = [f for f in dataclasses.fields(cls) if f.init]
    allowed = {f.name for f in fields}
    for key in params:
        if key not in allowed:
            raise ConfigError(f"averagers.{key}", params[key], f"a parameter of {kind!r}: one of {sorted(allowed)}")
    for f in fields:
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and f.name not in params:
            raise ConfigError(f"averagers.{f.name}", None, f"given for kind {kind!r}")
    return cls(**params)


def build_averager(spec: AveragerSpec) -> Averager:
    """A fresh averager for ``spec``; unknown kinds and bad parameters raise :class:`ConfigError`."""
    return _make(spec.kind, spec.params)


def default_label(kind: str, params: Mapping[str, Any]) -> str:
    """``"ema@0.05"``, ``"ema@200"``, ``"swa@500"`` (``"swa@500/5"`` with ``every=5``),
    ``"lawa@5x10"`` (k=5 snapshots every 10 steps), ``"poly@1"``. Validates like :func:`build_averager`."""
    return _make(kind, params).label()


def averager_label(spec: AveragerSpec) -> str:
    """The label a spec's evaluations carry: ``spec.label`` if set, else :func:`default_label`."""
    return spec.label or default_label(spec.kind, spec.params)
