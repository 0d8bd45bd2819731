"""Objectives over horizons and the successive-halving rule, against hand-computed answers."""

from __future__ import annotations

import math

import pytest

from orchestrator.search import rungs

INF = math.inf


def test_loss_vector_means_seeds_and_a_missing_seed_is_infinite() -> None:
    per_seed = [[1.0, 0.5, 0.2], [3.0, 0.7, None]]
    assert rungs.loss_vector(per_seed) == [2.0, 0.6, INF]


def test_rung_values_per_objective() -> None:
    losses = [2.0, 1.0, 0.5]
    env = [1.0, 0.8, 0.5]
    assert rungs.rung_value("final", losses) == [0.5]
    assert rungs.rung_value("final", losses[:2]) == [1.0]  # the proxy at rung 1: the loss there
    assert rungs.rung_value("mean", losses) == [pytest.approx(3.5 / 3)]
    # relative regret: 2/1 - 1 = 1.0, 1/0.8 - 1 = 0.25, 0.5/0.5 - 1 = 0
    assert rungs.rung_value("regret", losses, env) == [pytest.approx(1.0)]
    assert rungs.rung_value("regret", losses[1:], env[1:]) == [pytest.approx(0.25)]
    assert rungs.rung_value("pareto", losses) == losses
    assert rungs.rung_value("mean", [1.0, INF]) == [INF]
    assert rungs.rung_value("regret", [1.0, INF], [1.0, 1.0]) == [INF]


def test_regret_skips_horizons_nobody_reached() -> None:
    assert rungs.relative_regret([1.2, 3.0], [1.0, INF]) == pytest.approx(0.2)


@pytest.mark.parametrize(("value", "pool", "eta", "keep"), [
    (5.0, [5.0], 3, True),  # the first value at a rung continues
    (6.0, [5.0, 6.0], 3, False),  # n // eta = 0: only the best continues (Optuna's rule)
    (4.0, [5.0, 4.0], 3, True),
    (3.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, False),  # keep the best 6 // 3 = 2: 1 and 2
    (2.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, True),
    (3.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, True),  # eta 2: the best 3
    (2.0, [2.0, 2.0, 9.0], 3, True),  # ties continue
    (INF, [1.0, INF, 2.0, 3.0], 2, False),
])
def test_successive_halving_rule(value: float, pool: list[float], eta: int, keep: bool) -> None:
    assert rungs.keep_at_rung(value, pool, eta) is keep


def test_nondominated_ranks_by_hand() -> None:
    pts = [[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [6, 6]]
    # front 0: (1,5), (2,2), (5,1); (3,3) is dominated by (2,2) only -> front 1; (4,4) -> 2; (6,6) -> 3
    assert rungs.nondominated_ranks(pts) == [0, 0, 0, 1, 2, 3]


def test_pareto_halving_keeps_whole_fronts() -> None:
    pool = [[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [6, 6]]
    # n // eta = 2: the 2nd best rank is front 0, so all of front 0 continue, nothing else
    assert [rungs.keep_pareto(p, pool, 3) for p in pool] == [True, True, True, False, False, False]
    # eta 1.5 is not allowed; eta 2 keeps 3: still front 0 only
    assert [rungs.keep_pareto(p, pool, 2) for p in pool] == [True, True, True, False, False, False]
    # the 4th best is in front 1 when 4 are kept (a pool of 8, eta 2)
    bigger = pool + [[7, 7], [8, 8]]
    assert [rungs.keep_pareto(p, bigger, 2) for p in bigger] == [True, True, True, True, False, False, False, False]
