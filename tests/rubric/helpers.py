"""Response builders shared by the rubric tests (the project's text format)."""

from __future__ import annotations

import random

from tests.tiny import ROOT

META = ROOT / "rubrics/meta.yaml"
LAYER = ROOT / "rubrics/domains/arithmetic.yaml"


def resp(ans, n_steps=2, filler=0, boxed=True):
    """A completion with ``n_steps`` numbered steps, ``filler`` extra words per step, a boxed answer."""
    steps = "\n".join(f"{i + 1}. step {i} " + "word " * filler for i in range(n_steps))
    return " " + steps + (f"\nAnswer: \\boxed{{{ans}}}" if boxed else "")


def sft_like_samples(n_prompts, k=4, seed=0):
    """SFT-like samples: mostly correct, terse or worked, some wrong, some without an answer."""
    rng = random.Random(seed)
    prompts, answers, samples = [], [], []
    for i in range(n_prompts):
        ans = 100 + i
        out = []
        for _ in range(k):
            right = ans if rng.random() < 0.7 else ans + rng.choice([-10, -1, 1, 10])
            kind = rng.random()
            if kind < 0.45:
                out.append(resp(right, n_steps=2, filler=rng.randint(0, 1)))  # terse
            elif kind < 0.9:
                out.append(resp(right, n_steps=rng.randint(3, 5), filler=rng.randint(2, 5)))  # worked
            else:
                out.append(resp(right, n_steps=rng.randint(1, 4), filler=2, boxed=False))  # no final answer
        prompts.append(f"Question: q{i}\nSolution:")
        answers.append(str(ans))
        samples.append(out)
    return prompts, answers, samples


def preference_splits(prompts, answers, domains, samples, label_noise=0.1, seed=0, fractions=(0.5, 0.25, 0.25),
                      max_pairs_per_prompt=3, balance_levels=True, annotator="rules", balance_length=False):
    """Synthetic pairs split by prompt: what the rubric stage does with its SFT samples (stages/rubric.py)."""
    from moalign.rubric.preferences import split_by_prompt, synthetic_pairs

    return split_by_prompt(synthetic_pairs(prompts, answers, domains, samples, label_noise, seed, max_pairs_per_prompt,
                                           balance_levels, annotator, balance_length), fractions, seed)
