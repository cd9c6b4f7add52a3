"""report.html in headless Chromium: the verdict table renders and every plot image decodes."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from flows.report.render import write_report
from stats.verdict_model import Verdict

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium not installed (apt-get install -y chromium)")

# Injected into a copy of the report only: the product page itself carries no script.
PROBE = """<script>
window.addEventListener('load', function () {
  document.querySelectorAll('img').forEach(function (img) {
    img.setAttribute('data-natural-width', String(img.naturalWidth));
    img.setAttribute('data-complete', String(img.complete));
  });
  var table = document.getElementById('verdict-table');
  document.body.setAttribute('data-verdict-rows',
                             String(table ? table.tBodies[0].rows.length : -1));
  document.body.setAttribute('data-verdict-height',
                             String(table ? table.getBoundingClientRect().height : 0));
  document.body.setAttribute('data-probe', 'done');
});
</script></body>"""


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
               "--virtual-time-budget=10000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def test_report_renders_in_headless_chromium(tmp_path: Path, verdict, results_table,
                                             provenance) -> None:
    out = tmp_path / "out"
    html = write_report(out, Verdict.model_validate(verdict), results_table, provenance).html
    probed = tmp_path / "probed.html"
    probed.write_text(html.read_text().replace("</body>", PROBE))

    dom = chromium(tmp_path / "profile-dom", "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert 'data-probe="done"' in text, "probe script did not run"
    expected_rows = sum(1 for d in verdict["methods"].values() for c in d["cells"]
                        if c["rung"] == verdict["production_rung"])
    assert f'data-verdict-rows="{expected_rows}"' in text
    height = float(re.search(r'data-verdict-height="([0-9.]+)"', text).group(1))
    assert height > 20 * expected_rows, "verdict table has no layout height"
    images = re.findall(r"<img[^>]*>", text)
    assert len(images) == 3
    for image in images:
        width = int(re.search(r'data-natural-width="(\d+)"', image).group(1))
        assert width > 100, f"plot did not decode: {image[:200]}"

    screenshot = tmp_path / "report.png"
    shot = chromium(tmp_path / "profile-shot", f"--screenshot={screenshot}",
                    "--window-size=1300,2400", "--hide-scrollbars", html.as_uri())
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000
    keep = os.environ.get("W2S_KEEP_SCREENSHOT")  # a path to look at the page yourself
    if keep:
        shutil.copy(screenshot, keep)
