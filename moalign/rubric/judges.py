"""Pairwise adaptive judges (registry ``JUDGES``) and :func:`judge_pair`.

Every backend answers ``judge(query, a, b, rubric, ground_truth=None) -> list[CriterionResult]``:
it instantiates criteria from the meta-rubric conditioned on how A and B differ and compares
them criterion by criterion. The verdict is aggregated outside the judge
(:mod:`moalign.rubric.aggregate`), in both orders, after the PVR gate (:func:`judge_pair`).

- ``rules`` (default; offline, deterministic): an active criterion with a ``check`` is
  instantiated only when its feature differs between A and B by more than its ``margin``
  (that is "conditioned on how A and B differ"); it is scored +-1, or +-2 past twice the
  margin, signed by ``direction``; at most ``enforcement.max_criteria`` are kept, highest
  tiers first. Departure from OpenRS: no language model writes the criteria, and criteria
  without a ``check`` (prose only) are skipped; the rubric's checks, tiers, weights,
  directions, margins and params fully decide the verdict, which is what evolution optimises.
- ``openai`` / ``hf``: LLM backends in :mod:`moalign.rubric.llm` (same prompt and parser).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Protocol

from moalign.errors import ServiceError
from moalign.registry import Registry
from moalign.rubric.aggregate import CriterionResult, aggregate, verdict_both_orders
from moalign.rubric.features import FEATURES
from moalign.rubric.pvr import DEFAULT_GATE, pvr_gate
from moalign.rubric.schema import Criterion, MetaRubric

JUDGES: Registry[Any] = Registry("judge backend", lazy={"openai": "moalign.rubric.llm", "hf": "moalign.rubric.llm"})
TIER_ORDER = {"fatal": 0, "core": 1, "important": 2, "highlight": 3}


class JudgeError(ServiceError, RuntimeError):
    """The judge could not produce a usable verdict (configuration, network or unparsable replies)."""


class Judge(Protocol):
    """What every backend provides."""

    def judge(self, query: str, a: str, b: str, rubric: MetaRubric,
              ground_truth: str | None = None) -> list[CriterionResult]: ...


@lru_cache(maxsize=200_000)
def _feature(check: str, response: str, answer: str | None, params: tuple) -> float:
    return float(FEATURES.get(check)(response, answer=answer, **dict(params)))


def feature_value(c: Criterion, response: str, answer: str | None) -> float:
    """Value of criterion ``c``'s check on ``response`` (cached)."""
    assert c.check is not None
    return _feature(c.check, response, answer, tuple(sorted((k, _hashable(v)) for k, v in c.params.items())))


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def compare(c: Criterion, a: str, b: str, answer: str | None) -> CriterionResult | None:
    """Instantiate ``c`` on the ordered pair (A, B); None when A and B do not differ on it."""
    fa, fb = feature_value(c, a, answer), feature_value(c, b, answer)
    d = c.direction * (fa - fb)
    if c.relative:
        d /= max(abs(fa), abs(fb), 1e-9)
    if abs(d) <= c.margin or d == 0:
        return None
    mag = 2 if c.margin > 0 and abs(d) > 2 * c.margin else 1
    return CriterionResult(c.name, c.tier, "A" if d > 0 else "B", mag if d > 0 else -mag,
                           f"{c.check}: A={fa:g} B={fb:g}")


@JUDGES.register("rules")
class RulesJudge:
    """Offline deterministic judge: criteria from programmatic feature differences (see module doc)."""

    def __init__(self, **_: Any) -> None:
        self.calls = 0

    def judge(self, query: str, a: str, b: str, rubric: MetaRubric,
              ground_truth: str | None = None) -> list[CriterionResult]:
        self.calls += 1
        out = [r for c in rubric.criteria if c.check is not None
               if (r := compare(c, a, b, ground_truth)) is not None]
        out.sort(key=lambda r: TIER_ORDER[r.tier])  # stable: rubric order within a tier
        return out[: rubric.enforcement.max_criteria]


def make_judge(name: str, **opts: Any) -> Judge:
    """Build backend ``name`` from the registry (unknown names list the valid ones)."""
    return JUDGES.get(name)(**opts)


def _table(ab: list[CriterionResult], ba: list[CriterionResult]) -> list[dict[str, Any]]:
    """Per-criterion rows in A/B terms for both orders (the (B, A) order is mapped back)."""
    rows: dict[str, dict[str, Any]] = {}
    for r in ab:
        rows[r.name] = {"name": r.name, "tier": r.tier, "ab": r.signed, "ba": 0, "reason": r.reason}
    for r in ba:
        row = rows.setdefault(r.name, {"name": r.name, "tier": r.tier, "ab": 0, "ba": 0, "reason": r.reason})
        row["ba"] = -r.signed  # positive still favours the original A
    return list(rows.values())


def judge_pair(judge: Judge, query: str, a: str, b: str, rubric: MetaRubric, ground_truth: str | None = None,
               gate_checks: Iterable[str] = DEFAULT_GATE, ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    """PVR gate, then the judge in both orders, aggregated outside it.

    Returns ``{"verdict": "A"|"B"|"tie", "gate": bool, "score_ab", "score_ba", "criteria": [...]}``;
    ``criteria`` rows hold each criterion's tier and signed score in both orders (A's view).
    """
    gate = pvr_gate(a, b, {"answer": ground_truth, **(ctx or {})}, gate_checks)
    if gate is not None:
        return {"verdict": gate, "gate": True, "score_ab": None, "score_ba": None, "criteria": []}
    ab = judge.judge(query, a, b, rubric, ground_truth)
    ba = judge.judge(query, b, a, rubric, ground_truth)
    w = rubric.weights()
    s_ab, s_ba = aggregate(ab, w), aggregate(ba, w)
    return {"verdict": verdict_both_orders(s_ab, s_ba), "gate": False, "score_ab": s_ab, "score_ba": s_ba,
            "criteria": _table(ab, ba)}

