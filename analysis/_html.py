"""The page around the report: style, the figure renderer, the sortable table's script, and the
one place plotly.js is embedded (once, in the ``<head>``, so the page works offline).

Figures: each is a ``<div id="fig-…" class="lrsweep-plot">`` followed by its JSON in a
``<script type="application/json" class="lrsweep-figure-json">`` that one small script draws
with ``Plotly.newPlot``; a drawn div gets ``data-rendered="true"``, a failure ``data-error``, a
visible message and a console line ``lrsweep: figure … failed`` (what the browser test reads).

Tables with ``class="lrsweep-table"`` sort by clicking a header (numbers by their ``data-v``,
missing values last; a second click reverses) and filter by the text box above them (every
word must occur in the row). The page's address can carry the same actions —
``report.html#sort=loss&dir=desc&filter=cosine`` — applied on load by clicking the header and
typing the filter, which is how a shared link reopens a view (and how the browser test drives
the real handlers).
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

__all__ = ["GENERATOR_META", "STYLE", "figure_section", "page"]

GENERATOR_META = '<meta name="generator" content="lrsweep">'
"""In the head of every page lrsweep writes: `report -o` overwrites only files that carry it
(:mod:`orchestrator.report_output`)."""

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1250px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .meta{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left} th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.winner td{font-weight:600;background:#eef6ee}
table.lrsweep-table th{cursor:pointer;user-select:none;white-space:nowrap}
table.lrsweep-table th[aria-sort=ascending]::after{content:" ▲"}
table.lrsweep-table th[aria-sort=descending]::after{content:" ▼"}
.table-tools{margin:.4rem 0} .table-tools input{width:24rem;padding:.25rem .4rem}
.scroll{max-height:36rem;overflow:auto;border:1px solid #eee}
ul.findings li{margin:.25rem 0} section.lrsweep-figure{margin:2.2rem 0;border-top:1px solid #eee;padding-top:.6rem}
.lrsweep-plot{width:100%;min-height:460px} p.caption{color:#444;font-size:.9rem;max-width:75rem}
p.note{color:#8a6d3b;background:#fcf8e3;padding:.5rem .8rem;border-radius:4px}
p.render-error{color:#a94442} pre.spec{background:#f8f8f8;padding:.6rem;overflow:auto;max-height:24rem}
.compare-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(22rem,1fr));gap:1.2rem}
.compare-grid>section{border:1px solid #e4e4e4;border-radius:6px;padding:.2rem 1rem;min-width:0;overflow-wrap:anywhere}
.compare-grid>section>h2{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.compare-grid table{width:100%} .compare-grid td{overflow-wrap:anywhere}
"""

_RENDER = """
(function () {
  function fail(div, err) {
    div.setAttribute("data-error", String(err));
    var p = document.createElement("p");
    p.className = "render-error";
    p.textContent = "could not draw this figure: " + err;
    div.appendChild(p);
    console.error("lrsweep: figure " + div.id + " failed: " + err);
  }
  var specs = document.querySelectorAll("script.lrsweep-figure-json");
  for (var i = 0; i < specs.length; i++) {
    var div = document.getElementById(specs[i].getAttribute("data-target"));
    try {
      var fig = JSON.parse(specs[i].textContent);
      Plotly.newPlot(div, fig.data, fig.layout, {responsive: true, displaylogo: false}).then(
        (function (d) { return function () { d.setAttribute("data-rendered", "true"); }; })(div),
        (function (d) { return function (e) { fail(d, e); }; })(div));
    } catch (err) {
      fail(div, err);
    }
  }
})();
"""

