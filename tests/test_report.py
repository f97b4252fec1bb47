"""The QC report: built by the CLI, then rendered in a real headless Chromium."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from eval_helpers import blobs, write_mask

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--enable-logging=stderr",
                  "--v=0", "--virtual-time-budget=5000", "--dump-dom"]

# Injected first in <head>: records console output, script errors and failed loads.
RECORDER = """<script>
window.__qc = {console: [], errors: []};
['log', 'info', 'warn', 'error', 'debug'].forEach(function (level) {
  var original = console[level];
  console[level] = function () {
    window.__qc.console.push(level + ': ' + Array.prototype.join.call(arguments, ' '));
    original.apply(console, arguments);
  };
});
window.addEventListener('error', function (e) {
  window.__qc.errors.push((e.message || '') + ' ' + ((e.target && (e.target.src || e.target.href)) || ''));
}, true);
document.addEventListener('securitypolicyviolation', function (e) {
  window.__qc.errors.push('CSP ' + e.violatedDirective + ' ' + e.blockedURI);
});
</script>"""

# Injected last in <body>: on load, checks every image and the table sorting, and
# writes the result into the DOM that --dump-dom prints.
CHECKER = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var table = document.querySelector('table.sortable');
  var header = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var dice = header.filter(function (th) { return th.textContent === 'dice'; })[0];
  var cases = function () {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; });
  };
  dice.click();
  var ascending = cases();
  dice.click();
  var descending = cases();
  var out = document.createElement('pre');
  out.id = 'qc-result';
  out.textContent = JSON.stringify({
    images: imgs.map(function (i) { return {alt: i.alt, complete: i.complete, width: i.naturalWidth}; }),
    ascending: ascending, descending: descending, console: window.__qc.console,
    errors: window.__qc.errors});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).exists():
        pytest.fail("Debian chromium is needed for this test (apt-get install chromium; .ci/run does)")
    return exe


def render(page: Path, tmp_path: Path) -> tuple[dict, str]:
    """Load ``page`` in headless Chromium; return the checker's result and Chromium's log."""
    proc = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="qc-result">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"no result in the dumped DOM; chromium said:\n{proc.stderr[-3000:]}"
    text = match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return json.loads(text.replace("&amp;", "&")), proc.stderr


@pytest.fixture
def report_inputs(tmp_path):
    """Three cases in the MSLesSeg test layout (FLAIR + MASK) and flat predictions."""
    rng = np.random.default_rng(7)
    shape, spacing = (36, 44, 30), (1.0, 1.0, 1.5)
    gt, pred = tmp_path / "test", tmp_path / "pred"
    for i, case in enumerate(("P54", "P55", "P56")):
        centres = [rng.integers(6, 24, size=3) for _ in range(3)]
        ref = blobs(shape, centres, 3.5)
        guess = blobs(shape, [c + rng.integers(-2, 3, size=3) for c in centres[: 3 - i]], 3.0)
        brain = blobs(shape, [(18, 22, 15)], 16)
        flair = (brain * (200 + 20 * rng.standard_normal(shape)) + ref * 150).astype(np.float32)
        write_mask(gt / case / f"{case}_MASK.nii.gz", ref, spacing, dtype=np.float32)
        write_mask(gt / case / f"{case}_FLAIR.nii.gz", flair, spacing, dtype=np.float32)
        write_mask(pred / f"{case}.nii.gz", guess, spacing)
    return gt, pred


def test_report_renders_in_headless_chromium(tmp_path, run_cli, report_inputs):
    gt, pred = report_inputs
    out = tmp_path / "report"
    run_cli("report", "--images", gt, "--pred", pred, "--gt", gt, "-o", out)
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "metrics.csv", "summary.json"]
    page = (out / "index.html").read_text()
    # self-contained: every src/href is inline data or an in-page anchor
    for ref in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert ref.startswith(("data:image/png;base64,", "#case-")), ref
    assert "Content-Security-Policy" in page
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("<head>", "<head>" + RECORDER, 1)
                       .replace("</body>", CHECKER + "</body>", 1))
    result, log = render(checked, tmp_path)
    assert result["errors"] == [] and result["console"] == []
    assert not [line for line in log.splitlines() if ":CONSOLE" in line]
    images = result["images"]
    assert len(images) == 3 + 3          # three plots + one figure per case
    assert all(img["complete"] and img["width"] > 0 for img in images), images
    with open(out / "metrics.csv") as fh:
        dice = {r["case"]: float(r["dice"]) for r in csv.DictReader(fh)}
    assert result["ascending"] == sorted(dice, key=dice.get)
    assert result["descending"] == sorted(dice, key=dice.get, reverse=True)


def test_report_needs_flair_for_every_case(tmp_path, run_cli, report_inputs):
    gt, pred = report_inputs
    (gt / "P55" / "P55_FLAIR.nii.gz").unlink()
    proc = run_cli("report", "--images", gt, "--pred", pred, "--gt", gt, "-o",
                   tmp_path / "report", check=False)
    assert proc.returncode == 2 and "no FLAIR image for case(s) P55" in proc.stderr
    assert not (tmp_path / "report").exists()
