"""The ``rubric`` objective for RL: pairwise judgement against an anchor from the group, plus PVR.

Completions arrive as consecutive groups of ``group_size`` rollouts of one prompt. Per group
one anchor is drawn (the first rollout, or a seeded random one) and every other rollout is
judged against it with :func:`judge_pair` (PVR gate, both orders): N - 1 pair judgements per
group of N, O(N) rather than the O(N^2) of a round robin. Win 1, tie 0.5, loss 0; the anchor
itself scores 0.5 (a tie with itself, no judge call). The reward is::

    r = (1 - pvr_weight) * pairwise + pvr_weight * pvr,   pvr = mean PVR verdict rescaled to [0, 1]

so it lies in [0, 1]. Departure from OpenRS: the anchor scores 0.5 instead of being re-judged.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from moalign.rubric.judges import judge_pair, make_judge
from moalign.rubric.pvr import DEFAULT_GATE, DEFAULT_SCORE, pvr_score
from moalign.rubric.schema import load_meta_rubric

VALUE = {"A": 1.0, "tie": 0.5, "B": 0.0}


class RubricReward:
    """Callable reward ``f(completions, *, prompts, answer, group_size, **kw) -> list[float]`` in [0, 1]."""

    __name__ = "rubric"

    def __init__(self, rubric_path: str = "rubrics/refined.yaml", judge: str = "rules", anchor: str = "first",
                 pvr_weight: float = 0.5, pvr_checks: Sequence[str] = DEFAULT_SCORE,
                 gate_checks: Sequence[str] = DEFAULT_GATE, seed: int = 0, **judge_opts: Any) -> None:
        if not Path(rubric_path).exists():
            raise FileNotFoundError(f"rubric objective: {rubric_path!r} not found. Fix: run `dvc repro rubric` first")
        if anchor not in ("first", "random"):
            raise ValueError(f"train.reward_options.rubric.anchor = {anchor!r}; valid: first, random")
        if not 0.0 <= pvr_weight <= 1.0:
            raise ValueError(f"train.reward_options.rubric.pvr_weight = {pvr_weight}; must be in [0, 1]")
        self.rubric = load_meta_rubric(rubric_path)
        self.judge = make_judge(judge, **judge_opts)
        self.anchor, self.pvr_weight, self.rng = anchor, pvr_weight, random.Random(seed)
        self.pvr_checks, self.gate_checks = tuple(pvr_checks), tuple(gate_checks)
        self.calls = 0  # pair judgements so far (judge_pair calls)

    def __call__(self, completions: list[str], *, prompts: list[str] | None = None,
                 answer: list[str] | None = None, group_size: int = 1, **_: Any) -> list[float]:
        n = len(completions)
        if group_size < 1 or n % group_size:
            raise ValueError(f"rubric reward: {n} completions are not whole groups of group_size={group_size}")
        prompts = list(prompts) if prompts is not None else [""] * n
        answer = list(answer) if answer is not None else [None] * n
        out = []
        for g in range(0, n, group_size):
            idx = range(g, g + group_size)
            a = g if self.anchor == "first" else self.rng.choice(list(idx))
            for i in idx:
                if i == a:
                    pair = 0.5
                else:
                    self.calls += 1
                    res = judge_pair(self.judge, prompts[i], completions[i], completions[a], self.rubric,
                                     answer[i], self.gate_checks)
                    pair = VALUE[res["verdict"]]
                pvr = pvr_score(completions[i], {"answer": answer[i]}, self.pvr_checks)
                out.append((1 - self.pvr_weight) * pair + self.pvr_weight * pvr)
        return out


def make_rubric_reward(rubric_path: str = "rubrics/refined.yaml", judge: str = "rules", anchor: str = "first",
                       pvr_weight: float = 0.5, **opts: Any) -> RubricReward:
    """Build the rubric reward (see :class:`RubricReward`); ``opts`` go to the reward and judge backend."""
    return RubricReward(rubric_path=rubric_path, judge=judge, anchor=anchor, pvr_weight=pvr_weight, **opts)
