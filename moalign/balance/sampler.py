"""Sampler that follows a balance plan during SFT, phase switches included.

``PlanSampler.batch(step)`` draws a domain per example from the phase active at ``step``
(phase k is active from ``start_k * total_steps``), then a row uniformly within the domain,
with replacement. Nothing is materialised: an oversampled copy of a small domain never
exists, only indices. Each batch depends on (seed, step) alone, so a resumed run draws the
same batches as an uninterrupted one.

Fixed mixtures can also be expressed with ``datasets.interleave_datasets`` (see
:func:`fixed_mixture`); schedules such as Cooldown need this sampler.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class PlanSampler:
    def __init__(self, plan: dict[str, Any], domain_indices: dict[str, Sequence[int]], total_steps: int,
                 batch_size: int, seed: int) -> None:
        missing = [d for d in plan["domains"] if not len(domain_indices.get(d, []))]
        if missing:
            raise ValueError(f"the balance plan names domain(s) {missing} with no rows in the train split. "
                             "Fix: rerun `dvc repro balance` on the current data")
        self.domains = list(plan["domains"])
        self.phases = plan["phases"]
        self.idx = {d: np.asarray(domain_indices[d]) for d in self.domains}
        self.total_steps, self.batch_size, self.seed = total_steps, batch_size, seed
        self._p = [np.array([ph["probs"][d] for d in self.domains]) for ph in self.phases]
        self._w = [np.array([ph["loss_weights"][d] for d in self.domains]) for ph in self.phases]

    def phase_at(self, step: int) -> int:
        """Index of the phase active at ``step``."""
        frac = step / max(1, self.total_steps)
        k = 0
        for i, ph in enumerate(self.phases):
            if frac >= ph["start"]:
                k = i
        return k

    def batch(self, step: int) -> tuple[list[int], list[float]]:
        """Row indices (B,) and their loss weights (B,) for ``step``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, step]))
        k = self.phase_at(step)
        p = self._p[k] / self._p[k].sum()
        doms = rng.choice(len(self.domains), size=self.batch_size, p=p)
        rows = [int(self.idx[self.domains[j]][rng.integers(len(self.idx[self.domains[j]]))]) for j in doms]
        return rows, [float(self._w[k][j]) for j in doms]


def fixed_mixture(datasets_by_domain: dict[str, Any], probs: dict[str, float], seed: int):
    """A fixed-probability mixture as a ``datasets`` dataset (no schedule)."""
    from datasets import interleave_datasets

    names = sorted(datasets_by_domain)
    return interleave_datasets([datasets_by_domain[n] for n in names], probabilities=[probs[n] for n in names],
                               seed=seed, stopping_strategy="all_exhausted")
