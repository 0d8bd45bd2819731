"""A page that loads a report in a frame and writes the geometry the browser measured into a
``<pre id="geometry">`` as JSON (the comparison panels' boxes, how far anything sticks out of
them, whether the long title is cut, the page's horizontal overflow), for ``--dump-dom``.
Chromium needs ``--allow-file-access-from-files`` to read the framed file's document."""

from __future__ import annotations

HARNESS = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="REPORT" style="width:1300px;height:4000px;border:0"></iframe><pre id="geometry"></pre>
<script>
document.getElementById("f").addEventListener("load", function () {
  setTimeout(function () {
    var doc = document.getElementById("f").contentDocument;
    var panels = Array.prototype.map.call(doc.querySelectorAll("section.compare-sweep"), function (s) {
      var r = s.getBoundingClientRect(), widest = 0;
      s.querySelectorAll("*").forEach(function (e) { widest = Math.max(widest, e.getBoundingClientRect().right); });
      return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, overflow: widest - r.right};
    });
    var h2 = doc.querySelectorAll("section.compare-sweep h2")[1];
    document.getElementById("geometry").textContent = JSON.stringify({
      panels: panels, title_cut: h2.scrollWidth > h2.clientWidth,
      page_overflow: doc.documentElement.scrollWidth - doc.documentElement.clientWidth});
  }, 3000);
});
</script></body></html>"""
