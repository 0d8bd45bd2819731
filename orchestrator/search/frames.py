"""The report's view of a search: plain pandas frames from the study and the store.

:func:`search_frames` is the hook between the store and :mod:`analysis.figures.search` (which
imports neither optuna nor ray): it reads the study, computes parameter importances (Optuna's
PED-ANOVA) and the grid's answers to the same objective, and returns

- ``trials``: one row per searched trial: ``number``, ``state`` (complete, pruned, fail,
  running), ``wave``, ``objective`` (``regret``: recomputed against the envelope of everything
  the search saw, not the envelope when it was told), ``rung`` (last horizon index judged),
  ``stopped_at``, ``tokens``, ``cum_tokens`` (in trial order), ``best_so_far``, ``on_front``
  (``pareto``), ``loss@<h>`` per horizon and ``param:<key>`` per searched parameter;
- ``importances``: ``target``, ``param``, ``importance``;
- ``grid``: the grid's settings scored the same way (``setting_id``, ``label``, ``objective``,
  ``loss@<h>``), so figures can draw the search beside the grid;
- ``meta``: one row (objective, horizons, unit, sampler, stopping, n_trials).
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import pandas as pd

from orchestrator.search import rungs

__all__ = ["best_trial", "search_frames"]

log = logging.getLogger(__name__)


def _spec_of(store_root: str, sweep_id: str) -> Any:
    import tomllib
    import yaml

    from orchestrator.query import load_sweeps
    from orchestrator.spec import SpecError, parse_spec

    sweeps = load_sweeps(store_root)
    row = sweeps[sweeps["sweep_id"] == sweep_id]
    if row.empty:
        return None
    text = str(row.iloc[-1]["spec_text"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = yaml.safe_load(text)
    if not isinstance(data, dict) or "search" not in data:
        return None
    try:
        return parse_spec(data)
    except SpecError as err:  # written by another lrsweep version: the grid's report still stands
        log.warning("sweep %s: its stored spec no longer parses, so its search is left out of the report: %s",
                    sweep_id, err)
        return None


def _losses(t: Any) -> list[float]:
    return [float(v) if v is not None else math.inf for v in t.user_attrs.get("lrsweep.losses", [])]


def best_trial(study: Any, objective: str) -> tuple[Any, float] | None:
    """The best complete trial (single objective) and its objective; ``regret`` is recomputed
    against the final envelope of every loss the search saw."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete or len(study.directions) > 1:
        return None
    if objective != "regret":
        best = min(complete, key=lambda t: (t.value, t.number))
        return best, float(best.value)
    env = _envelope(study.get_trials(deepcopy=False))
    scored = [(rungs.relative_regret(_losses(t), env[: len(_losses(t))]), t.number, t) for t in complete]
    value, _, best = min(scored, key=lambda x: (x[0], x[1]))
    return best, value


def _envelope(trials: list[Any]) -> list[float]:
    n = max((len(_losses(t)) for t in trials), default=0)
    env = [math.inf] * n
    for t in trials:
        if t.state.name == "FAIL":
            continue
        for k, v in enumerate(_losses(t)):
            if math.isfinite(v):
                env[k] = min(env[k], v)
    return env


def search_frames(store_root: str, sweep_id: str) -> dict[str, pd.DataFrame] | None:
    """The frames of the module docstring, or ``None`` when the sweep has no search. With
    ``[search] per`` every study's trials are listed, with its group in ``study`` (``""`` for a
    single study); ``best_so_far`` runs per study, ``regret`` against the envelope of all of them."""
    from orchestrator.search.study import open_studies, study_path

    if not study_path(store_root, sweep_id).exists():
        return None
    spec = _spec_of(store_root, sweep_id)
    if spec is None or spec.search is None:
        return None
    studies = open_studies(spec, store_root)
    search = spec.search
    from orchestrator.search.space import SearchSpace

    space = SearchSpace(spec)
    horizons = sorted(spec.horizons.values)[: space.n_horizons]
    mine = {g: [t for t in study.get_trials(deepcopy=False) if t.params and not t.user_attrs.get("lrsweep.interrupted")]
            for g, study in studies.items()}
    env = _envelope([t for trials in mine.values() for t in trials])
    rows, cum = [], 0
    for group, study in studies.items():
        trials, best = mine[group], math.inf
        front = {t.number for t in study.best_trials} if len(study.directions) > 1 and any(
            t.state.name == "COMPLETE" for t in trials) else set()
        for t in sorted(trials, key=lambda t: t.number):
            losses = _losses(t)
            if t.state.name == "COMPLETE" and len(study.directions) == 1:
                value = rungs.relative_regret(losses, env[: len(losses)]) if search.objective == "regret" else float(t.value)
                best = min(best, value)
            else:
                value = float(t.value) if t.values and len(t.values) == 1 and t.value is not None else math.nan
            cum += int(t.user_attrs.get("lrsweep.tokens", 0))
            row = {"study": group, "number": t.number, "state": t.state.name.lower(), "wave": t.user_attrs.get("lrsweep.wave"),
                   "objective": value, "rung": max((int(r) for r in t.user_attrs.get("lrsweep.rungs", {})), default=-1),
                   "stopped_at": t.user_attrs.get("lrsweep.stopped_at"), "tokens": int(t.user_attrs.get("lrsweep.tokens", 0)),
                   "cum_tokens": cum, "best_so_far": best, "on_front": t.number in front}
            row.update({f"loss@{h:g}": (losses[k] if k < len(losses) else math.nan) for k, h in enumerate(horizons)})
            row.update({f"param:{k}": v for k, v in t.params.items()})
            rows.append(row)
    meta = pd.DataFrame([{"objective": search.objective, "horizons": horizons, "unit": spec.horizons.unit,
                          "sampler": search.sampler, "stopping": search.stopping, "n_trials": search.n_trials,
                          "weights": search.weights, "per": search.per}])
    parts = [_importances(study).assign(study=group) for group, study in studies.items()]
    importances = parts[0] if len(parts) == 1 else pd.concat([p for p in parts if not p.empty] or parts[:1],
                                                             ignore_index=True)
    return {"trials": pd.DataFrame(rows), "importances": importances, "grid": _grid(store_root, spec, horizons, env),
            "meta": meta}


