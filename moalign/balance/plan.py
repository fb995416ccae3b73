"""Balance core: sampling plans for imbalanced multi-domain data ("Upsample or Upweight?").

K domains of sizes n_i. Strategies (registry ``BALANCERS``):
- ``temperature``: sample domain i with p_i(tau) = n_i^(1/tau) / sum_j n_j^(1/tau); loss weights 1.
- ``scalarization``: sample proportionally, p_i(1), and weight domain i's loss by
  w_i = p_i(tau) / p_i(1) (Theorem 1: same full-batch gradient as temperature sampling).
- ``unimax``: ascending by size, b = B_left / domains_left, U_i = min(b, max_epochs * n_i),
  B_left -= U_i; p_i = U_i / sum U.
- ``cooldown``: a step schedule of temperature phases, default tau=5 for the first half, then 1.

F(tau) = sum_i p_i(tau)^2 / p_i(1) (Theorem 2) is the factor by which scalarization's
per-example gradient variance exceeds temperature sampling's; it is >= 1 and grows with tau.

Departures: the paper counts UniMax's budget in characters/tokens; we count examples
(our default data has near-equal lengths, and examples are what the sampler draws). Cooldown
phases start at fractions of the SFT steps rather than absolute steps, so the schedule stays
"first half / second half" when ``sft.max_steps`` changes; for cooldown ``F_tau`` is a list,
one entry per phase; for UniMax it is the same formula applied to its mixture.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator

from moalign.registry import Registry
from moalign.schema import StrictModel

BALANCERS: Registry = Registry("balance strategy")


class PhaseConfig(StrictModel):
    """One cooldown phase."""

    start: float = Field(..., ge=0, lt=1, description="Fraction of SFT steps at which the phase begins.")
    tau: float = Field(..., description="Sampling temperature of the phase (> 0).")

    @field_validator("tau")
    @classmethod
    def _tau(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("tau must be > 0 (1 = proportional, large = uniform). Fix: e.g. tau: 5.0")
        return v


class BalanceConfig(StrictModel):
    """balance: how SFT samples and weights the domains."""

    strategy: str = Field("cooldown", description="temperature | scalarization | unimax | cooldown.")
    tau: float = Field(5.0, description="Temperature of `temperature` and `scalarization` (> 0).")
    unimax_budget: int = Field(20000, description="UniMax: examples drawn over SFT (>= number of domains).")
    unimax_max_epochs: float = Field(4.0, gt=0, description="UniMax: cap on epochs over any domain.")
    schedule: list[PhaseConfig] = Field(
        default_factory=lambda: [PhaseConfig(start=0.0, tau=5.0), PhaseConfig(start=0.5, tau=1.0)],
        description="Cooldown phases: first start 0, starts strictly increasing, each < 1.",
    )

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        if v not in BALANCERS:
            raise ValueError(f"unknown strategy {v!r}; valid names: {', '.join(BALANCERS.names())}")
        return v

    @field_validator("tau")
    @classmethod
    def _tau(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("tau must be > 0 (1 = proportional, large = uniform). Fix: e.g. tau: 5.0")
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: list[PhaseConfig]) -> list[PhaseConfig]:
        starts = [p.start for p in v]
        if not starts or starts[0] != 0:
            raise ValueError("schedule must start with a phase at start: 0.0. Fix: add {start: 0.0, tau: 5.0} first")
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"schedule starts {starts} are not strictly increasing. Fix: sort the phases by start")
        return v


def temperature_probs(sizes: dict[str, int], tau: float) -> dict[str, float]:
    """p_i(tau) = n_i^(1/tau) / sum_j n_j^(1/tau), in log space."""
    logs = {d: math.log(n) / tau for d, n in sizes.items()}
    m = max(logs.values())
    z = sum(math.exp(v - m) for v in logs.values())
    return {d: math.exp(v - m) / z for d, v in logs.items()}


def scalarization_weights(sizes: dict[str, int], tau: float) -> dict[str, float]:
    """w_i = p_i(tau) / p_i(1)."""
    pt, p1 = temperature_probs(sizes, tau), temperature_probs(sizes, 1.0)
    return {d: pt[d] / p1[d] for d in sizes}


def variance_factor(sizes: dict[str, int], tau: float) -> float:
    """F(tau) = sum_i p_i(tau)^2 / p_i(1) (Theorem 2)."""
    pt, p1 = temperature_probs(sizes, tau), temperature_probs(sizes, 1.0)
    return sum(pt[d] ** 2 / p1[d] for d in sizes)


def unimax_probs(sizes: dict[str, int], budget: float, max_epochs: float) -> dict[str, float]:
    """UniMax: uniform budget, capped at ``max_epochs`` passes, leftovers to larger domains."""
    left, alloc = float(budget), {}
    order = sorted(sizes, key=lambda d: (sizes[d], d))
    for k, d in enumerate(order):
        b = left / (len(order) - k)
        alloc[d] = min(b, max_epochs * sizes[d])
        left -= alloc[d]
    total = sum(alloc.values())
    return {d: alloc[d] / total for d in sizes}


def _phase(start: float, tau: float | None, probs: dict[str, float], weights: dict[str, float] | None = None) -> dict:
    return {"start": start, "tau": tau, "probs": probs, "loss_weights": weights or {d: 1.0 for d in probs}}


@BALANCERS.register("temperature")
def _temperature(cfg: BalanceConfig, sizes: dict[str, int], total: int) -> list[dict]:
    return [_phase(0.0, cfg.tau, temperature_probs(sizes, cfg.tau))]


@BALANCERS.register("scalarization")
def _scalarization(cfg: BalanceConfig, sizes: dict[str, int], total: int) -> list[dict]:
    return [_phase(0.0, cfg.tau, temperature_probs(sizes, 1.0), scalarization_weights(sizes, cfg.tau))]


@BALANCERS.register("unimax")
def _unimax(cfg: BalanceConfig, sizes: dict[str, int], total: int) -> list[dict]:
    if cfg.unimax_budget < len(sizes):
        raise ValueError(
            f"balance.unimax_budget = {cfg.unimax_budget} is below the number of domains ({len(sizes)}). "
            f"Fix: set balance.unimax_budget >= {len(sizes)} (e.g. sft.max_steps * sft.batch_size)"
        )
    return [_phase(0.0, None, unimax_probs(sizes, cfg.unimax_budget, cfg.unimax_max_epochs))]


@BALANCERS.register("cooldown")
def _cooldown(cfg: BalanceConfig, sizes: dict[str, int], total: int) -> list[dict]:
    return [_phase(p.start, p.tau, temperature_probs(sizes, p.tau)) for p in cfg.schedule]


def build_plan(cfg: BalanceConfig, sizes: dict[str, int], total_samples: int) -> dict[str, Any]:
    """The JSON plan the sft sampler follows: phases (probs, loss weights), expected epochs, F(tau)."""
    empty = [d for d, n in sizes.items() if n <= 0]
    if empty:
        raise ValueError(
            f"domain(s) {empty} have no rows in data/prepared/train. "
            "Fix: remove them from prepare.generator.sizes (or the dataset) or regenerate the data"
        )
    if not sizes:
        raise ValueError("data/prepared/train has no rows. Fix: rerun prepare with a non-empty source")
    sizes = dict(sorted(sizes.items()))
    phases = BALANCERS.get(cfg.strategy)(cfg, sizes, total_samples)
    p1 = temperature_probs(sizes, 1.0)
    # effective mixture q = probs * loss weights; F = sum q^2 / p(1) (= F(tau) of Theorem 2)
    f = [sum((p["probs"][d] * p["loss_weights"][d]) ** 2 / p1[d] for d in sizes) for p in phases]
    bounds = [p["start"] for p in phases] + [1.0]
    epochs = {d: sum((bounds[k + 1] - bounds[k]) * total_samples * p["probs"][d] for k, p in enumerate(phases)) / n
              for d, n in sizes.items()}
    return {"strategy": cfg.strategy, "domains": list(sizes), "sizes": sizes, "total_samples": total_samples,
            "phases": phases, "expected_epochs": epochs,
            "F_tau": f[0] if len(f) == 1 else f}
