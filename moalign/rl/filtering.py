"""Dynamic sampling (``train.dynamic_sampling``): train only on groups whose rewards vary, refilling the batch.

Why: GRPO/RLOO advantages are centred inside each group of G rollouts of one prompt, so an objective
that is constant inside a group (every rollout wrong, or every one right) gives that group zero
advantage in it. On a real model most groups hold no correct answer: accuracy then carries no signal
for most of the batch and the other objectives (length, clarity) drive the update alone.

Origin. DAPO (Yu et al. 2025, arXiv 2503.14476, section 3.2 "Dynamic Sampling"): over-sample and
filter out the prompts whose group accuracy is 0 or 1, and keep sampling until the batch is full of
groups with accuracy strictly in between. verl implements it in its DAPO recipe as
``algorithm.filter_groups`` (``enable``, ``metric`` - acc, score, seq_reward, ... -, ``max_num_gen_batches``):
each generation round draws a new batch of prompts, groups whose metric has std 0 are dropped, the
kept groups accumulate until the train batch is full and the surplus is cut off; after
``max_num_gen_batches`` rounds it stops with an error (0 = no limit).

Here: :func:`informative` is the filter, :func:`dynamic_sample` the rounds (the trainer supplies how
one round is drawn, generated and scored). Where this departs from DAPO/verl, and why:

- **Several objectives, any of them.** A group is kept when its rewards vary (max != min, which is
  verl's std > 0) in *any* listed objective (``dynamic_sampling.objectives``, default accuracy, DAPO's
  and verl's metric). With one objective this is DAPO's rule. A group that varies in one listed
  objective carries that objective's advantage, which is what the filter is for; requiring every one
  to vary would multiply the keep probabilities (accuracy-informative x clarity-informative) and
  exhaust the rounds on most steps. The default names accuracy rather than "the first objective", so
  reordering ``train.objectives`` never changes what is filtered; the names must be in
  ``train.objectives`` once the option is on (a config error names the key and the fix).
- **Bounded rounds, then fill.** ``max_rounds`` counts the *extra* rounds (verl's
  ``max_num_gen_batches`` counts all). If the batch is still short after them, the step trains on the
  kept groups plus the first uninformative ones (in draw order), not verl's error (a long run should
  not die on a hard stretch of data), DAPO's unbounded sampling (unbounded cost) or a smaller batch:
  here an uninformative group is only uninformative in the filtered objectives and still carries the
  others' advantages (exactly what training without the filter would use), and a batch of always
  B x G rollouts keeps the batch re-normalisation, the loss scale and the ranks' batch shapes as they
  are without the filter. ``train/kept_groups`` < B says it happened.
- **Each round draws ``prompts_per_step`` new prompts** (verl draws ``data.gen_batch_size`` per round,
  3x the train batch in its DAPO recipe): no over-sampling when most groups vary, more rounds when
  few do. Rounds are seeded by (seed, step, rank, round) (trainer.py ``step_seed``), so a resumed
  run draws the same rounds. Surplus informative groups beyond B are discarded, as verl cuts them.
- **Groups of one rollout**: verl keeps them (its std test passes a single sample); they never vary,
  so the config refuses ``group_size`` < 2 with the option on.
- **Stateful rewards see every scored rollout.** Every round is scored before the filter decides, so
  conciseness's running mean length counts the dropped groups' rollouts too (the filter needs their
  rewards, and the mean describes the policy's lengths, not the batch's).
- **Several processes**: each rank fills its own batch from its own prompts; another round runs while
  *any* rank is short (the need is summed over ranks), so every rank runs the same rounds (each
  round's reward-state sync is a collective) and trains on B groups (one backward pass, same shapes).
  A rank that is already full scores the extra round too and keeps its first B groups.

Metrics (per step, rank-local, only with the option on): ``train/sampling_rounds`` (generation rounds,
1 = no extra round), ``train/scored_groups`` (groups generated and scored), ``train/kept_groups``
(informative groups trained on, <= B), ``train/filtered_groups`` (uninformative groups dropped). The
``rewards/*`` metrics describe the batch trained on, which the filter biases toward groups that vary.
"""

from __future__ import annotations

from typing import Callable

import torch

from moalign.generation import Generations, take_rows

Round = tuple[Generations, torch.Tensor]  # one round's rollouts (B*G rows) and rewards (B*G, K)


def informative(rewards: torch.Tensor, objective_idx: list[int]) -> torch.Tensor:
    """(B, G, K) rewards -> (B,) bool: the group's rewards are not all equal in at least one objective of
    ``objective_idx`` (so its group-centred advantage there is not zero)."""
    sub = rewards[..., objective_idx]  # (B, G, k)
    return (sub.amax(1) != sub.amin(1)).any(-1)


def choose(masks: list[torch.Tensor], batch: int) -> list[tuple[int, int]]:
    """(round, group) pairs to train on: the first ``batch`` informative groups in draw order, then, if
    they are fewer, the first uninformative ones; returned in draw order."""
    order = [(r, i) for r, m in enumerate(masks) for i in range(len(m))]
    good = [x for x in order if masks[x[0]][x[1]]][:batch]
    bad = [x for x in order if not masks[x[0]][x[1]]][: batch - len(good)]
    return sorted(good + bad)


def dynamic_sample(first: Round, draw: Callable[[int], Round], batch: int, group_size: int,
                   objective_idx: list[int], max_rounds: int, pad_id: int,
                   more: Callable[[bool], bool] = lambda short: short) -> tuple[Generations, torch.Tensor, dict]:
    """Fill a batch of ``batch`` groups with informative ones.

    ``first`` is round 0 (already drawn); ``draw(r)`` draws, generates and scores round r; ``more(short)``
    says whether another round runs given that this process is short (several processes: whether any
    is short). Returns the rollouts and rewards (batch * group_size rows) to train on, in draw order,
    and the ``train/*`` metrics. When nothing is dropped the first round is returned as it is.
    """
    parts, K = [first], first[1].shape[-1]
    masks = [informative(first[1].view(-1, group_size, K), objective_idx)]
    while len(parts) <= max_rounds and more(sum(int(m.sum()) for m in masks) < batch):
        parts.append(draw(len(parts)))
        masks.append(informative(parts[-1][1].view(-1, group_size, K), objective_idx))
    picks = choose(masks, batch)
    kept = sum(int(masks[r][i]) for r, i in picks)
    scored = sum(len(m) for m in masks)
    stats = {"train/sampling_rounds": float(len(parts)), "train/scored_groups": float(scored),
             "train/kept_groups": float(kept),
             "train/filtered_groups": float(scored - sum(int(m.sum()) for m in masks) - (len(picks) - kept))}
    if picks == [(0, i) for i in range(len(masks[0]))]:
        return first[0], first[1], stats
    rows = [(r, i * group_size + j) for r, i in picks for j in range(group_size)]
    g = take_rows([p[0] for p in parts], rows, pad_id)
    rewards = torch.stack([parts[r][1][n] for r, n in rows])
    return g, rewards, stats
