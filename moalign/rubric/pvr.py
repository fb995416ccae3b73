"""Pointwise verifiable rubrics (PVR, OpenRS): programmatic checks with a verdict per response.

The answer check uses :mod:`moalign.grading`, the grader the accuracy reward and evaluation
use, so a response the reward counts as correct is also verified here.

Registry ``PVR``: each check is ``check(response, **ctx) -> int`` in {-1, 0, +1}:

- ``ground_truth``: +1 the final ``\\boxed{}`` answer matches the reference, 0 no final
  answer (or no reference: nothing to verify), -1 conflict. OpenRS's "partial" has no
  meaning for integer answers, so 0 covers the unverifiable cases.
- ``answer_format``: +1 a non-empty boxed answer, -1 none.
- ``length_limit``: +1 within ``max_words`` words (or ``max_chars`` characters), else -1.
- ``instruction``: yes/no constraints: every ``must_include`` string present and no
  ``must_exclude`` string present (+1), else -1.
- ``non_empty``: +1 the response has visible text, else -1.

:func:`pvr_gate` is OpenRS's gate: when the verifiable verdicts of A and B differ, they decide
and the judge is not asked. Choices made here: a guardrail first (an empty response loses to
a non-empty one); then ``ground_truth`` decides only when exactly one side is *verified*
(+1): a wrong answer vs no answer is left to the judge, since neither is verified; then
the yes/no checks in ``checks`` decide when one side passes and the other fails. Nothing
here executes or evaluates model-written text.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from moalign.grading import answers_match, extract_answer
from moalign.registry import Registry

PVR: Registry[Callable[..., int]] = Registry("verifiable rubric")
DEFAULT_GATE: tuple[str, ...] = ("ground_truth",)
DEFAULT_SCORE: tuple[str, ...] = ("ground_truth", "answer_format")


@PVR.register("ground_truth")
def ground_truth(response: str, answer: str | None = None, **_: Any) -> int:
    """+1 the final answer matches ``answer``, 0 no final answer (or no reference), -1 conflict."""
    pred = extract_answer(response)
    if pred is None or answer is None or str(answer).strip() == "":
        return 0
    return 1 if answers_match(pred, str(answer)) else -1


@PVR.register("answer_format")
def answer_format(response: str, **_: Any) -> int:
    """+1 the response carries a non-empty ``\\boxed{}`` answer, else -1."""
    return 1 if extract_answer(response) is not None else -1


@PVR.register("length_limit")
def length_limit(response: str, max_words: int | None = 400, max_chars: int | None = None, **_: Any) -> int:
    """+1 within the word (and character) limit, else -1."""
    ok = (max_words is None or len(response.split()) <= max_words) and (
        max_chars is None or len(response) <= max_chars)
    return 1 if ok else -1


@PVR.register("instruction")
def instruction(response: str, must_include: Iterable[str] | None = None,
                must_exclude: Iterable[str] | None = None, **_: Any) -> int:
    """Yes/no instruction constraints on literal strings (no model text is evaluated)."""
    ok = all(s in response for s in (must_include or [])) and not any(s in response for s in (must_exclude or []))
    return 1 if ok else -1


@PVR.register("non_empty")
def non_empty(response: str, **_: Any) -> int:
    """+1 the response has visible text, else -1."""
    return 1 if response.strip() else -1


def pvr_scores(response: str, ctx: dict[str, Any], checks: Iterable[str]) -> dict[str, int]:
    """Verdict of each named check on ``response`` (``ctx``: answer, limits, constraints)."""
    return {c: int(PVR.get(c)(response, **ctx)) for c in checks}


def pvr_score(response: str, ctx: dict[str, Any], checks: Iterable[str] = DEFAULT_SCORE) -> float:
    """Mean PVR verdict of ``response`` rescaled from [-1, 1] to [0, 1] (0.5 when no checks)."""
    s = pvr_scores(response, ctx, checks)
    return (sum(s.values()) / len(s) + 1) / 2 if s else 0.5


def pvr_gate(a: str, b: str, ctx: dict[str, Any], checks: Iterable[str] = DEFAULT_GATE) -> str | None:
    """'A' / 'B' when the guardrail or the verifiable checks decide the pair, else None (judge decides)."""
    ea, eb = non_empty(a), non_empty(b)
    if ea != eb:
        return "A" if ea > eb else "B"
    for name in checks:
        va, vb = int(PVR.get(name)(a, **ctx)), int(PVR.get(name)(b, **ctx))
        if va == vb:
            continue
        if name == "ground_truth" and 1 not in (va, vb):
            continue  # wrong vs no answer: neither is verified
        return "A" if va > vb else "B"
    return None
