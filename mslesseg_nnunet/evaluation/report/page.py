"""The self-contained HTML page of the QC report.

Everything is inline: images are base64 ``data:`` URIs, the style and the
table-sorting script are in the page, and a Content-Security-Policy forbids
every network request.
"""
from __future__ import annotations

import base64
import html
import math

from mslesseg_nnunet.evaluation.summary import format_value

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")

STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:2px 8px;text-align:right;font-size:13px}
th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
table.sortable th{cursor:pointer}
table.sortable th[data-dir=asc]::after{content:" \\25B2"}
table.sortable th[data-dir=desc]::after{content:" \\25BC"}
img{max-width:100%;display:block}
section.case{margin-bottom:1.5em}
"""

# Click a header to sort by that column; empty cells always go last.
SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
      table.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var body = table.tBodies[0];
      var key = function (row) {
        var text = row.cells[col].textContent;
        var num = parseFloat(text);
        return text === '' ? null : (isNaN(num) ? text : num);
      };
      var rows = Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var order = x < y ? -1 : (x > y ? 1 : 0);
        return dir === 'asc' ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(value) -> str:
    if isinstance(value, float) and not math.isnan(value) and not value.is_integer():
        return f"{value:.4f}"
    return html.escape(format_value(value))


def table(header: list[str], rows: list[list], css_class: str = "", row_ids=None) -> str:
    """An HTML table; ``row_ids`` link the first cell to ``#case-<id>`` anchors."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = [_cell(v) for v in row]
        if row_ids is not None:
            cells[0] = f'<a href="#case-{html.escape(row_ids[i])}">{cells[0]}</a>'
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def summary_table(stats: dict) -> str:
    """Metric | mean | std | median | count."""
    rows = [[name, *(float("nan") if s[k] is None else s[k] for k in ("mean", "std", "median")),
             s["count"]] for name, s in stats.items()]
    return table(["metric", "mean", "std", "median", "count"], rows)


def render_page(title: str, intro: str, stats: dict, columns: list[str], rows: list[dict],
                plots: dict[str, bytes], case_pngs: dict[str, bytes]) -> str:
    """The whole report page as a string."""
    case_table = table(columns, [[row[c] for c in columns] for row in rows], "sortable",
                       row_ids=[row["case"] for row in rows])
    plot_html = "".join(f'<h3>{html.escape(name)}</h3><img alt="{html.escape(name)}" '
                        f'src="{data_uri(png)}">' for name, png in plots.items())
    cases_html = "".join(
        f'<section class="case" id="case-{html.escape(case)}"><h3>{html.escape(case)}</h3>'
        f'<img alt="{html.escape(case)} slices" src="{data_uri(png)}"></section>'
        for case, png in case_pngs.items())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"
            f"<h2>Summary</h2>{summary_table(stats)}"
            f"<h2>Cases</h2><p>Click a column header to sort.</p>{case_table}"
            f"<h2>Plots</h2>{plot_html}"
            f"<h2>Largest error per case</h2><p>Slices through the largest false-positive or "
            f"false-negative region; green = true positive, orange = false positive, "
            f"purple = false negative.</p>{cases_html}"
            f"<script>{SORT_SCRIPT}</script></body></html>\n")