def _importances(study: Any) -> pd.DataFrame:
    """PED-ANOVA importances (Optuna's default evaluator: deterministic, no scikit-learn) per objective over the complete trials with finite values
    (a divergence has no finite value to attribute); empty when fewer than three."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    cols = ["target", "param", "importance"]
    finite = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE
              and all(math.isfinite(v) for v in t.values)]
    if len(finite) < 3:
        return pd.DataFrame(columns=cols)
    scratch = optuna.create_study(directions=study.directions)
    scratch.add_trials(finite)
    rows = []
    n_obj = len(study.directions)
    for k in range(n_obj):
        try:
            with warnings.catch_warnings():  # "some regimes have < 2 trials": a small search, said in the caption
                warnings.simplefilter("ignore", UserWarning)
                imp = get_param_importances(scratch, evaluator=PedAnovaImportanceEvaluator(),
                                            target=(lambda t, k=k: t.values[k]) if n_obj > 1 else None)
        except (RuntimeError, ValueError):  # e.g. no parameter varies
            continue
        name = f"objective {k}" if n_obj > 1 else "objective"
        rows += [{"target": name, "param": p, "importance": float(v)} for p, v in imp.items()]
    return pd.DataFrame(rows, columns=cols)


def _grid(store_root: str, spec: Any, horizons: list[float], env: list[float]) -> pd.DataFrame:
    """The grid's settings scored by the search's objective (their losses as the search reads them)."""
    from orchestrator.planner import expand_settings
    from orchestrator.query import final_losses

    cols = ["setting_id", "label", "objective", *[f"loss@{h:g}" for h in horizons]]
    settings = {s.trial.setting_id: s for s in expand_settings(spec)}
    try:
        fl = final_losses(store_root, spec.name)
    except Exception:  # noqa: BLE001 - an empty store has no grid answers yet
        return pd.DataFrame(columns=cols)
    fl = fl[fl["setting_id"].isin(list(settings)) & fl["loss"].notna()]
    weights = spec.search.weights
    if weights != "best":
        fl = fl[fl["weights"] == weights]
    vectors: dict[str, list[list[float]]] = {}
    for sid, group in fl.groupby("setting_id", observed=True):
        per_h = group.groupby("horizon")["loss"].min()
        steps = sorted(per_h.index)[: len(horizons)]
        s = settings[str(sid)].trial
        label = f"{s.schedule or s.optimizer} lr={s.peak_lr:g}" + "".join(
            f" {k}={v:g}" for k, v in sorted(s.schedule_params.items()) if isinstance(v, float))
        vectors.setdefault(label, []).append([float(per_h[h]) for h in steps] + [math.inf] * (len(horizons) - len(steps)))
    rows = []
    for label, per_seed in vectors.items():  # seeds averaged, as the search averages them
        losses = rungs.loss_vector(per_seed)
        value = rungs.objective_values(spec.search.objective, losses, [min(a, b) for a, b in zip(env, losses, strict=False)])
        rows.append({"setting_id": label, "label": label, "objective": value[0] if len(value) == 1 else math.nan,
                     **{f"loss@{h:g}": v for h, v in zip(horizons, losses, strict=True)}})
    return pd.DataFrame(rows, columns=cols)
