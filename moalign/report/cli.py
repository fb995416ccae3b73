"""Render the README's and benchmarks/README's result tables from the committed result files.

Every table of numbers in the two READMEs sits between markers ``<!-- report:NAME -->`` and
``<!-- /report:NAME -->`` and is produced here from a committed file (the file is named under the
table). ``python -m moalign.report`` rewrites the blocks; ``--check`` exits 1 and names the blocks
that differ (tests/test_report.py runs it in CI), so a README number cannot drift from its file; it
also recomputes the files derived from raw records (the weighting study's summary.json and
chosen.json: :func:`derived`) and fails when a record or a derived file was edited by hand.

    python -m moalign.report               # or: moalign report, make report
    python -m moalign.report --check
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

from moalign.report import blocks
from moalign.report.records import RECORD_BLOCKS

ROOT = Path(__file__).resolve().parents[2]  # the checkout (editable install): README.md, benchmarks/results
# every readme's blocks: README's (blocks.py) and benchmarks/README's (blocks.py + records.py, current.py)
BLOCKS: dict[str, dict[str, Callable[[Path], str]]] = {
    **blocks.BLOCKS, "benchmarks/README.md": {**blocks.BLOCKS["benchmarks/README.md"], **RECORD_BLOCKS}}

MARK = re.compile(r"(<!-- report:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /report:(?P=name) -->)", re.S)


def render(text: str, blocks: dict[str, Callable[[Path], str]], root: Path) -> tuple[str, list[str]]:
    """(new text, names of the blocks whose content changed); unknown block names are an error."""
    changed: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in blocks:
            raise SystemExit(f"unknown report block {name!r}; known: {', '.join(sorted(blocks))}")
        body = blocks[name](root).rstrip("\n") + "\n"
        if body != m.group("body"):
            changed.append(name)
        return m.group(1) + body + m.group(4)

    return MARK.sub(sub, text), changed


STUDY = "benchmarks/results/weighting_study"
STUDIES = [STUDY, "results/smollm2-study", "results/smollm2-study-bf16", "results/toy-sft-seeds",
           "results/toy-paper-unsaturated"]  # every committed study whose derived files --check recomputes


def _close(a, b, tol: float = 1e-9) -> bool:
    """Equal JSON values, floats to a relative ``tol``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


def derived(root: Path) -> list[str]:
    """Committed files computed from raw records, recomputed from them: the paths that differ.

    In each study folder (:data:`STUDIES`): ``calibration/chosen.json`` = ``moalign.study.choose(calibration/runs.jsonl)``;
    ``summary.json`` = ``moalign.study_summary.summarise`` of ``study/runs.jsonl`` (with that chosen.json and the
    ``start/runs.jsonl`` records). A hand edit of a raw record or of a derived file fails the check.
    """
    from moalign import study_summary
    from moalign.runlog import read_runs
    from moalign.study import choose

    bad = []
    for rel in STUDIES:
        out = root / rel
        cal, chosen = out / "calibration/runs.jsonl", out / "calibration/chosen.json"
        if chosen.exists():
            runs = read_runs(cal)
            if not runs or not _close(json.loads(json.dumps(choose(runs))), json.loads(chosen.read_text())):
                bad.append(f"{rel}/calibration/chosen.json")
        if (out / "summary.json").exists():
            if not (out / "study/runs.jsonl").exists() or not _close(study_summary.summarise(out, write=False),
                                                                     json.loads((out / "summary.json").read_text())):
                bad.append(f"{rel}/summary.json")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m moalign.report", description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a block differs from its files")
    ap.add_argument("--root", default=str(ROOT))
    a = ap.parse_args(argv)
    root = Path(a.root)
    stale = []
    for rel, blocks in BLOCKS.items():
        path = root / rel
        text, changed = render(path.read_text(), blocks, root)
        stale += [f"{rel}:{n}" for n in changed]
        if changed and not a.check:
            path.write_text(text)
    if a.check and stale:
        print("stale report blocks (run `python -m moalign.report`): " + ", ".join(stale), file=sys.stderr)
        return 1
    bad = derived(root) if a.check else []
    if bad:
        print("files that their raw records no longer give (rerun `moalign study summary --out <that folder>`, "
              "or restore the records): " + ", ".join(bad), file=sys.stderr)
        return 1
    print(("rewrote: " + ", ".join(stale)) if stale and not a.check else "report blocks up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
