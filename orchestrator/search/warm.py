"""Warm start: ask a search first for another sweep's best settings, reusing their stored rows.

``[search] warm_start = "pilot"`` (same store) with ``warm_start_k`` (default 4): when a study is
created, the settings ``pilot`` already answered (its grid and its searched trials) are mapped
into this study's space (same grid point; every searched value inside its range), scored with
this search's objective and weights on this search's horizons, and the best ``k`` are enqueued
(``optuna.Study.enqueue_trial``) with the user attribute ``lrsweep.warm_start``. A setting counts
as answered when ``pilot``'s curves hold an evaluation at every (lineage, branch, step) that this
sweep's plan reads for it (lineage ids are content hashes, so the same setting plans the same
lineages in both sweeps).

Before enqueueing, those lineages' curve rows, ``runs`` rows and kept checkpoints are copied
into this sweep, so the warm trials' jobs find them stored and train nothing (their ``runs``
rows carry zero compute: this sweep did not spend it). A warm trial then takes part in the
search like any other (judged at rungs, told to the sampler), on top of the ``n_trials``
budget. Done once per study (study attribute ``lrsweep.warm_started``); copies are keyed
writes, so a crash between copy and enqueue repeats the copy harmlessly.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

__all__ = ["check_warm_start", "warm_start"]

log = logging.getLogger(__name__)
DONE = "lrsweep.warm_started"


def _other_spec(store: Any, sweep_id: str) -> Any:
    """The other sweep's spec as stored (``None``: no such sweep in the store)."""
    import tomllib
    import yaml

    from orchestrator.query import load_sweeps
    from orchestrator.spec import parse_spec

    if not store.check_version() or sweep_id not in store.sweep_ids():
        return None
    sweeps = load_sweeps(store.root)
    row = sweeps[sweeps["sweep_id"] == sweep_id]
    if row.empty:
        return None
    text = str(row.iloc[-1]["spec_text"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = yaml.safe_load(text)
    return parse_spec(data)


def check_warm_start(sweep: Any, store_root: str) -> None:
    """Refuse (one line) a ``warm_start`` naming no sweep of this store, unless already done."""
    from orchestrator.search.study import study_path
    from orchestrator.store import ResultsStore
    from trials.errors import ConfigError

    other = sweep.search.warm_start
    if other is None or study_path(store_root, sweep.name).exists():
        return
    store = ResultsStore(store_root)
    if not store.check_version() or other not in store.sweep_ids():
        have = sorted(store.sweep_ids()) if store.check_version() else []
        raise ConfigError("search.warm_start", other, f"a sweep in the store {store_root} (it has {have})")


def _candidates(other: Any, store_root: str) -> list[Any]:
    """Every setting (:class:`orchestrator.planner.Setting`) the other sweep trained, grid first."""
    from orchestrator.planner import expand_settings

    out = list(expand_settings(other))
    if other.search is not None:
        from orchestrator.search.space import SearchSpace
        from orchestrator.search.study import open_studies

        for group, study in open_studies(other, store_root).items():
            space = SearchSpace(other, group or None)
            for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
                if t.params:
                    try:
                        out += list(space.settings(t.params).settings)
                    except KeyError:
                        continue
    return out


def _params_of(space: Any, setting: Any, other: Any) -> dict[str, Any] | None:
    """The params of ``space`` that give ``setting`` (``None``: it is not in this space)."""
    from orchestrator.search.space import GRID_POINT

    s = setting.trial
    key = json.dumps(space._blank(s), sort_keys=True, default=str)  # noqa: SLF001
    point = next((p for p in space.grid_points
                  if json.dumps(space._blank(p.first), sort_keys=True, default=str) == key), None)  # noqa: SLF001
    if point is None:
        return None
    params: dict[str, Any] = {GRID_POINT: point.label} if len(space.grid_points) > 1 else {}
    for ref in space.refs:
        if not space.applies(ref, point):
            continue
        if ref.target == "lr":
            value: Any = s.peak_lr
        elif ref.target == "optimizer":
            value = s.optimizer_params.get(str(ref.param))
        elif ref.target == "schedule":
            value = s.schedule_params.get(str(ref.param))
        elif ref.target in ("warmup", "batch_size"):
            value = getattr(s, ref.target)
        else:  # a searched averager: the other sweep's single value of that parameter
            entries = [a for a in other.averagers if a.kind == ref.name]
            values = getattr(entries[0], str(ref.param), None) if len(entries) == 1 else None
            value = values[0] if values is not None and len(values) == 1 else None
        r = space.ranges[ref.key]
        if value is None or isinstance(value, bool) or not r.low <= float(value) <= r.high:
            return None
        params[ref.key] = int(value) if r.integer else float(value)
    return params


def best_settings(sweep: Any, space: Any, store_root: str) -> list[tuple[dict[str, Any], list[str], float]]:
    """The other sweep's best ``warm_start_k`` settings in ``space``: (params, lineage ids, objective)."""
    from orchestrator.search import rungs
    from orchestrator.search.job import answer_losses
    from orchestrator.store import ResultsStore
    from trials.lineage_plan import plan_lineages

    store = ResultsStore(store_root)
    other_id = sweep.search.warm_start
    other = _other_spec(store, other_id)
    if other is None:
        return []
    scored: list[tuple[dict[str, Any], list[str], list[float]]] = []
    seen: set[str] = set()
    for setting in _candidates(other, store_root):
        params = _params_of(space, setting, other)
        if params is None or json.dumps(params, sort_keys=True) in seen:
            continue
        seen.add(json.dumps(params, sort_keys=True))
        ts = space.settings(params)
        lineages, answers = plan_lineages(ts.up_to(space.n_horizons - 1), ts.config)
        index = {s.trial.setting_id: i for i, s in enumerate(ts.settings)}
        rows = [{"setting": index[a.setting.setting_id], "lineage_id": a.lineage_id, "branch": a.branch,
                 "horizons": list(a.horizons), "index": [ts.horizons[index[a.setting.setting_id]].index(h) for h in a.horizons]}
                for a in answers]
        weights = [_weights(sweep, space, params) for _ in ts.settings]
        losses = answer_losses(store, other_id, rows, len(ts.settings), space.n_horizons, weights)
        if any(v is None for per_seed in losses for v in per_seed):
            continue  # not answered at every horizon this search reads
        scored.append((params, [lin.lineage_id for lin in lineages], rungs.loss_vector(losses)))
    if not scored:
        return []
    envelope = [min(v[k] for _, _, v in scored) for k in range(space.n_horizons)]
    ranked = sorted(((p, ids, rungs.objective_values(sweep.search.objective, v, envelope)) for p, ids, v in scored),
                    key=lambda x: [y if math.isfinite(y) else math.inf for y in x[2]])
    return [(p, ids, v[0]) for p, ids, v in ranked[: sweep.search.warm_start_k]]


def _weights(sweep: Any, space: Any, params: dict[str, Any]) -> str:
    w = sweep.search.weights
    if w in {r.name for r in space.refs if r.target == "averager"}:
        return space.searched_averager_label(params, w) or "raw"
    return w


def copy_lineages(store: Any, source: str, target: str, lineage_ids: list[str]) -> None:
    """Copy curve rows, ``runs`` rows (compute zeroed) and checkpoints of lineages between sweeps."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from orchestrator.stored import checkpoint_folder

    only = ds.field("lineage_id").isin(sorted(lineage_ids))
    curves = store.read_table("curves", source, filter=only).to_pylist()
    by_branch: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in curves:
        row.pop("sweep_id", None)
        row.pop("_fragment", None)
        by_branch.setdefault((row["lineage_id"], row["branch"]), []).append(row)
    for (lid, branch), rows in sorted(by_branch.items()):
        end = max(int(r["step"]) for r in rows)
        store.write_curves(target, lid, branch, f"{0:010d}-{end:010d}", rows)
    runs = store.read_table("runs", source, filter=only).to_pylist()
    zero = {"wall_time_s": 0.0, "steps_trained": 0, "tokens_trained": 0, "flops_trained": 0.0, "replayed_steps": 0}
    rows = [{**{k: v for k, v in r.items() if k not in ("sweep_id", "_fragment")}, **zero} for r in runs]
    if rows:
        store.write_runs(target, rows)
    for lid in lineage_ids:
        src = checkpoint_folder(store, source, lid)
        if store.fs.get_file_info(src).type == pafs.FileType.Directory:
            pafs.copy_files(src, checkpoint_folder(store, target, lid), source_filesystem=store.fs,
                            destination_filesystem=store.fs)


def warm_start(sweep: Any, studies: dict[str, Any], store_root: str) -> int:
    """Enqueue each study's warm starts once (module docstring); returns how many were enqueued."""
    from orchestrator.search.searcher import WARM
    from orchestrator.search.space import SearchSpace
    from orchestrator.store import ResultsStore

    if sweep.search.warm_start is None:
        return 0
    store = ResultsStore(store_root)
    n = 0
    for group, study in studies.items():
        if study.user_attrs.get(DONE):
            continue
        space = SearchSpace(sweep, group or None)
        picks = best_settings(sweep, space, store_root)
        copy_lineages(store, sweep.search.warm_start, sweep.name, sorted({lid for _, ids, _ in picks for lid in ids}))
        queued = {json.dumps(t.user_attrs[WARM]["params"], sort_keys=True)
                  for t in study.get_trials(deepcopy=False) if WARM in t.user_attrs}
        for params, _, value in picks:
            if json.dumps(params, sort_keys=True) not in queued:
                info = {"sweep": sweep.search.warm_start, "objective": value, "params": params}
                study.enqueue_trial(params, user_attrs={WARM: info})
                n += 1
        study.set_user_attr(DONE, True)
        log.info("search %s: warm start from %s: %d settings", study.study_name, sweep.search.warm_start, len(picks))
    return n
