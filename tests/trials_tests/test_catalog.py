"""The catalogs match the implementations they describe, exactly.

Replaces the old "mirror" tests of the spec: per component kind, the catalog names the same
entries as the trial-side registry, the same hyperparameters with the same defaults, the same
choices; and its ranges are safe: every probe value a card accepts, the implementation accepts
(so a spec that loads never fails first inside a trial), and every probe the implementation
rejects, the card rejects too (strings, NaN, infinities, booleans, out-of-range numbers).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from trials import catalog
from trials.averaging import AVERAGERS, default_label
from trials.catalog import REQUIRED, Param
from trials.errors import ConfigError
from trials.optimizers import LR_CONVENTIONS, OPTIMIZERS, build_optimizer
from trials.optimizers._factories import NS_DTYPES
from trials.optimizers.registry import hyperparameters
from trials.optimizers.schedule_free_normuon import DECAY_AT, DECAY_LR
from trials.schedules import COOLDOWN_SHAPES, SCHEDULES, build_schedule
from trials.workloads import WORKLOADS, CharGPTConfig, LinRegConfig
from trials.workloads.gpt import GPT, GPT_SIZES, GPTConfig

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_catalogs_loads_neither_torch_nor_ray() -> None:
    code = ("import sys, json, trials.catalog, trials.catalog.tables\n"
            "print(json.dumps(sorted(m for m in ('torch', 'ray') if m in sys.modules)))\n"
            "import trials.optimizers\n"  # the control: the same check does see torch
            "print(json.dumps('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded, control = (json.loads(line) for line in out.stdout.split())
    assert loaded == [] and control is True


# ---------------------------------------------------------------------------------- probes
def probes(p: Param) -> tuple[list[Any], list[Any]]:
    """(values the card means to accept, values around and outside its range)."""
    bad: list[Any] = ["0.5", True, float("nan"), float("inf"), -float("inf"), {"a": 1}, [0.5]]
    good: list[Any] = [None] if p.nullable else []
    if not p.nullable:
        bad.append(None)
    if p.kind in ("float", "int"):
        b, step = p.bounds, 1e-9 if p.kind == "float" else 1
        if b.low is not None:
            good.append(b.low + step if b.low_open else b.low)
            bad.append(b.low if b.low_open else b.low - step)
        if b.high is not None:
            good.append(b.high - step if b.high_open else b.high)
            bad.append(b.high if b.high_open else b.high + step)
        inside = (b.low + b.high) / 2 if b.low is not None and b.high is not None else (b.low or 0) + 3
        good.append(int(inside) if p.kind == "int" else inside)
        if p.kind == "float" and b.contains(int(inside)) and inside == int(inside):
            good.append(int(inside))  # an int where a float goes
        if p.kind == "int":
            bad.append(float(int(inside)))
    elif p.kind == "bool":
        good += [True, False]
        bad += [1, 0, "true"]
    elif p.kind == "choice":
        good += list(p.choices)
        bad += ["nope", p.choices[0].upper()]
    elif p.kind == "pair":
        first, second = p.pair  # type: ignore[misc]
        lo = [b.low + 1e-9 if b.low_open else b.low for b in (first, second)]
        hi = [b.high - 1e-9 if b.high_open else b.high for b in (first, second)]
        good += [lo, hi, tuple(hi)]
        bad += [[0.5], [0.5, 0.5, 0.5], [float("nan"), 0.5], [first.high, 0.5], [0.5, second.high],
                [first.low - 1, 0.5], "0.5, 0.5"]
    return good, bad


def _tiny_gpt() -> GPT:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=2, n_embd=8))


MODEL = _tiny_gpt()


def _context(card: Any) -> dict[str, Any]:
    """Valid values for the card's required parameters."""
    return {p.name: p.bounds.low + 3 if p.bounds.low is not None else 3 for p in card.params if p.required}


def _assert_safe(owner: str, p: Param, good: list[Any], bad: list[Any], card_ok: Any, trial_ok: Any) -> None:
    for v in good:
        assert card_ok(v), f"{owner}.{p.name}: the card should accept {v!r}"
    for v in good + bad:
        if card_ok(v):
            assert trial_ok(v), f"{owner}.{p.name}: the card accepts {v!r}, the implementation refuses it"


# ---------------------------------------------------------------------------------- optimizers
def test_optimizer_catalog_names_hyperparameters_and_defaults_equal_the_factories() -> None:
    assert set(catalog.OPTIMIZERS) == set(OPTIMIZERS)
    for name, card in catalog.OPTIMIZERS.items():
        factory = {k: REQUIRED if p.default is inspect.Parameter.empty else p.default
                   for k, p in hyperparameters(name).items()}
        assert {p.name: p.default for p in card.params} == factory, name


def test_optimizer_choices_equal_the_implementations() -> None:
    cards = catalog.OPTIMIZERS
    assert set(cards["muon"].param("ns_dtype").choices) == set(NS_DTYPES)  # type: ignore[union-attr]
    assert cards["normuon"].param("lr_convention").choices == LR_CONVENTIONS  # type: ignore[union-attr]
    assert cards["sf_normuon"].param("decay_at").choices == DECAY_AT  # type: ignore[union-attr]
    assert cards["sf_normuon"].param("decay_lr").choices == DECAY_LR  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(catalog.OPTIMIZERS))
