"""The search driver: an Optuna ask/tell loop that is Ray Tune's searcher.

Why not ``ray.tune.search.optuna.OptunaSearch``: it maps one Tune trial to one Optuna trial
and keeps that mapping in Tune's experiment state, which ``Tuner.restore`` loses (ray#30861,
ray#8647: finished configurations rerun); it prunes through Tune's schedulers on intermediate
results, which cannot tell a horizon-free curve from a cosine one mid-schedule; and Optuna
cannot prune multi-objective studies (optuna#3450). Here one Optuna trial is a *setting* and
each of its rungs is one Tune trial (a job, :mod:`orchestrator.search.job`); the study in the
store is the state, so a rerun continues it with no Tune restore at all.

Trials run in *waves* of ``concurrency``: a wave's trials are asked together, each rung's jobs
run in parallel (with ``stopping = "none"`` one job takes a trial to its last horizon), and the wave waits at every rung until all its jobs reported
(:func:`orchestrator.search.rungs.keep_at_rung` judges them against every value recorded at
that rung), then the next wave is asked. Decisions thus never depend on which job finished
first: a seeded search asks, stops and tells the same things on any machine, interrupted or
not (the sampler is seeded per trial number, :func:`orchestrator.search.study.sampler_for`).
The price is idle slots while a wave's survivors finish.

State kept per trial (user attributes, readable in ``optuna-dashboard``): ``lrsweep.wave``,
``lrsweep.losses`` (loss per horizon so far, mean over seeds), ``lrsweep.rungs`` (rung values),
``lrsweep.stopped_at`` (horizon index), ``lrsweep.tokens``/``lrsweep.steps`` (what its jobs
trained), ``lrsweep.setting_ids``. On a rerun, RUNNING trials are resumed with their params
(their lineages continue from the store and checkpoints); finished ones are never rerun.
WAITING trials are warm starts enqueued before the first ask (:mod:`orchestrator.search.warm`,
attribute ``lrsweep.warm_start``): asked first, in addition to the ``n_trials`` budget.

Live progress: after every ask, job start, job report and decision the searcher sends a
:class:`~orchestrator.search.progress.StudyCounts` to its display (kept out of pickling: Tune
pickles its search algorithm with the tuner's state).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from orchestrator.search import rungs
from orchestrator.search.progress import study_counts
from orchestrator.search.space import SearchSpace, TrialSettings
from orchestrator.search.study import sampler_for
from trials.lineage_plan import plan_lineages

__all__ = ["StudySearcher"]

log = logging.getLogger(__name__)

WAVE, LOSSES, RUNGS, STOPPED_AT, TOKENS, STEPS, SETTING_IDS = (
    "lrsweep.wave", "lrsweep.losses", "lrsweep.rungs", "lrsweep.stopped_at", "lrsweep.tokens", "lrsweep.steps",
    "lrsweep.setting_ids")
INTERRUPTED = "lrsweep.interrupted"
WARM = "lrsweep.warm_start"  # an enqueued trial: {"sweep", "setting_id"} it was taken from


@dataclass
class _Active:
    number: int
    trial_id: int
    params: dict[str, Any]
    ts: TrialSettings
    wave: int
    losses: list[list[float | None]] = field(default_factory=list)  # per seed, per horizon reached
    rung: int = -1  # last rung judged
    running: bool = False
    done: bool = False
    tokens: int = 0
    steps: int = 0
    reported: list[list[float | None]] | None = None  # the losses of the rung job that just reported


class StudySearcher(Searcher):
    """Ray Tune searcher driving an Optuna study in waves (module docstring).

    Args:
        sweep: the validated sweep (with ``search``).
        study: the opened study (:func:`orchestrator.search.study.open_study`).
        storage: its storage (samplers are rebuilt per ask on it).
        job_base: what every job config carries (store, sweep id, checkpoint root, threads).
        on_stop: called as ``on_stop(active, lineages, horizon_index)`` when a trial stops, to
            mark its runs in the store.
        on_failed: called with the trial whose job failed every retry.
        on_wave: called after a wave was asked (the settings table is rewritten then).
    """

    def __init__(self, *, sweep: Any, study: optuna.Study, storage: Any, job_base: dict[str, Any],
                 on_stop: Any = None, on_failed: Any = None, on_wave: Any = None, space: SearchSpace | None = None,
                 label: str = "", progress: Any = None) -> None:
        super().__init__(metric=None, mode=None)
        self.sweep, self.study, self.storage = sweep, study, storage
        self.search = sweep.search
        self.space = space or SearchSpace(sweep)
        self.label, self.progress = label, progress
        self.full_tokens = 0  # one trial's full plan, for the display's first ETA
        # warm starts are asked on top of the budget (their rows are reused, not trained)
        self.budget = self.search.n_trials + sum(1 for t in self._trials() if WARM in t.user_attrs)
        self.n_h = self.space.n_horizons
        self.job_base = job_base
        self.on_stop, self.on_failed, self.on_wave = on_stop, on_failed, on_wave
        self.active: dict[int, _Active] = {}
        self.jobs: dict[str, tuple[int, int, set[str]]] = {}  # tune trial id -> (number, rung, lineage ids)
        self.wave = 0
        self.trained_tokens = 0
        self.trained_steps = 0
        self.jobs_run = 0
        self._resume()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["progress"] = None  # a live display holds a console and a thread
        return state

    # -- study bookkeeping -----------------------------------------------------------------
    def _trials(self, states: tuple[TrialState, ...] | None = None) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)

    def _counted(self) -> int:
        """Trials that use the budget: all but those an interruption cut before their params."""
        return sum(1 for t in self._trials() if not t.user_attrs.get(INTERRUPTED))

    def _set(self, a: _Active, key: str, value: Any) -> None:
        self.storage.set_trial_user_attr(a.trial_id, key, value)

    def _activate(self, frozen: optuna.trial.FrozenTrial, wave: int) -> _Active:
        ts = self.space.settings(frozen.params)
        a = _Active(number=frozen.number, trial_id=frozen._trial_id, params=dict(frozen.params), ts=ts, wave=wave)  # noqa: SLF001
        done = frozen.user_attrs.get(RUNGS, {})
        a.rung = max((int(r) for r in done), default=-1)
        a.tokens = int(frozen.user_attrs.get(TOKENS, 0))
        a.steps = int(frozen.user_attrs.get(STEPS, 0))
        self.active[a.number] = a
        if not self.full_tokens:
            full, _ = plan_lineages(ts.up_to(self.n_h - 1), ts.config)
            self.full_tokens = sum(lin.planned_steps for lin in full) * ts.settings[0].tokens_per_step
        return a

    def _resume(self) -> None:
        """Pick up the RUNNING trials of an interrupted run (resumed, params kept)."""
        running = self._trials((TrialState.RUNNING,))  # WAITING: warm starts not asked yet
        waves = [int(t.user_attrs.get(WAVE, -1)) for t in self._trials()]
        self.wave = max(waves, default=-1)
        for t in running:
            if WAVE not in t.user_attrs or not self._params_complete(t.params):
                # cut between ask() and its last suggestion: nothing ran; the budget gets it back
                self.storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)  # noqa: SLF001
                self.study.tell(t.number, state=TrialState.FAIL)
                continue
            a = self._activate(t, int(t.user_attrs[WAVE]))
            if a.rung >= 0:  # judged at a rung, then cut before the decision was told: decide again
                losses = [float(v) if v is not None else math.inf for v in t.user_attrs.get(LOSSES, [])]
                value = rungs.rung_value(self.search.objective, losses[: a.rung + 1], self._envelope()[: a.rung + 1])
                self._decide(a, a.rung, value, losses, self._pool(a.rung))
        if self.wave >= 0:  # a wave the kill cut while it was being asked gets its other members
            self._fill_wave(self.wave)

    def _params_complete(self, params: dict[str, Any]) -> bool:
        try:
            point = self.space.grid_point(params.get("grid_point"))
        except KeyError:
            return False
        return all(ref.key in params for ref in self.space.refs if self.space.applies(ref, point))

    def _wave_size(self, wave: int) -> int:
        before = sum(1 for t in self._trials() if not t.user_attrs.get(INTERRUPTED) and WAVE in t.user_attrs
                     and int(t.user_attrs[WAVE]) < wave)
        return max(0, min(self.search.concurrency, self.budget - before))

    def _fill_wave(self, wave: int) -> None:
        """Ask trials into ``wave`` until it has its size (all at once, before any job runs)."""
        members = sum(1 for t in self._trials() if int(t.user_attrs.get(WAVE, -1)) == wave and not t.user_attrs.get(INTERRUPTED))
        for _ in range(self._wave_size(wave) - members):
            waiting = [t.number for t in self._trials((TrialState.WAITING,))]
            number = min(waiting) if waiting else len(self._trials())  # ask() takes a warm start first
            study = optuna.load_study(study_name=self.study.study_name, storage=self.storage,
                                      sampler=sampler_for(self.sweep, number))
            trial = study.ask()
            self.storage.set_trial_user_attr(trial._trial_id, WAVE, wave)  # noqa: SLF001
            self.space.suggest(trial)
            frozen = self.storage.get_trial(trial._trial_id)  # noqa: SLF001
            a = self._activate(frozen, wave)
            self._set(a, SETTING_IDS, sorted({s.trial.setting_id for s in a.ts.settings}))
        if self.on_wave is not None:
            self.on_wave()
        self._report()

    def finished(self) -> bool:
        """Nothing left: no trial in flight and the budget used."""
        return not any(not a.done for a in self.active.values()) and self._counted() >= self.budget

    # -- Tune's side -----------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study in the store is the state (module docstring)."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: a rerun reopens the study."""

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self.active or all(a.done for a in self.active.values()):
            self.active = {n: a for n, a in self.active.items() if not a.done}
            if self._counted() >= self.budget and not self.active:
                return Searcher.FINISHED
            if not self.active:
                self.wave += 1
                self._fill_wave(self.wave)
                if not self.active:
                    return Searcher.FINISHED
        busy = set().union(*(ids for _, _, ids in self.jobs.values())) if self.jobs else set()
        for a in sorted(self.active.values(), key=lambda x: x.number):
            if a.done or a.running or a.reported is not None or not self._at_barrier(a):
                continue
            config, ids = self._job(a)
            if ids & busy:  # another trial's job writes one of these lineages now: wait for it
                continue
            a.running = True
            self.jobs[trial_id] = (a.number, config["rung"], ids)
            self._report()
            return config
        return None

    def _at_barrier(self, a: _Active) -> bool:
        """A trial's next rung may start once no wave member is still behind it."""
        return all(b.done or b.rung >= a.rung for b in self.active.values())

    def _next_rung(self, a: _Active) -> int:
        """The rung the next job reaches: the next one, or the last when nothing is stopped."""
        return a.rung + 1 if self.search.stopping == "halving" else self.n_h - 1

    def _job(self, a: _Active) -> tuple[dict[str, Any], set[str]]:
        rung = self._next_rung(a)
        lineages, answers = plan_lineages(a.ts.up_to(rung), a.ts.config)
        previous = {}
        if a.rung >= 0:
            before, _ = plan_lineages(a.ts.up_to(a.rung), a.ts.config)
            previous = {lin.lineage_id: lin for lin in before}
        todo = [lin for lin in lineages if previous.get(lin.lineage_id) != lin]
        index = {s.trial.setting_id: i for i, s in enumerate(a.ts.settings)}
        sizes = {lin.lineage_id: a.ts.settings[0].size.label for lin in lineages}
        for ans in answers:
            sizes[ans.lineage_id] = a.ts.settings[index[ans.setting.setting_id]].size.label
        rows = []
        for ans in answers:
            i = index[ans.setting.setting_id]
            steps = a.ts.horizons[i]
            rows.append({"setting": i, "lineage_id": ans.lineage_id, "branch": ans.branch,
                         "horizons": list(ans.horizons), "index": [steps.index(h) for h in ans.horizons]})
        weights = [self._weights(a) for _ in a.ts.settings]
        config = {**self.job_base, "trial": a.number, "rung": rung, "lineages": [lin.to_dict() for lin in todo],
                  "answers": rows, "n_settings": len(a.ts.settings), "weights": weights,
                  "model_size": {lin.lineage_id: sizes[lin.lineage_id] for lin in lineages}}
        return config, {lin.lineage_id for lin in todo}

    def _weights(self, a: _Active) -> str:
        w = self.search.weights
        if w in {r.name for r in self.space.refs if r.target == "averager"}:
            return self.space.searched_averager_label(a.params, w) or "raw"
        return w

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """A job's progress report: its steps so far, shown as tokens."""
        job = self.jobs.get(trial_id)
        if job is None or self.progress is None or "steps_done" not in result:
            return
        a = self.active[job[0]]
        self.progress.job_tokens(self.label, a.number, int(result["steps_done"]) * a.ts.settings[0].tokens_per_step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        number, rung, _ = self.jobs.pop(trial_id)
        a = self.active[number]
        a.running = False
        self.jobs_run += 1
        if error or not result or "losses" not in result:
            if self.progress is not None:
                self.progress.job_tokens(self.label, a.number, 0, finished=True)
            self._fail(a, f"job for rung {rung} failed")
            self._judge_if_ready()
            self._report()
            return
        steps, tokens = int(result.get("steps_trained", 0)), int(result.get("tokens_trained", 0))
        a.steps += steps
        a.tokens += tokens
        self.trained_steps += steps
        self.trained_tokens += tokens
        a.reported = json.loads(result["losses"])
        self._set(a, TOKENS, a.tokens)
        self._set(a, STEPS, a.steps)
        if self.progress is not None:
            self.progress.job_tokens(self.label, a.number, tokens, finished=True)
        self._judge_if_ready()
        self._report()

    # -- the live display ------------------------------------------------------------------
    def _report(self) -> None:
        if self.progress is not None:
            self.progress.study(self.label, study_counts(self))

    # -- judging ---------------------------------------------------------------------------
    def _judge_if_ready(self) -> None:
        """Judge the wave's lowest rung once every member at it has reported and none runs."""
        waiting = [a for a in self.active.values() if not a.done]
        if not waiting or any(a.running for a in waiting):
            return
        lowest = min(a.rung for a in waiting)
        now = [a for a in waiting if a.rung == lowest]
        if any(a.reported is None for a in now):
            return
        rung = self._next_rung(now[0])
        for a in now:
            a.losses, a.reported, a.rung = a.reported or [], None, rung
            self._set(a, LOSSES, rungs.loss_vector(a.losses))
        envelope = self._envelope()
        values = {a.number: rungs.rung_value(self.search.objective, rungs.loss_vector(a.losses)[: rung + 1],
                                             envelope[: rung + 1]) for a in now}
        for a in now:
            recorded = dict(self.storage.get_trial(a.trial_id).user_attrs.get(RUNGS, {}))
            recorded[str(rung)] = values[a.number]
            self._set(a, RUNGS, recorded)
            if self.search.objective != "pareto":
                optuna.trial.Trial(self.study, a.trial_id).report(values[a.number][0], step=rung)
        pool = self._pool(rung)
        for a in sorted(now, key=lambda x: x.number):
            self._decide(a, rung, values[a.number], rungs.loss_vector(a.losses), pool)

    def _decide(self, a: _Active, rung: int, value: list[float], losses: list[float], pool: list[list[float]]) -> None:
        """At the last horizon, or diverged: tell the objective. Otherwise halving may stop it."""
        if rung == self.n_h - 1 or not all(math.isfinite(v) for v in losses[: rung + 1]):
            self._complete(a, losses)
        elif self.search.stopping == "halving" and not self._keep(value, pool):
            self._stop(a, rung)

    def _keep(self, value: list[float], pool: list[list[float]]) -> bool:
        if self.search.objective == "pareto":
            return rungs.keep_pareto(value, pool, self.search.eta)
        return rungs.keep_at_rung(value[0], [p[0] for p in pool], self.search.eta)

    def _pool(self, rung: int) -> list[list[float]]:
        """Every value recorded at ``rung``. Regret is scored again against today's envelope
        (a value recorded earlier was against a smaller set: the first trial's is always 0)."""
        out = []
        envelope = self._envelope()[: rung + 1] if self.search.objective == "regret" else None
        for t in self._trials():
            v = t.user_attrs.get(RUNGS, {}).get(str(rung))
            if v is None or t.state == TrialState.FAIL:
                continue
            if envelope is not None:
                losses = [float(x) if x is not None else math.inf for x in t.user_attrs.get(LOSSES, [])][: rung + 1]
                v = [rungs.relative_regret(losses, envelope)]
            out.append([float(x) for x in v])
        return out

    def _envelope(self) -> list[float]:
        """Per horizon, the lowest loss any trial has reached there (what the search has seen)."""
        env = [math.inf] * self.n_h
        for t in self._trials():
            if t.state == TrialState.FAIL:
                continue
            for k, v in enumerate(t.user_attrs.get(LOSSES, [])):
                if v is not None and math.isfinite(v):
                    env[k] = min(env[k], v)
        return env

    def _complete(self, a: _Active, losses: list[float]) -> None:
        """Tell the study the objective; a trial that diverged is +inf where it never arrived."""
        losses = list(losses) + [math.inf] * (self.n_h - len(losses))
        values = rungs.objective_values(self.search.objective, losses, self._envelope())
        self.study.tell(a.number, values if len(values) > 1 else values[0])
        a.done = True

    def _stop(self, a: _Active, rung: int) -> None:
        self._set(a, STOPPED_AT, rung)
        if self.on_stop is not None:
            full, _ = plan_lineages(a.ts.up_to(self.n_h - 1), a.ts.config)
            self.on_stop(a, full, rung)
        self.study.tell(a.number, state=TrialState.PRUNED)
        a.done = True

    def _fail(self, a: _Active, why: str) -> None:
        self.storage.set_trial_user_attr(a.trial_id, "lrsweep.error", why)
        if self.on_failed is not None:
            self.on_failed(a)
        self.study.tell(a.number, state=TrialState.FAIL)
        a.done = True
