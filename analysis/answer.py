"""The report's answer section: the findings in words, the headline tables (each named
candidate compared with the headline pair-wise by seed; the envelope at every horizon against
the best anytime candidate) and the definitions they rest on."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np

from analysis.anytime import anytime_answers, anytime_optimal, seed_worst_regret
from analysis.definitions import DEFINITIONS
from analysis.figures._common import horizon_text
from analysis.horizons import SCOPE, envelope
from analysis.noise import NOISE_RULE, paired_frame
from analysis.summary import summary_sentences
from analysis.units import pct3

if TYPE_CHECKING:
    from analysis.report import _Inputs

__all__ = ["answer_html", "headline_tables"]


def _pct(x: float) -> str:
    if x is None or np.isnan(x):
        return "n/a"
    return "diverged" if np.isinf(x) else pct3(x, sign=True)


def headline_tables(d: _Inputs) -> str:
    """Per scope: the anytime candidates and the best horizon-aware one, each compared with the
    headline pair-wise by seed; and the envelope at every horizon against the headline."""
    answers = anytime_answers(d.table, d.seeds)
    fam = anytime_optimal(d.table, by="family")
    worst = seed_worst_regret(d.table, d.seeds)
    env = envelope(d.table)
    out = []
    for ans in answers:
        key = list(ans.scope)
        in_scope = (fam[SCOPE].astype(str) == key).all(axis=1)
        rows = []
        if ans.best is not None:
            rows.append(
                (
                    "anytime-optimal" if ans.is_winner else "best anytime (not a tested winner)",
                    ans.best,
                )
            )
        if ans.runner_up is not None:
            rows.append(("runner-up", ans.runner_up))
        named = {r["candidate"] for _, r in rows}
        rows += [
            (f"best {r['family']}", r)
            for _, r in fam.loc[in_scope].iterrows()
            if r["candidate"] not in named
        ]
        if ans.best_aware is not None:
            rows.append(("best horizon-aware", ans.best_aware))
        ws = worst.loc[(worst[SCOPE].astype(str) == key).all(axis=1)]
        verdicts: dict[str, str] = {}
        if ans.best is not None and len(ws):
            base = ws.loc[ws["candidate"] == ans.best["candidate"], ["seed", "loss"]].assign(_k=0)
            for _role, r in rows[1:]:
                other = ws.loc[ws["candidate"] == r["candidate"], ["seed", "loss"]].assign(_k=0)
                cmp = paired_frame(other, base, ["_k"])
                verdicts[r["candidate"]] = (
                    "n/a (no common seed)" if cmp.empty else
                    cmp["verdict"].iloc[0] if cmp["verdict"].iloc[0].startswith("n/a") else
                    f"{100 * cmp['diff'].iloc[0]:+.2f} ± {100 * cmp['stderr'].iloc[0]:.2g} pt ({cmp['verdict'].iloc[0]})"
                )  # fmt: skip
        body = "".join(
            f"<tr{' class=winner' if i == 0 and ans.is_winner else ''}><td>{html.escape(role)}</td>"
            f"<td>{html.escape(r['candidate'])}</td><td>{html.escape(r['kind'])}</td>"
            f'<td class="num">{_pct(r["worst_regret"])}</td><td class="num">{_pct(r["mean_regret"])}</td>'
            f"<td>{html.escape(verdicts.get(r['candidate'], '—'))}</td></tr>"
            for i, (role, r) in enumerate(rows)
        )
        e = env.loc[(env[SCOPE].astype(str) == key).all(axis=1)].copy()
        e["text"] = horizon_text(e, d.table)
        t = d.table.set_index([*SCOPE, "candidate", "horizon"])
        erows = []
        for r in e.itertuples(index=False):
            idx = (*ans.scope, r.candidate, r.horizon)
            n = int(t.loc[idx, "n_seeds"]) if r.candidate and idx in t.index else 0
            se = "n/a (1 seed)" if n <= 1 else f"± {r.stderr:.2g}"
            cells = f"<td>{html.escape(r.text)}</td><td>{html.escape(r.candidate or 'none')}</td><td class=num>{r.loss:.4f} {se}</td>"
            if ans.best is not None:
                bi = (*ans.scope, ans.best["candidate"], r.horizon)
                bl = t.loc[bi, "loss"] if bi in t.index else np.nan
                a = d.seeds.loc[
                    (d.seeds["candidate"] == ans.best["candidate"])
                    & (d.seeds["horizon"] == r.horizon)
                ]
                b = d.seeds.loc[
                    (d.seeds["candidate"] == r.candidate) & (d.seeds["horizon"] == r.horizon)
                ]
                a = a.loc[(a[SCOPE].astype(str) == key).all(axis=1)].assign(_k=0)
                b = b.loc[(b[SCOPE].astype(str) == key).all(axis=1)].assign(_k=0)
                cmp = paired_frame(a, b, ["_k"])
                v = "n/a" if cmp.empty else cmp["verdict"].iloc[0]
                cells += f"<td class=num>{bl:.4f}</td><td class=num>{_pct(bl / r.loss - 1)}</td><td>{html.escape(v)}</td>"
            erows.append(f"<tr>{cells}</tr>")
        extra = (
            "<th>best anytime candidate's loss</th><th>its regret</th><th>difference (paired)</th>"
            if ans.best is not None
            else ""
        )
        title = " ".join(k for k in key if k) or "all runs"
        out.append(
            f'<h3>{html.escape(title)}</h3><table class="summary-table"><thead><tr><th>role</th>'
            "<th>candidate</th><th>kind</th><th>worst-case regret</th><th>mean regret</th>"
            "<th>vs the headline (per-seed worst-case regret, paired)</th></tr></thead>"
            f"<tbody>{body}</tbody></table>"
            f'<table class="envelope-table"><thead><tr><th>horizon</th><th>envelope (best horizon-aware)</th>'
            f"<th>loss ± s.e.</th>{extra}</tr></thead><tbody>{''.join(erows)}</tbody></table>"
        )
    return "".join(out)


def answer_html(d: _Inputs) -> str:
    """The answer section: findings, definitions, headline tables."""
    sentences = summary_sentences(d.table, d.seeds, plan=dict(d.plan) if d.plan else None)
    return (
        '<section id="summary"><h2>Answer</h2><ul class="findings" id="findings">'
        + "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
        + "</ul>"
        + headline_tables(d)
        + '<section id="definitions"><h3>Definitions</h3><ul>'
        + "".join(f"<li>{html.escape(s)}</li>" for s in DEFINITIONS)
        + f"<li>Noise rule: {html.escape(NOISE_RULE)}.</li></ul></section></section>"
    )
