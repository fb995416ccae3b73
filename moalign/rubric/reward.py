"""The ``rubric`` objective for RL: pairwise judgement against an anchor from the group, plus PVR.

For each group of ``group_size`` rollouts of one prompt, one anchor is drawn (the first
rollout, or a seeded random one) and every rollout is judged against it (O(N) judge calls per
group, not O(N^2)): win 1, tie 0.5, loss 0. The reward is
``(1 - pvr_weight) * pairwise + pvr_weight * pvr`` with the PVR score in [0, 1].
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from moalign.rubric.features import pvr_score
from moalign.rubric.judges import judge_pair, make_judge
from moalign.rubric.schema import load_meta_rubric

VALUE = {"A": 1.0, "tie": 0.5, "B": 0.0}


class RubricReward:
    def __init__(self, rubric_path: str = "rubrics/refined.yaml", judge: str = "rules", anchor: str = "first",
                 pvr_weight: float = 0.5, seed: int = 0, **judge_opts: Any) -> None:
        if not Path(rubric_path).exists():
            raise FileNotFoundError(f"rubric objective: {rubric_path!r} not found. Fix: run `dvc repro rubric` first")
        if anchor not in ("first", "random"):
            raise ValueError(f"train.reward_options.rubric.anchor = {anchor!r}; valid: first, random")
        self.rubric = load_meta_rubric(rubric_path)
        self.judge = make_judge(judge, **judge_opts)
        self.anchor, self.pvr_weight, self.rng = anchor, pvr_weight, random.Random(seed)
        self.calls = 0

    def __call__(self, completions: list[str], prompts: list[str] | None = None, answer: list[str] | None = None,
                 group_size: int = 1, **_: Any) -> list[float]:
        n = len(completions)
        prompts = prompts or [""] * n
        answer = answer or [None] * n
        out = []
        for g in range(0, n, group_size):
            idx = list(range(g, min(g + group_size, n)))
            a = idx[0] if self.anchor == "first" else self.rng.choice(idx)
            for i in idx:
                if i == a:
                    pair = 0.5
                else:
                    self.calls += 1
                    pair = VALUE[judge_pair(self.judge, prompts[i], completions[i], completions[a], self.rubric,
                                            answer[i])["verdict"]]
                pvr = pvr_score(completions[i], {"answer": answer[i]})
                out.append((1 - self.pvr_weight) * pair + self.pvr_weight * pvr)
        return out


def make_rubric_reward(**opts: Any) -> RubricReward:
    return RubricReward(**opts)