_TABLES = """
(function () {
  function value(cell, numeric) {
    if (!numeric) return cell.textContent.trim().toLowerCase();
    var v = cell.getAttribute("data-v");
    if (v === null || v === "") return NaN;
    return v === "inf" ? Infinity : (v === "-inf" ? -Infinity : parseFloat(v));
  }
  function sortBy(table, col) {
    var heads = table.tHead.rows[0].cells, th = heads[col];
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir);
    var numeric = th.getAttribute("data-type") === "num", sign = dir === "ascending" ? 1 : -1;
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (r, i) { r._i = i; });
    rows.sort(function (a, b) {
      var x = value(a.cells[col], numeric), y = value(b.cells[col], numeric);
      if (numeric) {
        var nx = isNaN(x), ny = isNaN(y);
        if (nx || ny) return nx === ny ? a._i - b._i : (nx ? 1 : -1);  // missing last, always
        return x === y ? a._i - b._i : (x < y ? -sign : sign);
      }
      return x === y ? a._i - b._i : (x < y ? -sign : sign);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function filter(table, text, count) {
    var words = text.toLowerCase().split(/\\s+/).filter(Boolean), shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var t = rows[i].textContent.toLowerCase(), ok = words.every(function (w) { return t.indexOf(w) >= 0; });
      rows[i].style.display = ok ? "" : "none";
      if (ok) shown++;
    }
    if (count) count.textContent = shown + " of " + rows.length + " rows";
  }
  var tables = document.querySelectorAll("table.lrsweep-table");
  for (var t = 0; t < tables.length; t++) {
    (function (table) {
      var heads = table.tHead.rows[0].cells;
      for (var i = 0; i < heads.length; i++) {
        (function (col) { heads[col].addEventListener("click", function () { sortBy(table, col); }); })(i);
      }
      var box = document.querySelector('input[data-table="' + table.id + '"]');
      var count = document.querySelector('[data-count="' + table.id + '"]');
      if (box) box.addEventListener("input", function () { filter(table, box.value, count); });
      filter(table, box ? box.value : "", count);
    })(tables[t]);
  }
  // report.html#sort=<data-key>&dir=desc&filter=<words>: the same actions, applied on load.
  var hash = {};
  (location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
    var p = kv.split("="); if (p[0]) hash[decodeURIComponent(p[0])] = decodeURIComponent(p[1] || "");
  });
  var first = tables[0];
  if (first && hash.sort) {
    var th = first.tHead.querySelector('th[data-key="' + hash.sort + '"]');
    if (th) { th.click(); if (hash.dir === "desc") th.click(); }
  }
  if (first && hash.filter !== undefined) {
    var box = document.querySelector('input[data-table="' + first.id + '"]');
    if (box) { box.value = hash.filter; box.dispatchEvent(new Event("input")); }
  }
})();
"""


def _figure_json(fig: go.Figure) -> str:
    # "<" only occurs inside JSON strings, where \\u003c is the same character: no "</script>".
    return fig.to_json(validate=False).replace("<", "\\u003c")


def figure_section(
    fig_id: str, heading: str, caption: str, figure: go.Figure | None, note: str | None
) -> str:
    """One ``<section>``: the figure's div and JSON, or the note saying why there is none."""
    head = f"<h2>{html.escape(heading)}</h2>"
    if figure is None:
        return (
            f'<section class="lrsweep-figure lrsweep-unavailable" id="section-{fig_id}" '
            f'data-figure="{fig_id}">{head}<p class="note">{html.escape(note or "")}</p>'
            f'<p class="caption">{html.escape(caption)}</p></section>'
        )
    return (
        f'<section class="lrsweep-figure" id="section-{fig_id}" data-figure="{fig_id}">{head}'
        f'<div id="{fig_id}" class="lrsweep-plot" data-figure-id="{fig_id}"></div>'
        f'<script type="application/json" class="lrsweep-figure-json" data-target="{fig_id}">'
        f"{_figure_json(figure)}</script>"
        f'<p class="caption">{html.escape(caption)}</p></section>'
    )


def page(title: str, meta: str, body: str) -> str:
    """The whole HTML document: plotly.js once in the head, the scripts at the end."""
    import plotly.offline

    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{GENERATOR_META}'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head><body>'
        f'<h1>{html.escape(title)}</h1><p class="meta">{meta}</p>{body}'
        f"<script>{_RENDER}</script><script>{_TABLES}</script></body></html>\n"
    )
