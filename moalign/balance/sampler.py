"""Sampler that follows a balance plan during SFT, phase switches included.

``PlanSampler.batch(step)`` picks the phase active at ``step`` (the last phase k with
``step / total_steps >= start_k``), draws a domain per example from that phase's probabilities
p_k, then a row uniformly within the domain, with replacement. This is the paper's temperature
sampling, p_i(tau) per example, done on indices: an oversampled copy of a small domain is never
materialised. Each batch depends on ``(seed, step)`` alone (a generator seeded with
``SeedSequence([seed, step])``), so a run resumed after a kill at any step draws the same
batches as an uninterrupted one.

A fixed mixture can also be expressed as a ``datasets.Dataset`` with :func:`fixed_mixture`
(``datasets.interleave_datasets``); it has one set of probabilities for the whole run, so
schedules such as Cooldown and scalarization's loss weights need :class:`PlanSampler`.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Sequence

import numpy as np


class PlanSampler:
    """Draws SFT batches (row indices + per-row loss weights) following a :func:`build_plan` plan."""

    def __init__(self, plan: dict[str, Any], domain_indices: dict[str, Sequence[int]], total_steps: int,
                 batch_size: int, seed: int) -> None:
        if total_steps < 1 or batch_size < 1:
            raise ValueError(f"total_steps = {total_steps} and batch_size = {batch_size} must be >= 1. "
                             "Fix: set sft.max_steps and sft.batch_size >= 1")
        missing = [d for d in plan["domains"] if len(domain_indices.get(d, ())) == 0]
        if missing:
            raise ValueError(f"the balance plan names domain(s) {missing} with no rows in the train split. "
                             "Fix: rerun `dvc repro balance` on the current data")
        self.domains: list[str] = list(plan["domains"])
        self.phases: list[dict[str, Any]] = list(plan["phases"])
        self.starts = [float(ph["start"]) for ph in self.phases]
        if not self.starts or self.starts[0] != 0.0 or any(b <= a for a, b in zip(self.starts, self.starts[1:])):
            raise ValueError(f"plan phase starts {self.starts} must begin at 0 and increase. "
                             "Fix: rebuild the plan with `dvc repro balance`")
        self.total_steps, self.batch_size, self.seed = int(total_steps), int(batch_size), int(seed)
        self._rows = [np.asarray(domain_indices[d], dtype=np.int64) for d in self.domains]
        self._n = np.array([len(r) for r in self._rows], dtype=np.int64)  # (K,)
        self._p: list[np.ndarray] = []  # per phase (K,)
        self._w: list[np.ndarray] = []  # per phase (K,)
        for k, ph in enumerate(self.phases):
            p = np.array([float(ph["probs"][d]) for d in self.domains])
            if (p < 0).any() or not np.isfinite(p).all() or abs(p.sum() - 1.0) > 1e-6:
                raise ValueError(f"plan phase {k} probabilities {p.tolist()} are not a distribution. "
                                 "Fix: rebuild the plan with `dvc repro balance`")
            self._p.append(p / p.sum())
            self._w.append(np.array([float(ph["loss_weights"][d]) for d in self.domains]))

    def phase_at(self, step: int) -> int:
        """Index k of the phase active at ``step``: the last k with step / total_steps >= start_k."""
        if step < 0:
            raise ValueError(f"step = {step} must be >= 0")
        return bisect_right(self.starts, step / self.total_steps) - 1

    def batch(self, step: int) -> tuple[list[int], list[float]]:
        """Row indices (B,) and their loss weights (B,) for ``step``; a pure function of (seed, step)."""
        k = self.phase_at(step)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, step]))
        doms = rng.choice(len(self.domains), size=self.batch_size, p=self._p[k])  # (B,) domain ids
        offsets = rng.integers(0, self._n[doms])  # (B,) uniform row within each drawn domain
        rows = [int(self._rows[j][o]) for j, o in zip(doms, offsets)]
        return rows, [float(x) for x in self._w[k][doms]]


def fixed_mixture(datasets_by_domain: dict[str, Any], probs: dict[str, float], seed: int) -> Any:
    """One ``datasets.Dataset`` mixing the domains with fixed ``probs`` (no schedule, no loss weights).

    Uses ``interleave_datasets(probabilities=..., stopping_strategy="all_exhausted")``: it stops once
    every domain has been seen at least once, oversampling the small ones. Schedules (Cooldown) and
    scalarization's loss weights need :class:`PlanSampler` instead.
    """
    from datasets import interleave_datasets

    if set(datasets_by_domain) != set(probs):
        raise ValueError(f"domains {sorted(datasets_by_domain)} and probs keys {sorted(probs)} differ. "
                         "Fix: pass one probability per domain (e.g. a plan phase's probs)")
    names = sorted(datasets_by_domain)
    total = sum(probs[n] for n in names)
    return interleave_datasets([datasets_by_domain[n] for n in names], probabilities=[probs[n] / total for n in names],
                               seed=seed, stopping_strategy="all_exhausted")
