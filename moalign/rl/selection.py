"""Pass-rate prompt selection (``train.prompt_selection``): train on prompts the policy can sometimes solve.

GRPO learns only from groups whose rewards vary. A prompt the policy always fails (or always solves)
gives a group of equal accuracies, hence zero accuracy advantage, and only the other objectives move
the policy - what happened on SmolLM2, whose SFT policy solves almost nothing outside English
(README "Real model"). Before the first update, :func:`select_prompts` draws ``pool`` training prompts
with the run's seed, samples ``samples`` decodes of each from the starting policy, scores them with
``objective``, and keeps the prompts whose mean (the pass rate) lies strictly inside (``low``, ``high``):
by default, solved at least once and failed at least once. This is the offline counterpart of DAPO's
dynamic sampling (moalign/rl/filtering.py, which filters each step's groups online); the two combine.

Why once, on the starting policy: it costs ``pool x samples`` rollouts (256 x 4 = 16 steps of 8 x 8)
instead of extra rounds at every step, and the policy that RL starts from is what decides which
prompts carry signal in the first steps. Departure from a curriculum that re-measures during training:
a prompt that becomes always-solved stays in the set (dynamic sampling then drops its groups).

The selection is deterministic (seeded pool and decodes), so a resumed run recomputes the same set
from the same starting policy; with several processes every rank computes it alike. The train stage
keeps the pass rates in ``checkpoints/selection/<key>.json`` (:func:`cache_key`: SFT policy, settings,
decoding, seed), so the strategies trained from one SFT policy measure them once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger("moalign.train")


def choose_prompts(rates: np.ndarray, low: float, high: float, min_keep: int) -> tuple[list[int], dict[str, Any]]:
    """Indices of ``rates`` strictly inside (low, high); fewer than ``min_keep``: the ``min_keep`` best below ``high``.

    Returns (indices in pool order, info). ``info["fallback"]`` is True when the band held too few prompts."""
    rates = np.asarray(rates, dtype=float)
    inside = [i for i, r in enumerate(rates) if low < r < high]
    info: dict[str, Any] = {"pool": int(len(rates)), "in_band": len(inside), "fallback": False}
    if len(inside) < min(min_keep, len(rates)):
        below = [i for i in np.argsort(-rates, kind="stable") if rates[i] < high] or list(range(len(rates)))
        inside = sorted(below[:min_keep])
        info["fallback"] = True
    info["kept"] = len(inside)
    info["mean_rate_pool"] = float(rates.mean()) if len(rates) else 0.0
    info["mean_rate_kept"] = float(rates[inside].mean()) if inside else 0.0
    return inside, info


def pass_rates(policy, tok, rows: list[dict], fn: Callable[..., list[float]], gen, samples: int,
               max_new_tokens: int, temperature: float, top_p: float, seed: int, batch: int = 64) -> np.ndarray:
    """(len(rows),) mean reward of ``samples`` sampled decodes per row under ``policy`` (``gen``: a BACKENDS entry)."""
    from moalign.rl.rewards import score
    from moalign.text import format_prompt

    rep = [r for r in rows for _ in range(samples)]
    scores: list[float] = []
    for k in range(0, len(rep), batch):
        part = rep[k:k + batch]
        g = gen(policy, tok, [format_prompt(r["question"], tok) for r in part], max_new_tokens, True, temperature,
                top_p, seed=seed + k)
        scores += score(["objective"], {"objective": fn}, g.texts, part, g.lengths, samples)[:, 0].tolist()
    return np.asarray(scores, dtype=float).reshape(len(rows), samples).mean(1)


def cache_key(cfg, seed: int, policy_fingerprint: str) -> str:
    """What the pass rates depend on: the starting policy, the selection settings, the decoding and the seed."""
    from moalign.provenance import config_hash

    return config_hash({"policy": policy_fingerprint, "selection": cfg.prompt_selection.model_dump(), "seed": seed,
                        "decode": [cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.generation_backend]})


def select_prompts(policy, tok, rows: list[dict], cfg, fn: Callable[..., list[float]], gen,
                   seed: int, cache: str | Path | None = None) -> tuple[list[dict], dict[str, Any]]:
    """The training rows to draw from (``cfg``: the TrainConfig) and what the selection measured.

    ``cache``: a JSON file of pass rates (the caller names it by :func:`cache_key`); when it exists the rates are
    read from it instead of decoded, so the ``train@*`` stages of one SFT policy measure them once."""
    sel = cfg.prompt_selection
    rng = np.random.default_rng(seed)
    pool_idx = sorted(rng.choice(len(rows), size=min(sel.pool, len(rows)), replace=False).tolist())
    pool = [rows[i] for i in pool_idx]
    if cache is not None and Path(cache).exists():
        rates = np.asarray(json.loads(Path(cache).read_text())["rates"], dtype=float)
    else:
        was = policy.training
        policy.eval()
        rates = pass_rates(policy, tok, pool, fn, gen, sel.samples, cfg.max_new_tokens, cfg.temperature, cfg.top_p,
                           seed=seed + 7919)
        policy.train(was)
        if cache is not None:
            from moalign.io import write_text

            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            write_text(cache, json.dumps({"rates": rates.tolist()}))
    keep, info = choose_prompts(rates, sel.low, sel.high, sel.min_keep)
    if info["fallback"]:
        log.warning("prompt_selection: %d of %d pooled prompts have a %s pass rate in (%g, %g); training on the %d "
                    "with the highest rate below %g instead. Fix: a larger pool, more samples, or a stronger "
                    "starting policy", info["in_band"], info["pool"], sel.objective, sel.low, sel.high,
                    info["kept"], sel.high)
    by_domain: dict[str, int] = {}
    for i in keep:
        by_domain[pool[i]["domain"]] = by_domain.get(pool[i]["domain"], 0) + 1
    info.update({"objective": sel.objective, "samples": sel.samples, "by_domain": by_domain,
                 "rates": [round(float(r), 4) for r in rates]})
    return [pool[i] for i in keep], info
