"""Programmatic features of a response (registry ``FEATURES``) and pointwise verifiable rubrics.

Features feed the offline ``rules`` judge (criteria compare A's and B's feature values).
Pointwise verifiable rubrics (PVR, OpenRS) are checks with a verdict per response:
``ground_truth`` (+1 match, 0 no answer / partial, -1 conflict), ``answer_format``,
``length_limit``, ``instruction`` constraints. :func:`pvr_gate` decides a pair when exactly one
response matches the reference (OpenRS uses PVR as a gate when the verdicts differ; a wrong answer
vs no answer is left to the judge, since neither is verified); empty responses always lose
(a guardrail). Nothing here executes model-written text.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from moalign.registry import Registry
from moalign.rl.rewards import answers_match
from moalign.text import count_steps, extract_answer

FEATURES: Registry = Registry("rubric feature")
PVR: Registry = Registry("verifiable rubric")


def ground_truth(response: str, answer: str | None = None, **_: Any) -> int:
    """+1 the final answer matches, 0 no final answer (or no reference), -1 conflict."""
    pred = extract_answer(response)
    if pred is None or answer is None:
        return 0
    return 1 if answers_match(pred, answer) else -1


FEATURES.register("correct")(ground_truth)
FEATURES.register("has_answer")(lambda r, **_: float(extract_answer(r) is not None))
FEATURES.register("steps")(lambda r, **_: float(count_steps(r)))
FEATURES.register("length")(lambda r, **_: float(len(r.split())))
FEATURES.register("lines")(lambda r, **_: float(len([ln for ln in r.splitlines() if ln.strip()])))


@FEATURES.register("repetition")
def repetition(response: str, **_: Any) -> float:
    """Share of non-empty lines that repeat an earlier line."""
    lines = [ln.strip() for ln in response.splitlines() if ln.strip()]
    return 1.0 - len(set(lines)) / len(lines) if lines else 0.0


@FEATURES.register("states_result")
def states_result(response: str, **_: Any) -> float:
    """The worked steps state the result before the final answer line."""
    ans = extract_answer(response)
    body = response.rsplit("Answer:", 1)[0]
    return float(ans is not None and ans in body)


@FEATURES.register("numbers_consistent")
def numbers_consistent(response: str, **_: Any) -> float:
    """Share of 'x + y = z' / 'x - y = z' / 'x * y = z' steps whose arithmetic is right."""
    eqs = re.findall(r"(\d+) ([+*-]) (\d+)(?: \+ (\d+))? = (\d+)", response)
    if not eqs:
        return 0.0
    ok = 0
    for a, op, b, c, z in eqs:
        a_, b_, c_ = int(a), int(b), int(c or 0)
        v = a_ + b_ if op == "+" else a_ - b_ if op == "-" else a_ * b_
        ok += (v + c_) == int(z)
    return ok / len(eqs)


PVR.register("ground_truth")(ground_truth)
PVR.register("answer_format")(lambda r, **_: 1 if extract_answer(r) is not None else -1)
PVR.register("length_limit")(lambda r, max_words=400, **_: 1 if len(r.split()) <= max_words else -1)


@PVR.register("instruction")
def instruction(response: str, must_include: list[str] | None = None, **_: Any) -> int:
    """Yes/no instruction constraints: every required string appears."""
    return 1 if all(s in response for s in (must_include or [])) else -1


def pvr_scores(response: str, ctx: dict[str, Any], checks: list[str]) -> dict[str, int]:
    return {c: int(PVR.get(c)(response, **ctx)) for c in checks}


def pvr_score(response: str, ctx: dict[str, Any], checks: list[str] = ("ground_truth", "answer_format")) -> float:
    """Mean PVR verdict mapped to [0, 1]."""
    s = pvr_scores(response, ctx, list(checks))
    return (sum(s.values()) / len(s) + 1) / 2 if s else 0.5


def pvr_gate(a: str, b: str, ctx: dict[str, Any]) -> str | None:
    """'A' / 'B' when the verifiable checks decide the pair, else None (the judge decides)."""
    if not a.strip() and b.strip():
        return "B"
    if not b.strip() and a.strip():
        return "A"
    ga, gb = ground_truth(a, **ctx), ground_truth(b, **ctx)
    if ga != gb and 1 in (ga, gb):  # exactly one matches the reference: the check decides
        return "A" if ga > gb else "B"
    return None


FeatureFn = Callable[..., float]
