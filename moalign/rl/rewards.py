"""Reward functions in TRL's convention ``f(completions, **columns) -> list[float]``, all in [0, 1], maximised.

Registry ``REWARDS`` holds *factories*; :func:`make_reward` builds the callable (some rewards
keep state) and names it (``fn.__name__``, which TRL uses for ``rewards/<name>/mean``).
Columns passed by the trainer: ``answer`` (references), ``completion_lengths`` (tokens),
``prompts``, ``domain``, ``group_size``; unknown columns are ignored.

- ``accuracy``: 1 if the last ``\\boxed{}`` (braces matched) equals the reference, graded by
  :func:`moalign.grading.grade` (the grader rubric checks and evaluation use too). Fast
  path: both sides normalise to numbers and compare as strings; if both are numbers and
  differ the answer is wrong; otherwise math-verify decides (``\\frac{1}{2}`` vs ``0.5``);
  any parser error counts as wrong. Outside the main thread (Prefect task runners)
  math-verify's signal-based timeouts are unavailable, so they are switched off there.
- ``conciseness`` (the paper's definition): 1 if the completion has fewer tokens than the
  running mean length of all training rollouts seen so far, else 0. Decision: the running
  sum/count are updated with the current batch *first*, then each length is compared with
  the updated mean, so the first batch compares against its own mean instead of an undefined
  one, and the reward never depends on the order of rollouts within a batch. Without a
  ``completion_lengths`` column, whitespace-separated words stand in for tokens. Stateful:
  ``state_dict()`` / ``load_state_dict()`` restore the running mean exactly on resume.
- ``conciseness_cont``: continuous variant ``min(1, mean / max(length, 1))`` with the same
  running mean: 1 at or below the mean, decaying as mean/length above it (half the reward at
  twice the mean length); it ranks long completions instead of thresholding them.
- ``clarity`` (the authors' format reward): 1 if there is a non-empty ``\\boxed{}`` AND
  (>= 2 enumerated/bulleted lines OR >= 2 ordinal words), each count on its own (so one
  numbered line plus "first ... then" is clear); else 0. See :mod:`moalign.text` for where
  the step patterns depart from the authors'.
- ``rubric``: a hook into ``moalign.rubric.reward.make_rubric_reward(**opts)`` (pairwise rubric
  judge against an anchor from the group), imported lazily.
"""

from __future__ import annotations

from typing import Any, Callable

from moalign.grading import extract_answer, grade
from moalign.registry import Registry
from moalign.text import count_steps

REWARDS: Registry = Registry("objective")


class Accuracy:
    """r = 1[grade(completion, reference)] (:func:`moalign.grading.grade`)."""

    def __call__(self, completions: list[str], answer: list[str], **_: Any) -> list[float]:
        if len(answer) != len(completions):
            raise ValueError(f"accuracy: {len(completions)} completions but {len(answer)} reference answers")
        return [float(grade(c, a)) for c, a in zip(completions, answer)]


class Conciseness:
    """r = 1[len < running mean length of all rollouts so far, this batch included] (stateful)."""

    continuous = False

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    @property
    def mean(self) -> float:
        """Running mean length in tokens (0 before the first batch)."""
        return self.total / self.count if self.count else 0.0

    def __call__(self, completions: list[str], completion_lengths: list[int] | None = None,
                 **_: Any) -> list[float]:
        lens = (list(completion_lengths) if completion_lengths is not None
                else [len(c.split()) for c in completions])  # (N,)
        if len(lens) != len(completions):
            raise ValueError(f"conciseness: {len(completions)} completions but {len(lens)} lengths")
        self.total += float(sum(lens))
        self.count += len(lens)
        m = self.mean
        if self.continuous:
            return [min(1.0, m / max(n, 1)) for n in lens]
        return [float(n < m) for n in lens]

    def state_dict(self) -> dict[str, float]:
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.total, self.count = float(state["total"]), int(state["count"])


class ConcisenessCont(Conciseness):
    """r = min(1, running_mean / max(len, 1)) (continuous conciseness)."""

    continuous = True


class Clarity:
    """r = 1[non-empty \\boxed{} and (enumerated lines >= 2 or ordinal words >= 2)] (count_steps >= 2)."""

    def __call__(self, completions: list[str], **_: Any) -> list[float]:
        return [float(extract_answer(c) is not None and count_steps(c) >= 2) for c in completions]


REWARDS.register("accuracy")(Accuracy)
REWARDS.register("conciseness")(Conciseness)
REWARDS.register("conciseness_cont")(ConcisenessCont)
REWARDS.register("clarity")(Clarity)


@REWARDS.register("rubric")
def _rubric(**opts: Any) -> Callable[..., list[float]]:
    try:
        from moalign.rubric.reward import make_rubric_reward
    except ImportError as e:
        raise RuntimeError(
            "the rubric objective needs the rubric stage's output and its reward module "
            f"(moalign.rubric.reward could not be imported: {e}). Fix: run `dvc repro rubric` "
            "with the rubric package installed, or drop 'rubric' from train.objectives"
        ) from e
    return make_rubric_reward(**opts)


def make_reward(name: str, **opts: Any) -> Callable[..., list[float]]:
    """Build objective ``name`` with keyword ``opts`` (``train.reward_options.<name>``).

    Unknown names raise a KeyError listing the valid ones; options a reward does not take are
    a TypeError naming the objective.
    """
    factory = REWARDS.get(name)
    try:
        fn = factory(**opts)
    except TypeError as e:
        if opts and "argument" in str(e):
            raise TypeError(f"train.reward_options.{name} = {opts!r}: {e}. Fix: remove the unknown options") from e
        raise
    try:
        fn.__name__ = name  # TRL logs rewards/<__name__>/mean
    except (AttributeError, TypeError):
        pass
    return fn


def scoring_rewards(cfg) -> dict[str, Callable[..., list[float]]]:
    """The reward functions ``evaluate.score_policy`` reads for ``cfg`` (a TrainConfig): every objective with its
    ``train.reward_options`` but conciseness, which score_policy computes from the lengths itself."""
    return {o: make_reward(o, **cfg.reward_options.get(o, {})) for o in cfg.objectives
            if not o.startswith("conciseness")}


def score(objectives: list[str], fns: dict[str, Callable], texts: list[str], rows: list[dict],
          lengths: list[int], group_size: int) -> torch.Tensor:
    """Rewards (N, K) for N completions of rows (each row repeated ``group_size`` times): the columns every
    reward reads (prompts, answer, domain, completion_lengths, group_size), built here only."""
    import torch

    from moalign.text import format_prompt

    cols = {
        "prompts": [format_prompt(r["question"]) for r in rows],
        "answer": [r["answer"] for r in rows],
        "domain": [r["domain"] for r in rows],
        "completion_lengths": lengths,
        "group_size": group_size,
    }
    return torch.tensor([fns[o](texts, **cols) for o in objectives], dtype=torch.float32).T
