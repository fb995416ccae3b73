"""OpenRS aggregation, done outside the judge.

Each criterion result has a tier, ``chosen`` in {A, B, tie} and a signed score in -2..2
(positive favours A). Zero-score criteria are dropped. If any fatal criterion is non-zero,
the verdict is the sum of the fatal scores only (veto); otherwise sum(w * s) / sum(w) with
the tier weights (core 5, important 2, highlight 1). The pair is judged in both orders;
consistent verdicts give a win/loss, inconsistent ones a tie.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class CriterionResult:
    name: str
    tier: str
    chosen: str  # "A" | "B" | "tie"
    score: int  # -2..2, positive favours A

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_WEIGHTS = {"core": 5.0, "important": 2.0, "highlight": 1.0}


def aggregate(results: list[CriterionResult], tier_weights: dict[str, float] | None = None) -> float:
    """Signed pair score: fatal veto, else tier-weighted mean of non-zero scores (0 when none)."""
    w = tier_weights or DEFAULT_WEIGHTS
    live = [r for r in results if r.score != 0]
    fatal = [r.score for r in live if r.tier == "fatal"]
    if fatal:
        return float(sum(fatal))
    num = sum(w.get(r.tier, 0.0) * r.score for r in live)
    den = sum(w.get(r.tier, 0.0) for r in live)
    return num / den if den else 0.0


def verdict_both_orders(score_ab: float, score_ba: float) -> str:
    """'A' if A wins in both orders, 'B' if B does, else 'tie'."""
    if score_ab > 0 and score_ba < 0:
        return "A"
    if score_ab < 0 and score_ba > 0:
        return "B"
    return "tie"
