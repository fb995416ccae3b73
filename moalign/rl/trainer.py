"""Multi-objective online RL loop (GRPO / REINFORCE / RLOO) with a reward-weighting strategy.

Read top to bottom, one update per step:
1. draw ``prompts_per_step`` prompts (seeded by (seed, step, rank)), sample ``group_size`` rollouts each
   at ``temperature`` / ``top_p``;
2. score every rollout with every objective -> rewards (B, G, K); with ``train.dynamic_sampling`` on
   (DAPO), groups constant in its objectives are dropped and extra rounds of new prompts refill the
   batch to B groups (moalign/rl/filtering.py);
3. log-probs of the completions under the policy (and the SFT reference) at the sampling
   temperature, log softmax(logits / T), as TRL and verl (moalign/generation.py: top-p is not
   applied to log-probs, as there);
4. ``gradient`` strategy: per-objective gradients g_k (objective k's own advantages, + the KL term
   when ``grad_kl``, as the authors), each clipped to norm 1 over *all* parameters and then
   restricted to ``grad_layers`` -> mirror-descent weight update (before the step, as in the
   authors' optimisation trainer);
5. advantages from the weighted objectives (``train.aggregation``: TRL's two orders, estimators.py);
6. one clipped policy-gradient step (+ KL to the SFT reference when ``kl_coef`` > 0), AdamW with
   ``weight_decay`` (default 0: a zero policy gradient leaves the policy unchanged); the forward and
   backward of steps 3 and 6 run bucket by bucket (``micro_batch_update``: moalign/rl/update.py) unless
   step 4 needs the whole batch's graph;
7. every ``eval_every`` steps: validation point (expected rewards of ``val_samples`` sampled
   decodes per prompt, or greedy) -> ``hypervolume`` strategy and curves.

Departures from the authors' verl trainers, and why: one optimizer step per rollout batch (the
PPO ratio is 1 at the update and clipping only matters if the user raises it; this also keeps
"total gradient = linear combination" exact for the gradient method, which the authors obtained
by disabling clipping); the default aggregation is TRL's ``normalize_then_sum`` (estimators.py says
why; the authors' order is ``sum_then_normalize``); validation points are by default expected
rewards of sampled decodes with conciseness as ``1 - length/max_new_tokens`` (every coordinate
maximised in [0, 1]), where the authors decode greedily and minimise raw length
(moalign/evaluate.py says why); the hypervolume reference is ``train.weighting.reference``
(weighting.py). The ``<weighting>-paper`` strategies undo these departures (moalign/rl/paper.py).

Several processes (``accelerate launch --num_processes N -m stages.train``): each rank samples
its own prompts, the prepared model averages gradients, the advantages' batch statistics are
summed over ranks, the gradient strategy averages the per-objective gradient matrix, reward
states and validation points are synchronised, dynamic sampling's rounds are agreed (each rank fills
its own batch; another round runs while any rank is short), and only rank 0 writes checkpoints and snapshots
(moalign/rl/distributed.py; docs/scale-out.md).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from moalign import checkpoint
from moalign.evaluate import score_policy
from moalign.generation import BACKENDS, token_logprobs
from moalign.rl import distributed as dist
from moalign.rl import filtering
from moalign.rl.config import TrainConfig
from moalign.rl.estimators import combine_advantages, policy_loss
from moalign.rl.rewards import make_reward, score  # noqa: F401 - score: re-exported
from moalign.rl.update import bucketed_update
from moalign.rl.grads import (  # noqa: F401 - re-exported for callers of the trainer
    grads_from_advantages, middle_layers_pattern, objective_grads, select_params, step_seed)
from moalign.rl.selection import select_prompts
from moalign.rl.weighting import make_weighting
from moalign.text import format_prompt

log = logging.getLogger("moalign.train")


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)  # per-step metrics
    validation: list[dict[str, Any]] = field(default_factory=list)  # {"step", "point": [...]}
    weights: list[list[float]] = field(default_factory=list)  # weights used at each step
    initial_weights: list[float] = field(default_factory=list)
    final_weights: list[float] = field(default_factory=list)  # after the last update/validation
    degenerate: dict[str, Any] = field(default_factory=dict)  # Weighting.degenerate(): what made HV uninformative
    selection: dict[str, Any] = field(default_factory=dict)  # train.prompt_selection: what was measured and kept


class PhaseClock:
    """Wall seconds per phase of one step (``perf/<phase>_s`` metrics; benchmarks/rl_throughput.py)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        t = time.perf_counter()
        yield
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t

    def pop(self) -> dict[str, float]:
        out, self.seconds = {f"perf/{k}_s": v for k, v in self.seconds.items()}, {}
        return out