def test_optimizer_flags_and_state_bound_are_what_the_built_optimizer_does(name: str) -> None:
    card = catalog.OPTIMIZERS[name]
    hyper = _context(card) | {k: v for k, v in (("momentum", 0.9), ("inner_momentum", 0.5)) if card.param(k)}
    model = _tiny_gpt()
    opt = build_optimizer(name, model, lr=1e-3, **hyper)
    assert bool(getattr(opt, "schedule_free", False)) == card.schedule_free
    assert bool(getattr(opt, "needs_loss", False)) == card.needs_loss
    if card.needs_model:
        with pytest.raises(TypeError, match="pass the model"):
            build_optimizer(name, list(model.named_parameters()), lr=1e-3, **hyper)
    else:
        build_optimizer(name, list(model.named_parameters()), lr=1e-3, **hyper)
    if card.schedule_free:
        opt.train()
    x = torch.randint(0, 11, (2, 4))
    loss = model(x, x)[1]
    loss.backward()
    opt.step_func(loss.item()) if card.needs_loss else opt.step()
    per_param = max(sum(t.numel() for t in opt.state[p].values() if torch.is_tensor(t) and t.dim() > 0) / p.numel()
                    for p in model.parameters())
    # the bound holds for every tensor, and is no more than one float per parameter too generous
    assert per_param <= card.state_per_param < per_param + 1, (name, per_param)


@pytest.mark.parametrize("name", sorted(catalog.OPTIMIZERS))
def test_what_an_optimizer_card_accepts_the_optimizer_accepts(name: str) -> None:
    card = catalog.OPTIMIZERS[name]
    context = _context(card)
    for p in card.params:
        extra = {"momentum": 0.9} if (name, p.name) == ("sgd", "nesterov") else {}

        def card_ok(value: Any, p: Param = p, extra: dict[str, Any] = extra) -> bool:
            if p.set_by:  # warmup_steps: set from the top-level key, its values checked all the same
                return p.accepts(value)
            return card.check({**context, **extra, p.name: value}) is None

        good, bad = probes(p)
        _assert_safe(name, p, good, bad, card_ok,
                     lambda v, p=p, extra=extra: _builds_with(name, {**context, **extra, p.name: v}))


def _builds_with(name: str, hyper: dict[str, Any]) -> bool:
    try:
        build_optimizer(name, MODEL, lr=1e-3, **hyper)
    except (ConfigError, ValueError, TypeError):
        return False
    return True


def test_a_rule_across_hyperparameters_refuses_what_torch_refuses() -> None:
    card = catalog.OPTIMIZERS["sgd"]
    assert str(card.check({"nesterov": True})) == (
        "nesterov must be false when momentum is 0 (Nesterov needs momentum > 0), got True")
    assert not _builds_with("sgd", {"nesterov": True})
    assert card.check({"nesterov": True, "momentum": 0.9}) is None and _builds_with("sgd", {"nesterov": True, "momentum": 0.9})


def test_unknown_and_missing_hyperparameters() -> None:
    card = catalog.OPTIMIZERS["sf_adamw_refined"]
    assert str(card.check({})) == "C must be given: 'sf_adamw_refined' has no default for it (a number > 0), got None"
    problem = catalog.OPTIMIZERS["sgd"].check({"momentun": 0.9})
    assert str(problem) == ("momentun must be a hyperparameter of 'sgd': one of "
                            "['grad_clip', 'momentum', 'nesterov', 'weight_decay'], got 0.9")


# ---------------------------------------------------------------------------------- schedules
def test_schedule_catalog_equals_the_schedule_classes() -> None:
    assert set(catalog.SCHEDULES) == set(SCHEDULES)
    for name, cls in SCHEDULES.items():
        fields = {f.name: f.default for f in dataclasses.fields(cls) if f.name != "warmup"}
        card = catalog.SCHEDULES[name]
        assert {p.name: p.default for p in card.params} == fields, name
        assert card.horizon_free == cls.horizon_free, name
        assert (card.family == "wsd") == (cls.decay_start is not SCHEDULES["constant"].decay_start), name
    assert set(catalog.SCHEDULES["wsd"].param("cooldown_shape").choices) == set(COOLDOWN_SHAPES)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(catalog.SCHEDULES))
def test_what_a_schedule_card_accepts_the_schedule_accepts(name: str) -> None:
    card = catalog.SCHEDULES[name]

    def trial_ok(key: str, value: Any) -> bool:
        try:
            build_schedule(name, warmup=0, **{key: value})
        except (ConfigError, TypeError, ValueError):
            return False
        return True

    for p in card.params:
        good, bad = probes(p)
        _assert_safe(name, p, good, bad, lambda v, p=p: card.check({p.name: v}) is None,
                     lambda v, p=p: trial_ok(p.name, v))


