"""Evaluate core: objective vectors of policies on held-out data, and the Pareto report.

Every objective is maximised in [0, 1]: accuracy and clarity (and rubric) are mean rewards of
greedy decodes; conciseness is ``1 - mean_length / max_new_tokens`` (the paper reports raw
length, minimised; we flip it so a single maximisation convention serves moocore, the
dominance table and the plots). The mean length in tokens is reported beside it.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
from pydantic import Field

from moalign.data import rows_per_domain
from moalign.generation import BACKENDS
from moalign.pareto import dominance_table, excluded_by_reference, hypervolume, non_dominated, steps_to_dominance
from moalign.schema import StrictModel
from moalign.text import format_prompt


class EvaluateConfig(StrictModel):
    """evaluate: score every policy on the test split and build the Pareto report."""

    test_rows: int = Field(64, ge=1, description="Test rows per domain.")
    max_new_tokens: int = Field(128, ge=1, description="Greedy decoding budget (use train.max_new_tokens).")
    reference: Literal["sft"] | list[float] = Field(
        "sft", description="Hypervolume reference point: 'sft' (the SFT policy's point) or explicit coordinates."
    )
    ref_margin: float = Field(0.05, ge=0, description="With reference 'sft': subtract this from the SFT point "
                              "(a saturated objective would otherwise zero every hypervolume).")
    baseline: str = Field("fixed", description="Strategy whose final policy is the steps-to-dominance target.")
    match_tol: float = Field(0.0, ge=0, description="Tolerance for 'matches' in steps-to-dominance.")
    include_snapshots: bool = Field(True, description="Also score intermediate snapshots (steps-to-dominance).")


def pick_rows(rows: list[dict], per_domain: int) -> list[dict]:
    """Test rows to score (``per_domain`` per domain); an empty test split is an error."""
    out = rows_per_domain(rows, per_domain)
    if not out:
        raise ValueError("the test split is empty. Fix: regenerate data/prepared with test rows (prepare stage)")
    return out


def score_policy(model, tok, rows: list[dict], objectives: list[str], fns: dict[str, Callable],
                 max_new_tokens: int, backend: str = "hf") -> dict[str, object]:
    """Objective means overall and per domain, plus mean length, for one policy (greedy decoding).

    The train stage's validation points come from here too, so validation and evaluation share
    one definition of the objective vector.
    """
    gens = BACKENDS.get(backend)(model, tok, [format_prompt(r["question"]) for r in rows], max_new_tokens, False)
    cols = {"answer": [r["answer"] for r in rows], "prompts": [format_prompt(r["question"]) for r in rows],
            "domain": [r["domain"] for r in rows], "completion_lengths": gens.lengths, "group_size": 1}
    per: dict[str, np.ndarray] = {}
    for o in objectives:
        if o.startswith("conciseness"):
            per[o] = 1.0 - np.asarray(gens.lengths, dtype=float) / max_new_tokens
        else:
            per[o] = np.asarray(fns[o](gens.texts, **cols), dtype=float)
    lengths = np.asarray(gens.lengths, dtype=float)
    doms = np.asarray([r["domain"] for r in rows])
    out: dict[str, object] = {"point": [float(per[o].mean()) for o in objectives], "length": float(lengths.mean())}
    out["domains"] = {
        d: {**{o: float(per[o][doms == d].mean()) for o in objectives}, "length": float(lengths[doms == d].mean())}
        for d in sorted(set(doms))
    }
    out["samples"] = [{"prompt": r["question"], "completion": t} for r, t in list(zip(rows, gens.texts))[:5]]
    return out


def pareto_report(finals: dict[str, list[float]], curves: dict[str, list[tuple[int, list[float]]]],
                  ref: list[float], baseline: str, tol: float) -> dict[str, object]:
    """Non-dominated set, per-policy hypervolume, dominance table and steps-to-dominance."""
    names = list(finals)
    pts = np.asarray([finals[n] for n in names])
    ref_a = np.asarray(ref, dtype=float)
    nd = non_dominated(pts)
    excluded = excluded_by_reference(pts, ref_a)
    report: dict[str, object] = {
        "reference": list(map(float, ref_a)),
        "non_dominated": [n for n, m in zip(names, nd) if m],
        "excluded_by_reference": [n for n, m in zip(names, excluded) if m],
        "hypervolume": {n: float(hypervolume(pts[i : i + 1], ref_a)) for i, n in enumerate(names)},
        "hypervolume_front": float(hypervolume(pts, ref_a)),
        "dominance": dominance_table(names, pts),
    }
    target = finals.get(baseline)
    report["steps_to_dominance"] = {
        n: (steps_to_dominance(c, np.asarray(target), tol=tol) if target is not None else None)
        for n, c in curves.items()
    }
    report["hypervolume_curve"] = {
        n: [(s, float(hypervolume(np.asarray([p]), ref_a))) for s, p in c] for n, c in curves.items()
    }
    return report
