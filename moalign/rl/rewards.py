"""Reward functions (TRL's convention ``f(completions, **columns) -> list[float]``), all in [0, 1].

Registry ``REWARDS`` holds *factories*; :func:`make_reward` builds the callable (some rewards
keep state). Columns passed by the trainer: ``answer`` (reference), ``completion_lengths``
(tokens), ``prompts``, ``domain``, ``group_size``.

- ``accuracy``: the last ``\\boxed{}`` equals the reference (numbers compared after
  normalisation; anything else through ``math-verify``), as in the paper's grader.
- ``conciseness``: 1 if the completion is shorter (in tokens) than the running mean length
  of all training rollouts so far, else 0 (the paper's definition). The running mean is
  updated with the batch *before* comparing, so the first batch compares against its own
  mean instead of an undefined one. State is checkpointed (``state_dict``).
- ``conciseness_cont``: a continuous variant, ``min(1, mean / length)``.
- ``clarity``: a non-empty ``\\boxed{}`` AND >= 2 step markers.
- ``rubric``: pairwise rubric judge vs an anchor from the group (filled by the rubric stage).
"""

from __future__ import annotations

from typing import Any, Callable

from moalign.registry import Registry
from moalign.text import count_steps, extract_answer, normalize_number

REWARDS: Registry = Registry("objective")


def answers_match(pred: str | None, ref: str) -> bool:
    if pred is None:
        return False
    a, b = normalize_number(pred), normalize_number(ref)
    if a == b:
        return True
    try:
        float(a)
        float(b)
        return False  # both numeric and different
    except (TypeError, ValueError):
        pass
    try:
        from math_verify import parse, verify

        return bool(verify(parse(f"${ref}$"), parse(f"${pred}$")))
    except Exception:  # noqa: BLE001 - unparsable answers are wrong answers
        return False


class Accuracy:
    def __call__(self, completions: list[str], answer: list[str], **_: Any) -> list[float]:
        return [float(answers_match(extract_answer(c), a)) for c, a in zip(completions, answer)]


class Conciseness:
    """Shorter than the running mean length of all rollouts so far (stateful)."""

    continuous = False

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def __call__(self, completions: list[str], completion_lengths: list[int] | None = None, **_: Any) -> list[float]:
        lens = completion_lengths if completion_lengths is not None else [len(c.split()) for c in completions]
        self.total += float(sum(lens))
        self.count += len(lens)
        m = self.mean
        if self.continuous:
            return [min(1.0, m / max(n, 1)) for n in lens]
        return [float(n < m) for n in lens]

    def state_dict(self) -> dict[str, float]:
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, s: dict[str, float]) -> None:
        self.total, self.count = float(s["total"]), int(s["count"])


class ConcisenessCont(Conciseness):
    continuous = True


class Clarity:
    def __call__(self, completions: list[str], **_: Any) -> list[float]:
        return [float(extract_answer(c) is not None and count_steps(c) >= 2) for c in completions]


REWARDS.register("accuracy")(Accuracy)
REWARDS.register("conciseness")(Conciseness)
REWARDS.register("conciseness_cont")(ConcisenessCont)
REWARDS.register("clarity")(Clarity)


@REWARDS.register("rubric")
def _rubric(**opts: Any) -> Callable:
    try:
        from moalign.rubric.reward import make_rubric_reward
    except ImportError as e:  # pragma: no cover - the module ships with the package
        raise RuntimeError(f"the rubric objective needs moalign.rubric ({e})") from e
    return make_rubric_reward(**opts)


def make_reward(name: str, **opts: Any) -> Callable[..., list[float]]:
    """Build objective ``name`` (unknown names list the valid ones)."""
    factory = REWARDS.get(name)
    return factory(**opts)
