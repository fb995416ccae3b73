"""Programmatic features of a response (registry ``FEATURES``) compared by the ``rules`` judge.

Each feature is ``f(response, answer=None, **params) -> float``; a criterion with ``check: f``
compares ``f(A)`` with ``f(B)``. PVR checks live in :mod:`moalign.rubric.pvr`.
Nothing here executes model-written text (equations are checked by regex + integer maths).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from moalign.grading import extract_answer
from moalign.registry import Registry
from moalign.rubric.pvr import ground_truth
from moalign.text import count_steps

FeatureFn = Callable[..., float]
FEATURES: Registry[FeatureFn] = Registry("rubric feature")
EQ_RE = re.compile(r"(-?\d+)\s*([+*x×-])\s*(-?\d+)\s*=\s*(-?\d+)")


@FEATURES.register("answer_matches_reference")
def answer_matches_reference(response: str, answer: str | None = None, **_: Any) -> float:
    """+1 the boxed answer matches the reference, 0 none / no reference, -1 conflict."""
    return float(ground_truth(response, answer=answer))


@FEATURES.register("answer_conflict")
def answer_conflict(response: str, answer: str | None = None, **_: Any) -> float:
    """1 when the boxed answer conflicts with the reference, else 0 (use with direction -1)."""
    return float(ground_truth(response, answer=answer) == -1)


@FEATURES.register("has_answer")
def has_answer(response: str, **_: Any) -> float:
    """1 when a non-empty ``\\boxed{}`` answer is present."""
    return float(extract_answer(response) is not None)


@FEATURES.register("steps")
def steps(response: str, cap: float | None = None, **_: Any) -> float:
    """Number of step markers (capped at ``cap`` when given)."""
    n = float(count_steps(response))
    return min(n, float(cap)) if cap is not None else n


@FEATURES.register("length")
def length(response: str, **_: Any) -> float:
    """Whitespace-separated words."""
    return float(len(response.split()))


@FEATURES.register("chars")
def chars(response: str, **_: Any) -> float:
    """Characters, surrounding whitespace excluded."""
    return float(len(response.strip()))


@FEATURES.register("lines")
def lines(response: str, **_: Any) -> float:
    """Non-empty lines."""
    return float(len([ln for ln in response.splitlines() if ln.strip()]))


@FEATURES.register("over_limit")
def over_limit(response: str, max_words: float = 120, **_: Any) -> float:
    """Words beyond ``max_words`` (0 within the limit)."""
    return max(0.0, len(response.split()) - float(max_words))


@FEATURES.register("repetition")
def repetition(response: str, **_: Any) -> float:
    """Share of non-empty lines that repeat an earlier line verbatim."""
    ls = [ln.strip() for ln in response.splitlines() if ln.strip()]
    return 1.0 - len(set(ls)) / len(ls) if ls else 0.0


@FEATURES.register("states_result")
def states_result(response: str, **_: Any) -> float:
    """1 when the worked steps state the final result before the answer line."""
    ans = extract_answer(response)
    body = response.rsplit("Answer:", 1)[0]
    return float(ans is not None and ans in body)


@FEATURES.register("numbers_consistent")
def numbers_consistent(response: str, **_: Any) -> float:
    """Share of ``x op y = z`` equations (op in + - * x) whose integer arithmetic is right; 0 without any."""
    eqs = EQ_RE.findall(response)
    if not eqs:
        return 0.0
    ok = 0
    for a, op, b, z in eqs:
        x, y = int(a), int(b)
        v = x + y if op == "+" else x - y if op == "-" else x * y
        ok += v == int(z)
    return ok / len(eqs)


@FEATURES.register("trailing_text")
def trailing_text(response: str, **_: Any) -> float:
    """Words after the last boxed answer (rambling past the answer)."""
    idx = response.rfind("\\boxed{")
    if idx < 0:
        return 0.0
    close = response.find("}", idx)
    return float(len(response[close + 1:].split())) if close >= 0 else 0.0