def validation_point(model, tok, cfg: TrainConfig, fns: dict[str, Callable], rows: list[dict],
                     seed: int = 0) -> np.ndarray:
    """(K,) point of ``rows`` (``val_samples`` sampled decodes per prompt, or greedy), all maximised;
    with ``length_unit: tokens`` the conciseness coordinate is minus the mean length in tokens."""
    sc = score_policy(model, tok, rows, cfg.objectives, fns, cfg.max_new_tokens, cfg.generation_backend,
                      samples=cfg.val_samples, temperature=cfg.temperature, seed=seed)
    pt = np.array(sc["point"])
    if cfg.length_unit == "tokens":
        pt[[k for k, o in enumerate(cfg.objectives) if o.startswith("conciseness")]] = -sc["length"]
    return pt


def train(
    cfg: TrainConfig, strategy: str, model, tok, train_rows: list[dict], val_rows: list[dict], seed: int,
    accelerator=None, ref_model=None, ckpt_dir=None, fingerprint: str = "", log_fn=None, snapshot_fn=None,
    on_checkpoint=None, selection_cache=None,
) -> TrainResult:
    """Run ``cfg.max_steps`` updates of ``model`` in place; resumes from ``ckpt_dir`` when it holds a match.

    ``on_checkpoint(step)`` runs on every rank once the checkpoint of ``step`` is complete (after the
    barrier): a progress report for a flow, or the point where a test interrupts the run to resume it."""
    cfg = cfg.for_strategy(strategy)  # -paper strategies: the authors' rules (moalign/rl/paper.py)
    log_fn = log_fn or (lambda m, s: None)
    device = next(model.parameters()).device
    K, B, G = len(cfg.objectives), cfg.prompts_per_step, cfg.group_size
    fns = {o: make_reward(o, **cfg.reward_options.get(o, {})) for o in cfg.objectives}
    weighting = make_weighting(strategy, cfg.objectives, cfg.weighting)
    grad_params = select_params(model, cfg.grad_layers) if weighting.needs_objective_grads else []
    chosen = {id(p) for _, p in grad_params}
    selection: dict[str, Any] = {}
    if cfg.prompt_selection.enabled:  # on the starting policy, before any checkpoint is loaded (selection.py)
        sel = cfg.prompt_selection
        train_rows, selection = select_prompts(model, tok, train_rows, cfg,
                                               make_reward(sel.objective, **cfg.reward_options.get(sel.objective, {})),
                                               BACKENDS.get(cfg.generation_backend), step_seed(seed, 0, 3000),
                                               selection_cache)
    all_params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(all_params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    if accelerator is not None:
        model, opt = accelerator.prepare(model, opt)
    res, start = TrainResult(), 0
    state = checkpoint.latest(ckpt_dir, fingerprint) if ckpt_dir else None
    if state:
        _unwrap(model, accelerator).load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        weighting.load_state_dict(state["weighting"])
        for o, s in state["rewards"].items():
            if hasattr(fns[o], "load_state_dict"):
                fns[o].load_state_dict(s)
        res = state["result"]
        start = state["step"]
        log.info("resuming %s from step %d", strategy, start)
    gen = BACKENDS.get(cfg.generation_backend)
    policy = _unwrap(model, accelerator)
    res.selection = selection
    if start == 0:
        if selection:
            log_fn({f"selection/{k}": float(v) for k, v in selection.items() if isinstance(v, (int, float))}, 0)
        res.initial_weights = weighting.weights().tolist()
        p0 = dist.broadcast_point(validation_point(policy, tok, cfg, fns, val_rows, step_seed(seed, 0, 2000)),
                                  accelerator)
        res.validation.append({"step": 0, "point": p0.tolist(), **weighting.observe_validation(p0, 0)})
    rank = dist.rank_of(accelerator)
    reduce = dist.sum_fn(accelerator)  # batch statistics over every rank's rollouts (None: one process)
    sampled: dict[int, list[int]] = {}  # step -> this rank's prompt indices (the rank dump)
    bar = tqdm(range(start, cfg.max_steps), initial=start, total=cfg.max_steps, desc=f"train@{strategy}",
               mininterval=5, disable=rank != 0)
    clock = PhaseClock()
    ds = cfg.dynamic_sampling
    ds_idx = [cfg.objectives.index(o) for o in ds.objectives] if ds.enabled else []

    def rollouts(step: int, rnd: int = 0):
        """Round ``rnd`` of a step (> 0: dynamic sampling's extra rounds): prompts, rollouts, rewards (B*G, K)."""
        rng = np.random.default_rng(step_seed(seed, step, rank, rnd))
        idx = rng.integers(0, len(train_rows), B).tolist()
        sampled.setdefault(step + 1, []).extend(idx)
        rows = [train_rows[i] for i in idx for _ in range(G)]  # (B*G,)
        with clock("generation"):
            g = gen(policy, tok, [format_prompt(r["question"], tok) for r in rows], cfg.max_new_tokens, True,
                    cfg.temperature, cfg.top_p, seed=step_seed(seed, step, 1000 + rank, rnd))
        with clock("scoring"):
            before = dist.reward_states(fns)
            rewards = score(cfg.objectives, fns, g.texts, rows, g.lengths, G)  # (B*G, K)
            dist.sync_reward_state(fns, before, accelerator)
        return g, rewards

    def more(short: bool) -> bool:  # another round while any rank is short: every rank runs the same rounds
        return short if reduce is None else bool(reduce(torch.tensor([float(short)])).item() > 0)

    for step in bar:
        g, rewards = rollouts(step)
        ds_metrics: dict[str, float] = {}
        if ds.enabled:  # DAPO's dynamic sampling: keep the groups that vary in ds.objectives, refill (filtering.py)
            g, rewards, ds_metrics = filtering.dynamic_sample((g, rewards), lambda rnd: rollouts(step, rnd), B, G,
                                                              ds_idx, ds.max_rounds, tok.pad_token_id, more)
        r3 = rewards.view(B, G, K).to(device)  # (B, G, K)
        ids, mask, cmask = g.ids.to(device), g.mask.to(device), g.completion_mask[:, 1:].to(device)
        model.train()
        first, T = g.completion_start, cfg.temperature  # log-probs of the sampling distribution (generation.py)
        use_ref = ref_model is not None and cfg.kl_coef > 0
        grad_step = weighting.needs_objective_grads and step % cfg.grad_every == 0
        whole = grad_step or not cfg.micro_batch_update  # else: bucket by bucket (update.py)
        if whole:
            with clock("forward"):
                logp = token_logprobs(model, ids, mask, cfg.logprob_buckets, first, T)[:, 1:]  # (N, L-1)
                old = logp.detach()
                with torch.no_grad():
                    ref = token_logprobs(ref_model, ids, mask, cfg.logprob_buckets, first, T)[:, 1:] \
                        if use_ref else None
        metrics: dict[str, float] = dict(ds_metrics)
        # forwards of this step: the policy's once (one update per rollout batch, so the "old" log-probs are its
        # values detached, not a second forward); the reference's only with kl_coef > 0 (LoRA: adapters off);
        # perf/micro_batches: 1 = one graph for the whole batch, else one bucket's graph at a time
        metrics.update({"perf/forwards/policy": 1.0, "perf/forwards/old": 0.0, "perf/forwards/reference": float(use_ref),
                        "perf/micro_batches": 1.0 if whole else float(min(cfg.logprob_buckets, ids.shape[0]))})
        spread = (r3.amax(1) > r3.amin(1)).float().mean(0)  # (K,) share of groups whose objective k varies
        metrics.update({f"train/informative_groups/{o}": float(v) for o, v in zip(cfg.objectives, spread)})
        if grad_step:
            with clock("objective_grads"):
                gmat = objective_grads(cfg, r3, logp, old, cmask, all_params, chosen, ref, reduce)  # (K, D)
                if accelerator is not None:
                    gmat = accelerator.reduce(gmat, "mean")
                metrics.update(weighting.update_from_grads(gmat, cfg.lr))
        w = torch.tensor(weighting.weights(), dtype=torch.float32, device=device)  # (K,)
        agg = weighting.aggregation(step, cfg.max_steps) or cfg.aggregation  # the field's strategies: their own
        adv = combine_advantages(r3 * weighting.reward_scale(), w, cfg.estimator, agg,
                                 cfg.std, reduce).reshape(-1) * weighting.advantage_scale()  # (N,)
        opt.zero_grad(set_to_none=True)
        backward = accelerator.backward if accelerator is not None else torch.Tensor.backward
        if whole:
            loss, stats = policy_loss(logp, old, adv, cmask, cfg.clip_eps, ref, cfg.kl_coef)
            with clock("backward"):
                backward(loss)
            loss = float(loss.detach())
        else:
            loss, stats = bucketed_update(model, ref_model if use_ref else None, ids, mask, cmask, first, adv,
                                          buckets=cfg.logprob_buckets, temperature=T, clip_eps=cfg.clip_eps,
                                          kl_coef=cfg.kl_coef, clock=clock, backward=backward,
                                          no_sync=(lambda: accelerator.no_sync(model)) if accelerator else None)
        with clock("optimizer"):
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
        done = step + 1
        for k, o in enumerate(cfg.objectives):
            metrics[f"rewards/{o}/mean"] = rewards[:, k].mean().item()
            metrics[f"rewards/{o}/std"] = rewards[:, k].std().item()
            metrics[f"weights/{o}"] = float(w[k])
        metrics.update({"losses/policy": loss, "losses/kl": float(stats.get("kl", 0.0)),
                        "charts/clip_fraction": float(stats.get("clip_fraction", 0.0)),
                        "charts/grad_norm": float(gnorm), "charts/completion_length": float(np.mean(g.lengths)),
                        "charts/advantage_scale": float(weighting.advantage_scale()),
                        "rewards/weighted/mean": float((rewards * w.cpu()).sum(-1).mean())})
        if done % cfg.eval_every == 0 or done == cfg.max_steps:
            with clock("validation"):
                pt = dist.broadcast_point(validation_point(policy, tok, cfg, fns, val_rows,
                                                           step_seed(seed, done, 2000)), accelerator)
            info = weighting.observe_validation(pt, done)
            res.validation.append({"step": done, "point": pt.tolist(), **info})
            metrics.update({f"eval/{o}": float(v) for o, v in zip(cfg.objectives, pt)})
            metrics.update({f"pareto/{k}": float(v) for k, v in info.items() if isinstance(v, (int, float))})
        metrics.update(clock.pop())
        res.history.append({"step": done, **metrics})
        res.weights.append(w.tolist())
        log_fn(metrics, done)
        bar.set_postfix(reward=f"{metrics['rewards/weighted/mean']:.3f}", len=f"{np.mean(g.lengths):.0f}")
        if snapshot_fn is not None and done % cfg.snapshot_every == 0 and done < cfg.max_steps \
                and dist.is_main(accelerator):
            snapshot_fn(done, policy)
        if ckpt_dir and (done % cfg.checkpoint_every == 0) and done < cfg.max_steps:
            if dist.is_main(accelerator):  # one writer; the state is identical on every rank
                checkpoint.save(ckpt_dir, done, fingerprint, {
                    "model": _unwrap(model, accelerator).state_dict(), "optimizer": opt.state_dict(),
                    "weighting": weighting.state_dict(), "result": res, "rewards": dist.reward_states(fns)})
            dist.barrier(accelerator)  # nobody runs ahead (or stops) before the checkpoint is complete
            if on_checkpoint is not None:
                on_checkpoint(done)
    res.final_weights = weighting.weights().tolist()
    res.degenerate = weighting.degenerate()
    if res.degenerate.get("zero_hypervolume") and weighting.needs_validation:
        log.warning("%s: every validation hypervolume was 0 (reference %s; never above it: %s): the hypervolume "
                    "carried no signal. Fix: train.weighting.reference: origin, or check the objectives vary",
                    strategy, cfg.weighting.reference, res.degenerate.get("never_above_reference"))
    dist.dump_rank_state(accelerator, policy, {
        "start": start, "sampled": sampled, "final_weights": res.final_weights, "weights": res.weights,
        "validation": [{k: v for k, v in x.items() if k in ("step", "point")} for x in res.validation],
        "grad_norm": [h["charts/grad_norm"] for h in res.history],
        "local_loss": [h["losses/policy"] for h in res.history], "rewards_state": dist.reward_states(fns),
        "sampling_rounds": [h.get("train/sampling_rounds", 1.0) for h in res.history]})
    return res


def _unwrap(model, accelerator):
    return accelerator.unwrap_model(model) if accelerator is not None else model
