"""Offline ``dvc plots show`` / ``dvc plots diff``: the HTML page with Vega, Vega-Lite and Vega-Embed inline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so on a machine without internet
every Vega chart on it is blank. This writes DVC a ``--html-template`` whose ``<script>`` holds the
three libraries, bundled by ``vl-convert-python`` (a PyPI wheel: nothing is fetched at run time),
pinned to the Vega-Lite major version of DVC's templates (v5), and runs DVC with it:

    moalign plots                     # = dvc plots show, offline page in dvc_plots/index.html
    moalign plots diff HEAD~1         # = dvc plots diff HEAD~1, same page
    moalign plots show -o /tmp/p      # any other dvc plots argument passes through
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

VEGA_LITE = "5.21"  # DVC's plot templates declare vega-lite/v5.json

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot (offline: moalign plots)</title>
    <script>%s</script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>"""


def template(vl_version: str = VEGA_LITE) -> str:
    """DVC's page with the libraries inline (DVC fills ``{plot_divs}``; its ``{scripts}`` CDN tags are left out)."""
    import vl_convert as vlc

    bundle = vlc.javascript_bundle(vl_version=vl_version)
    if "</script" in bundle.lower():
        raise RuntimeError("the Vega bundle contains '</script', it cannot be inlined")
    return PAGE % bundle


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    sub = args.pop(0) if args[:1] in (["show"], ["diff"]) else "show"
    with tempfile.TemporaryDirectory() as d:
        tpl = Path(d) / "template.html"
        tpl.write_text(template())
        p = subprocess.run(["dvc", "plots", sub, "--html-template", str(tpl), *args])
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
