"""Held-out phrasings (moalign/experiments/phrasings.py): the same arithmetic in sentences no stage trains on."""

from __future__ import annotations

import re

from moalign.data.arith import TEMPLATES
from moalign.experiments.phrasings import HELDOUT, heldout_rows


def _numbers(q: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", q)]


def test_heldout_rows_are_distinct_correct_and_not_the_projects_templates():
    rows = heldout_rows(200, 2, {"add": 1, "sub": 1, "mul": 1, "two": 0.5}, seed=3)
    assert len(rows) == 200 and len({r["question"] for r in rows}) == 200
    own = [t.split("{")[0] for t in TEMPLATES["en"].values()]
    for r in rows:
        assert not any(r["question"].startswith(p) for p in own)  # no project template's sentence
        n = _numbers(r["question"])
        want = {"add": lambda: n[0] + n[1], "sub": lambda: n[0] - n[1], "mul": lambda: n[0] * n[1],
                "two": lambda: n[0] + n[1] - n[2]}[r["op"]]()
        assert r["answer"] == str(want) and want >= 0
    used = {t for op in HELDOUT for t in HELDOUT[op] for r in rows if r["question"].startswith(t.split("{")[0])}
    assert len(used) == sum(len(v) for v in HELDOUT.values())  # every phrasing is drawn
    assert heldout_rows(5, 2, {"add": 1}, seed=3) == heldout_rows(5, 2, {"add": 1}, seed=3)
    assert {r["op"] for r in heldout_rows(20, 2, {"mul": 1})} == {"mul"}
