"""How a :class:`~orchestrator.planner.Plan` looks to a person (a rich table) and to a program (JSON)."""

from __future__ import annotations

from rich.table import Table

from orchestrator.planner import Plan
from trials.lineage_spec import LineageSpec

__all__ = ["format_count", "plan_json", "render_plan"]

_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def format_count(value: float, unit: str = "") -> str:
    """``1234567 -> "1.23M"``, ``3.1e15, "FLOP" -> "3.1 PFLOP"``: three significant digits."""
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{' ' if unit else ''}{prefix}{unit}"
    return f"{value:.3g}{' ' if unit else ''}{unit}" if isinstance(value, float) else f"{value}{' ' if unit else ''}{unit}"


def _branches(lineage: LineageSpec) -> str:
    if not lineage.branches:
        return f"trunk {lineage.trunk_end}"
    return f"trunk {lineage.trunk_end} + cooldowns " + ", ".join(str(b.steps) for b in lineage.branches)


def _horizons(lineage: LineageSpec) -> str:
    hs = list(lineage.horizons)
    return ",".join(str(h) for h in hs) if len(hs) <= 4 else f"{hs[0]}…{hs[-1]} ({len(hs)})"


def render_plan(plan: Plan, *, wide: bool = False) -> Table:
    """One row per lineage; the caption compares the planned compute with training every
    setting x horizon from scratch, and (against a store) says what is stored and what runs.
    The default table fits 100 columns (lineage id prefix, family, optimizer, LR, seed,
    horizons, tokens to run); ``wide`` adds the rule, size, branches, planned and stored tokens
    with full ids (``lrsweep plan --json`` has everything)."""
    from analysis.units import sig3

    spec = plan.spec
    table = Table(title=f"sweep {spec.name}: {len(plan.lineages)} lineages "
                        f"(horizons in steps; given as {spec.horizons.unit})", title_justify="left")
    if wide:
        heads = (("lineage", "left"), ("settings", "left"), ("rule", "left"), ("optimizer", "left"),
                 ("size", "left"), ("lr", "right"), ("seed", "right"), ("horizons", "left"),
                 ("branches", "left"), ("tokens", "right"), ("stored", "right"), ("to run", "right"))
    else:
        heads = (("lineage", "left"), ("family", "left"), ("optimizer", "left"), ("lr", "right"),
                 ("seed", "right"), ("horizons", "left"), ("to run", "right"))
    for header, justify in heads:
        table.add_column(header, justify=justify, no_wrap=header == "lineage")  # type: ignore[arg-type]
    for lineage, c in zip(plan.lineages, plan.compute, strict=True):
        run = format_count(c.tokens(c.run_steps)) + (f" ({c.replay_steps} replayed)" if c.replay_steps else "")
        if not wide:
            table.add_row(lineage.lineage_id[:8], c.family, lineage.optimizer, sig3(lineage.peak_lr),
                          str(lineage.seed), _horizons(lineage), run)
            continue
        table.add_row(
            lineage.lineage_id, c.family, lineage.rule, lineage.optimizer, c.size, f"{lineage.peak_lr:g}",
            str(lineage.seed), ",".join(str(h) for h in lineage.horizons), _branches(lineage),
            format_count(c.tokens(c.planned_steps)), format_count(c.tokens(c.stored_steps)), run,
        )
    caption = (
        f"planned {format_count(plan.planned_tokens)} tokens, {format_count(plan.planned_flops, 'FLOP')} "
        f"({plan.planned_steps} steps) vs naive {format_count(plan.naive_tokens)} tokens, "
        f"{format_count(plan.naive_flops, 'FLOP')} ({plan.naive_steps} steps): saving {plan.saving:.1%}"
    )
    if plan.stored_steps or plan.orphans:
        caption += (f"\nstored: {plan.stored_steps} steps reused; `lrsweep run` trains {plan.run_steps} steps "
                    f"({plan.replay_steps} of them replays)")
    if plan.orphans:
        lid, why = sorted(plan.orphans.items())[0]
        caption += (f"\n{len(plan.orphans)} stored lineages are no longer asked for (e.g. {lid}: {why}); "
                    "`lrsweep run --force` deletes and retrains them")
    table.caption = caption
    table.caption_justify = "left"
    return table


def plan_json(plan: Plan) -> str:
    """The plan as indented JSON text (:meth:`Plan.to_dict`)."""
    return plan.to_json(indent=2)
