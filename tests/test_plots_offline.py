"""`moalign plots` writes a `dvc plots show` page whose Vega charts draw with the network off.

DVC's own page loads Vega from a CDN (blank offline). The page is built from this checkout's
committed plots (dvc.yaml's plots, no pipeline run needed), opened in headless Chromium through
Playwright in an *offline* context that also aborts every non-file request, and each Vega chart
div must hold a drawn chart (an svg or canvas from vega-embed).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from moalign.plots_html import template

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def test_template_inlines_the_libraries_and_keeps_dvcs_placeholder():
    t = template()
    assert "{plot_divs}" in t and "cdn.jsdelivr" not in t and "{scripts}" not in t
    assert "window.vegaEmbed=" in t.replace(" ", "")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent: `make browser` installs Debian's "
                    "chromium (sudo apt-get update && sudo apt-get install -y chromium)")
@pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright (python) is not installed")
def test_plots_page_draws_every_vega_chart_offline(tmp_path):
    out = tmp_path / "plots"
    p = subprocess.run([sys.executable, "-m", "moalign.cli", "plots", "show", "-o", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:"
                                                            f"{os.environ.get('PATH', '')}"})
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    html = (out / "index.html").read_text()
    ids = re.findall(r"vegaEmbed\('#([^']+)'", html)
    assert ids, "no Vega chart on the page"
    from playwright.sync_api import sync_playwright

    asked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        ctx = browser.new_context(offline=True)
        ctx.route(re.compile(r"^(?!file:).*"), lambda route: (asked.append(route.request.url), route.abort()))
        page = ctx.new_page()
        page.goto((out / "index.html").as_uri())
        for i in ids:
            page.wait_for_selector(f"[id='{i}'] svg, [id='{i}'] canvas", timeout=60_000)
        page.screenshot(path=str(tmp_path / "plots.png"), full_page=False)
        browser.close()
    assert not asked, f"the page asked the network for {asked[:3]}"
