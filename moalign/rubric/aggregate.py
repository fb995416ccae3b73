"""OpenRS aggregation, done outside the judge.

Each criterion result has a tier, ``chosen`` in {A, B, tie} and a score in -2..2, positive
favouring A. As in OpenRS's ``parse_pair_score``, the sign comes from ``chosen`` and the
magnitude from ``|score|`` (a 'tie' counts 0), so a judge that writes ``chosen: B, score: 2``
still counts against A. Then::

    live  = results with signed score != 0                  (zero-score criteria dropped)
    fatal = [s for live results of tier fatal]
    score = sum(fatal)                      if fatal         (veto: fatal scores only)
          = sum(w_t * s) / sum(w_t)         otherwise        (w: core 5, important 2, highlight 1)
          = 0                               when nothing is live

The pair is judged in both orders, (A, B) and (B, A); :func:`verdict_both_orders` combines
the two scores with OpenRS's rule (``evaluate_pair`` in OpenRS's ``evaluator.py``, threshold
``min_score`` = 0 by default)::

    A wins  if score_ab >  m and score_ba <= -m     (forward strict, swapped non-strict)
    B wins  if score_ab <= -m and score_ba >  m     (the mirror)
    tie     otherwise

With m = 0: ``(1, 0)`` is a win for A and ``(0, 1)`` a win for B (a preference given when the
winner sat in the first slot, not contradicted by the other order), while ``(0, -1)`` and
``(-1, 0)`` are ties (a preference only from the second slot is not enough), and ``(1, 1)``
/ ``(-1, -1)`` (both orders favour the same slot: position bias) are ties. The earlier rule
here needed both orders strict, so ``(1, 0)`` was a tie; we follow OpenRS so that agreement
numbers are comparable with theirs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

TIER_NAMES = ("fatal", "core", "important", "highlight")
DEFAULT_WEIGHTS: dict[str, float] = {"core": 5.0, "important": 2.0, "highlight": 1.0}


@dataclass(frozen=True)
class CriterionResult:
    """One criterion compared on one ordered pair (A, B)."""

    name: str
    tier: str  # fatal | core | important | highlight
    chosen: str  # "A" | "B" | "tie"
    score: int  # -2..2, positive favours A
    reason: str = ""

    def __post_init__(self) -> None:
        if self.tier not in TIER_NAMES:
            raise ValueError(f"criterion {self.name!r}: unknown tier {self.tier!r}; valid: {', '.join(TIER_NAMES)}")
        if self.chosen not in ("A", "B", "tie"):
            raise ValueError(f"criterion {self.name!r}: chosen must be A, B or tie, got {self.chosen!r}")
        if not isinstance(self.score, int) or not -2 <= self.score <= 2:
            raise ValueError(f"criterion {self.name!r}: score must be an integer in -2..2, got {self.score!r}")

    @property
    def signed(self) -> int:
        """Score with the sign of ``chosen`` (OpenRS): +|s| for A, -|s| for B, 0 for a tie."""
        return abs(self.score) if self.chosen == "A" else -abs(self.score) if self.chosen == "B" else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aggregate(results: Iterable[CriterionResult], tier_weights: Mapping[str, Any] | None = None) -> float:
    """Signed pair score (positive favours A): fatal veto, else the tier-weighted mean of live scores."""
    w = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in (tier_weights or {}).items() if k != "fatal"}}
    live = [r for r in results if r.signed != 0]
    fatal = [r.signed for r in live if r.tier == "fatal"]
    if fatal:
        return float(sum(fatal))
    num = sum(w[r.tier] * r.signed for r in live)
    den = sum(w[r.tier] for r in live)
    return num / den if den else 0.0


def verdict_both_orders(score_ab: float, score_ba: float, min_score: float = 0.0) -> str:
    """OpenRS's two-order rule: 'A' if score_ab > m and score_ba <= -m, 'B' if score_ab <= -m and score_ba > m.

    ``score_ab`` judges (A, B), ``score_ba`` judges (B, A); both are positive when the response
    in the first slot is better. Anything else is a 'tie'.
    """
    m = float(min_score)
    if score_ab > m and score_ba <= -m:
        return "A"
    if score_ab <= -m and score_ba > m:
        return "B"
    return "tie"


def swap(results: Iterable[CriterionResult]) -> list[CriterionResult]:
    """The same comparisons seen from the other order (A <-> B), for inspection."""
    flip = {"A": "B", "B": "A", "tie": "tie"}
    return [CriterionResult(r.name, r.tier, flip[r.chosen], -r.score, r.reason) for r in results]
