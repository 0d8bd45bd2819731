"""The Optuna study of a search, kept with the sweep in a journal file Optuna reads.

The study lives at ``<store>/_search/<sweep_id>/study.journal`` (for a remote store, beside
its local checkpoint cache): ``optuna-dashboard <that file>`` opens it, and a rerun of
``lrsweep run`` loads it, so an interrupted search continues with its study. This is what
Ray Tune's ``Tuner.restore`` does not give (ray#30861, ray#8647: the searcher's state is lost
and finished configurations rerun): the driver never restores Tune; it restores the study.

Reproducibility: the sampler is rebuilt for every ask with the seed ``(seed, trial number)``
(:func:`sampler_for`), so what a trial is asked depends only on the sweep's seed, its number
and the study's history, not on how many asks this process made before: an interrupted and
resumed search asks exactly what an uninterrupted one asks.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

import optuna

from orchestrator.search.spec import SAMPLERS
from trials.errors import ConfigError
from trials.identity import canonical_hash

__all__ = ["SEARCH_HASH", "check_studies", "open_studies", "open_study", "sampler_for", "search_hash", "study_name",
           "study_groups", "study_path"]

SEARCH_HASH = "lrsweep.search_hash"  # study user attribute: what the study was created for
optuna.logging.set_verbosity(optuna.logging.WARNING)
logging.getLogger("optuna").setLevel(logging.WARNING)


def study_path(store_root: str, sweep_id: str) -> Path:
    """Where the study's journal lives: ``<store>/_search/<sweep>/study.journal`` for a local
    store; for an object store (Optuna's journal is a local file) the driver's cache
    (``LRSWEEP_CACHE``, default ``~/.cache/lrsweep``), under a folder named by the store URI."""
    import hashlib
    import os

    if "://" not in store_root or store_root.startswith("file://"):
        root = store_root[len("file://"):] if store_root.startswith("file://") else store_root
        return Path(root) / "_search" / sweep_id / "study.journal"
    cache = Path(os.environ.get("LRSWEEP_CACHE", Path.home() / ".cache" / "lrsweep"))
    return cache / "search" / hashlib.sha256(store_root.encode()).hexdigest()[:16] / sweep_id / "study.journal"


def search_hash(sweep: Any) -> str:
    """Identity of what a study answers: the spec minus where it runs, how many trials and
    how many at once (raising ``n_trials`` extends a search; other edits need a new study)."""
    from orchestrator.spec.loading import identity_dump

    dump = identity_dump(sweep)  # runtime choices that change trunk ids count; defaults add nothing
    dump["search"].pop("n_trials")
    dump["search"].pop("concurrency")
    for key in ("per", "warm_start", "warm_start_k"):  # later keys: absent from the hash at their defaults,
        if key not in sweep.search.model_fields_set:  # so studies made before they existed still open
            dump["search"].pop(key, None)
    return canonical_hash(dump)


def _trial_seed(seed: int, number: int) -> int:
    digest = hashlib.sha256(f"lrsweep-search:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def sampler_for(sweep: Any, number: int) -> optuna.samplers.BaseSampler:
    """The sampler that asks trial ``number`` (seeded by the sweep's seed and the number).

    TPE: multivariate with grouped conditional parameters (peak LR and decay exponents are
    correlated); a third of the budget (4 to 10 trials) starts at random instead of Optuna's
    fixed 10; with concurrency > 1 the constant liar keeps one wave's asks apart.
    NSGA-II: a population of a fifth of the budget (4 to 50) instead of 50, which would make a
    small search pure random sampling.
    """
    search = sweep.search
    seed = _trial_seed(search.seed, number)
    n = search.n_trials
    name = search.sampler
    if name == "tpe":
        with warnings.catch_warnings():  # `group` is marked experimental (Optuna 5.0)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              n_startup_trials=max(4, min(10, n // 3)),
                                              constant_liar=search.concurrency > 1)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, n // 5)))
    raise ConfigError("search.sampler", name, f"one of {sorted(SAMPLERS)}")


def _storage(path: Path) -> optuna.storages.BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def study_name(sweep: Any, group: str) -> str:
    """The study's name in the journal: the sweep's, or ``<sweep>/<group>`` for ``[search] per``."""
    return f"{sweep.name}/{group}" if group else sweep.name


def study_groups(sweep: Any) -> list[str]:
    """The groups of ``[search] per`` (``[""]``: one study over every grid point)."""
    from orchestrator.search.space import SearchSpace

    return SearchSpace(sweep).groups()


def _refuse(path: Path) -> ConfigError:
    return ConfigError(
        "search", f"the study in {path}",
        "the study of this [search] section: it was made for another search (only n_trials and concurrency "
        "may change); give the sweep a new name, or delete that file to start the search again",
    )


def check_studies(sweep: Any, store_root: str) -> None:
    """Refuse (one :class:`ConfigError` line) a stored journal made for another search; writes nothing."""
    path = study_path(store_root, sweep.name)
    if not path.exists():
        return
    wanted = search_hash(sweep)
    names = {study_name(sweep, g) for g in study_groups(sweep)}
    for summary in _storage(path).get_all_studies():
        have = summary.user_attrs.get(SEARCH_HASH)
        if summary.study_name not in names or (have is not None and have != wanted):
            raise _refuse(path)


def open_studies(sweep: Any, store_root: str, *, storage: Any = None) -> dict[str, optuna.Study]:
    """Create or load every study of the sweep's search (group -> study, ``""`` for the single
    study); refuse a journal created for another ``[search]`` before creating anything."""
    check_studies(sweep, store_root)
    path = study_path(store_root, sweep.name)
    storage = storage or _storage(path)
    directions = ["minimize"] * (_n_objectives(sweep))
    wanted = search_hash(sweep)
    out = {}
    for group in study_groups(sweep):
        study = optuna.create_study(study_name=study_name(sweep, group), storage=storage, directions=directions,
                                    load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=0))
        have = study.user_attrs.get(SEARCH_HASH)
        if have is None:
            study.set_user_attr(SEARCH_HASH, wanted)
            study.set_user_attr("lrsweep.sweep", sweep.name)
            study.set_user_attr("lrsweep.group", group)
            study.set_user_attr("lrsweep.objective", sweep.search.objective)
            study.set_user_attr("lrsweep.horizons", list(sweep.horizons.values))
            study.set_user_attr("lrsweep.horizon_unit", sweep.horizons.unit)
        elif have != wanted:
            raise _refuse(path)
        out[group] = study
    return out


def open_study(sweep: Any, store_root: str, *, storage: Any = None) -> optuna.Study:
    """The single study of a search without ``per`` (:func:`open_studies` for every study)."""
    studies = open_studies(sweep, store_root, storage=storage)
    if len(studies) != 1:
        raise ValueError(f"sweep {sweep.name!r} searches {len(studies)} studies ([search] per); use open_studies")
    return next(iter(studies.values()))


def _n_objectives(sweep: Any) -> int:
    if sweep.search.objective != "pareto":
        return 1
    from orchestrator.search.space import SearchSpace

    return SearchSpace(sweep).n_horizons


