"""The HTML report as a user sees it: rendered by headless Chromium, its tables and images show.

Skips where Debian's ``chromium`` is absent (``apt-get install chromium``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.chromium,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]

# Appended to a copy of the report: after load, record what the page shows into the DOM.
PROBE = """<script>
window.addEventListener('load', () => {
  const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const images = [...document.images];
  const tables = [...document.querySelectorAll('table.results')];
  document.body.dataset.probe = JSON.stringify({
    images: images.length,
    decoded: images.filter(i => i.complete && i.naturalWidth > 0 && shown(i)).length,
    tables: tables.filter(shown).map(t => ({id: t.id, rows: t.querySelectorAll('tbody tr').length,
                                             header: t.querySelector('thead').innerText})),
  });
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_renders_its_tables_and_images_in_chromium(tmp_path, photos):
    from benchmark.config import DatasetConfig, MethodConfig, RunConfig
    from benchmark.engine.outputs import write_outputs
    from benchmark.engine.samples import write_samples
    from benchmark.io import ArrayFrames
    from benchmark.results.folder import RunFolder
    from benchmark.results.schema import missing_table
    from reports.publish import publish
    from tests.test_reports_plots import _per_frame

    per_frame = _per_frame()
    config = RunConfig(datasets=(DatasetConfig(name="synthetic", path="d"),), methods=(MethodConfig(name="w/o LCM", frames="f"),),
                       out=str(tmp_path))
    folder = RunFolder(tmp_path)
    frames = ArrayFrames(np.stack([cv2.resize(photos["astronaut"], (64, 64))] * 4))
    method = folder.pair_folder("synthetic", "s0", "w/o LCM")
    write_samples(frames, frames, list(range(4)), method / "samples.png", method.parent / "gt_samples.png")
    write_outputs(folder, config, per_frame, missing_table([]), ["canonical"], publish=publish)
    report = tmp_path / "report.html"
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))

    dom = _chromium("--dump-dom", "--virtual-time-budget=10000", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert match, dom.stdout[:2000]
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["images"] >= 6 and probe["decoded"] == probe["images"]
    tables = {t["id"]: t for t in probe["tables"]}
    assert tables["table1"]["rows"] == 2 and "PSNR (dB) ↑" in tables["table1"]["header"]
    assert tables["summary"]["rows"] > 0

    shot = tmp_path / "shot.png"
    result = _chromium(f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert (image < 200).any(axis=2).mean() > 0.02  # text, tables and plots drawn, not a blank page
