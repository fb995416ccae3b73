"""Pointwise baseline judge: one scalar per response from the same meta-rubric, compared afterwards.

OpenRS's central comparison is pairwise adaptive judging against pointwise scalar scoring
(a scalar reward model, or an LLM grading each answer alone). This module is the pointwise
side for the offline ``rules`` backend, built from the *same* rubric as the pairwise judge
(:mod:`moalign.rubric.judges`), so the two differ only in how they judge:

- each active criterion with a ``check`` scores the response alone, in [-1, 1]::

      s_c(x) = direction * f(x)                     if the feature is bounded in [-1, 1]
      s_c(x) = direction * f(x) / (|f(x)| + k_f)   otherwise (counts: words, steps, ...)

  with ``k_f`` the feature's typical magnitude in the arithmetic world (:data:`SCALE`: a
  worked solution has ~20 words of steps, ~4 lines), so a count saturates smoothly instead of
  dominating;
- one scalar per response, tier-weighted like the pairwise aggregation, fatal criteria as a
  veto (their scores times :data:`FATAL` = 10, larger than the spread of the rest)::

      S(x) = FATAL * sum_{fatal} s_c(x) + sum_{c not fatal} w_t(c) s_c(x) / sum_{c not fatal} w_t(c)

- a pair is compared afterwards: A if S(A) > S(B), B if S(A) < S(B), tie if equal (within
  1e-9); the same PVR gate as the pairwise judge runs first, so both judges see the same
  undecided pairs.

What pointwise cannot use, by construction: margins (there is no second response to be within
a margin of; ``margin`` and ``relative`` are ignored) and the pairwise rule that only criteria
on which A and B differ are live (every criterion always contributes). Departure from OpenRS:
their pointwise baseline is an LLM or a trained scalar reward model; here it is the rubric's
own checks scored alone, so the comparison isolates pairwise vs pointwise aggregation.
"""

from __future__ import annotations

from typing import Any, Iterable

from moalign.rubric.judges import feature_value
from moalign.rubric.pvr import DEFAULT_GATE, pvr_gate
from moalign.rubric.schema import MetaRubric

FATAL = 10.0
BOUNDED = {"answer_matches_reference", "answer_conflict", "has_answer", "repetition", "states_result",
           "numbers_consistent"}
SCALE: dict[str, float] = {"length": 20.0, "chars": 100.0, "lines": 4.0, "steps": 4.0, "over_limit": 10.0,
                           "trailing_text": 3.0}
VALUE = {"A": 1.0, "B": 0.0}


def criterion_scores(rubric: MetaRubric, response: str, answer: str | None = None) -> dict[str, float]:
    """s_c(response) in [-1, 1] for every active criterion with a check (module docstring)."""
    out = {}
    for c in rubric.criteria:
        if c.check is None:
            continue
        v = feature_value(c, response, answer)
        if c.check not in BOUNDED:
            v = v / (abs(v) + SCALE.get(c.check, 1.0))
        out[c.name] = c.direction * v
    return out


def pointwise_score(rubric: MetaRubric, response: str, answer: str | None = None) -> float:
    """S(response): fatal veto (x FATAL) plus the tier-weighted mean of the other criteria."""
    tiers = {c.name: c.tier for c in rubric.criteria}
    w = rubric.weights()
    scores = criterion_scores(rubric, response, answer)
    fatal = sum(s for n, s in scores.items() if tiers[n] == "fatal")
    rest = [(w[tiers[n]], s) for n, s in scores.items() if tiers[n] != "fatal"]
    den = sum(wt for wt, _ in rest)
    return FATAL * fatal + (sum(wt * s for wt, s in rest) / den if den else 0.0)


def pointwise_pair(a: str, b: str, rubric: MetaRubric, ground_truth: str | None = None,
                   gate_checks: Iterable[str] = DEFAULT_GATE, ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    """Verdict of the pointwise judge on (A, B): PVR gate, then S(A) vs S(B)."""
    gate = pvr_gate(a, b, {"answer": ground_truth, **(ctx or {})}, gate_checks)
    if gate is not None:
        return {"verdict": gate, "gate": True, "score_a": None, "score_b": None}
    sa, sb = pointwise_score(rubric, a, ground_truth), pointwise_score(rubric, b, ground_truth)
    verdict = "A" if sa - sb > 1e-9 else "B" if sb - sa > 1e-9 else "tie"
    return {"verdict": verdict, "gate": False, "score_a": sa, "score_b": sb}


def pointwise_agreement(rubric: MetaRubric, pairs: list[dict], tie_credit: float = 0.5,
                        gate_checks: Iterable[str] = DEFAULT_GATE) -> float | None:
    """Mean credit against the labels (chosen as A): 1 agree, ``tie_credit`` tie, 0 disagree; None without pairs."""
    if not pairs:
        return None
    v = [pointwise_pair(p["chosen"], p["rejected"], rubric, p.get("answer"), gate_checks)["verdict"] for p in pairs]
    return sum(VALUE.get(x, tie_credit) for x in v) / len(pairs)