# ---------------------------------------------------------------------------------- averagers
def test_averager_catalog_equals_the_averager_classes_and_their_labels() -> None:
    assert set(catalog.AVERAGERS) == set(AVERAGERS)
    for kind, cls in AVERAGERS.items():
        fields = {f.name: REQUIRED if f.default is dataclasses.MISSING else f.default
                  for f in dataclasses.fields(cls) if f.init}
        assert {p.name: p.default for p in catalog.AVERAGERS[kind].params} == fields, kind
    points = [("ema", {"half_life": 0.05}), ("ema", {"half_life": 200}), ("ema", {"half_life": 200.0}),
              ("swa", {"start": 500}), ("swa", {"start": 500, "every": 5}), ("swa", {"start": 0, "every": 1}),
              ("lawa", {"k": 5, "every": 10}), ("lawa", {"k": 3}), ("poly", {"q": 0.0}), ("poly", {"q": 0.5})]
    for kind, params in points:
        assert catalog.AVERAGERS[kind].label(params) == default_label(kind, params), (kind, params)
    assert catalog.AVERAGERS["swa"].label({"start_fraction": 0.5, "every": 10}) == "swa@0.5/10"


@pytest.mark.parametrize("kind", sorted(catalog.AVERAGERS))
def test_what_an_averager_card_accepts_the_averager_accepts(kind: str) -> None:
    card = catalog.AVERAGERS[kind]
    context = {p.name: 3 for p in card.params if p.required} | {group[0]: 3 for group in card.one_of}

    def trial_ok(key: str, value: Any) -> bool:
        try:
            default_label(kind, {**context, key: value})
        except (ConfigError, TypeError, ValueError):
            return False
        return True

    for p in card.params:
        good, bad = probes(p)
        _assert_safe(kind, p, good, bad, lambda v, p=p: card.check({**context, p.name: v}) is None,
                     lambda v, p=p: trial_ok(p.name, v))


# ---------------------------------------------------------------------------------- workloads
def test_workload_catalog_equals_the_workload_configs() -> None:
    assert set(catalog.WORKLOADS) == set(WORKLOADS)
    for name, cls in WORKLOADS.items():
        card = catalog.WORKLOADS[name]
        fields = {f.name: f.default for f in dataclasses.fields(cls.config_class)}
        assert {p.name: p.default for p in (*card.params, *card.size_params)} == fields, name
    assert catalog.GPT_SIZES == GPT_SIZES
    assert catalog.WORKLOADS["char_gpt"].default_size == CharGPTConfig().size
    assert catalog.WORKLOADS["linreg"].default_size == {"dim": LinRegConfig().dim}


def test_the_shipped_corpus_figures_are_the_loaders() -> None:
    from trials.workloads.corpus import load_corpus

    corpus = load_corpus(None)
    assert corpus.vocab_size == catalog.CHAR_VOCAB == 84
    assert corpus.train.n_tokens + corpus.val.n_tokens == catalog.SHIPPED_CORPUS_TOKENS


@pytest.mark.parametrize("name", sorted(catalog.WORKLOADS))
def test_what_a_workload_card_accepts_the_config_accepts(name: str) -> None:
    card = catalog.WORKLOADS[name]
    config = WORKLOADS[name].config_class

    def trial_ok(key: str, value: Any) -> bool:
        context = {"n_head": 1} if key == "n_embd" else {}  # n_embd must be a multiple of n_head (the spec checks)
        if name == "llama" and key in ("d_model", "n_heads", "n_kv_heads"):  # cross-field: the spec checks
            context = {"d_model": 64, "n_heads": 1, "n_kv_heads": 1} | (
                {"n_heads": value} if key == "n_kv_heads" and isinstance(value, int) else {})
            if key == "d_model" and isinstance(value, int) and value % 2:  # an odd head size: no RoPE pairs
                shape = catalog.llama_shape("nano", {"d_model": value, "n_heads": 1, "n_kv_heads": 1})
                return catalog.llama_shape_problem(shape) is not None
        try:
            config(**{**context, key: value})
        except (ConfigError, TypeError, ValueError, KeyError):
            return False
        return True

    for p in (*card.params, *card.size_params):
        if p.kind == "path":
            continue  # a corpus is checked against the file system by the spec, not by range
        good, bad = probes(p)
        _assert_safe(name, p, good, bad, p.accepts, lambda v, p=p: trial_ok(p.name, v))


def test_probes_catch_a_range_wider_than_the_implementation() -> None:
    """The safety check can fail: a card claiming beta2 in [0, 1] would accept 1.0, which the
    optimizer refuses."""
    wide = dataclasses.replace(catalog.OPTIMIZERS["normuon"].param("beta2"),  # type: ignore[arg-type]
                               bounds=catalog.Bounds(0, 1))
    good, bad = probes(wide)
    with pytest.raises(AssertionError, match=r"normuon\.beta2: the card accepts 1, the implementation refuses it"):
        _assert_safe("normuon", wide, good, bad, wide.accepts, lambda v: _builds_with("normuon", {"beta2": v}))
