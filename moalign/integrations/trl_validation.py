"""Validation objective vectors for a TRL ``GRPOTrainer``: the user's reward functions on held-out prompts.

The definition is :func:`moalign.evaluate.score_policy`'s: ``samples`` = n >= 1 sampled decodes per
prompt with the trainer's own rollout settings (``trainer.generation_config``: temperature, top_p,
top_k, ...), each prompt's rewards averaged over its n samples first, then over prompts (the
policy's *expected* rewards); ``samples`` = 0 is one greedy decode per prompt. Decoding is seeded
inside a forked RNG, so validation never shifts the training run's random stream.

Where it departs from ``score_policy``, and why: prompts are tokenised by TRL itself
(``trainer._tokenize_prompts``: chat template, special tokens) and completions are decoded and
passed to the reward functions as TRL does (``prompts``, ``completions``, ``completion_ids``, the
dataset's other columns, ``trainer_state``), so each coordinate is exactly the user's reward; the
coordinates are the reward functions themselves (``score_policy`` reports conciseness as
``1 - length / max_new_tokens`` instead). Stateful reward functions (``state_dict`` /
``load_state_dict``) are restored after scoring, so validation leaves no trace in their state.
Not supported (a one-line error says so): reward *models* (``nn.Module`` reward functions) and
vision-language prompts; pass ``validation=<callable>`` to the callback for those.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from typing import Any

import numpy as np
import torch


def _noop(*_: Any, **__: Any) -> None:
    return None


def _call_reward(fn, **kw) -> list[float]:
    out = fn(**kw)
    if inspect.isawaitable(out):
        out = asyncio.run(out)
    return [np.nan if r is None else float(r) for r in out]


@torch.no_grad()
def _generate(trainer, prompt_ids: list[list[int]], do_sample: bool, batch_size: int) -> list[list[int]]:
    """Completion token ids (each cut after its first EOS, EOS kept, as TRL does) for ``prompt_ids``."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    device = next(model.parameters()).device
    pad = trainer._tokenizer.pad_token_id
    gc = copy.deepcopy(trainer.generation_config)
    gc.do_sample = do_sample
    if not do_sample:
        gc.temperature, gc.top_p, gc.top_k, gc.min_p = None, None, None, None
    was_training = model.training
    model.eval()
    out: list[list[int]] = []
    for i in range(0, len(prompt_ids), batch_size):
        chunk = prompt_ids[i : i + batch_size]
        P = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (P - len(p)) + list(p) for p in chunk], device=device)  # (n, P) left-padded
        mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in chunk], device=device)
        comp = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)[:, P:]  # (n, T)
        eos = torch.isin(comp, torch.tensor(trainer.eos_token_ids, device=device))
        for row, e in zip(comp.tolist(), eos.tolist()):
            out.append(row[: e.index(True) + 1] if True in e else row)
    if was_training:
        model.train()
    return out


def validation_point(trainer, dataset, samples: int, seed: int, batch_size: int = 64) -> dict[str, Any]:
    """(K,) point of ``dataset`` (a ``prompt`` column plus the reward functions' columns), every
    coordinate one reward function of ``trainer``; also its prompt-clustered standard errors and the
    (P, K) per-prompt means."""
    names = list(trainer.reward_func_names)
    for fn, name in zip(trainer.reward_funcs, names):
        if isinstance(fn, torch.nn.Module):
            raise ValueError(f"reward function {name!r} is a model; the built-in validation calls plain functions "
                             "only. Fix: pass validation=<callable (model, step) -> point> to the callback")
    rows = list(dataset)
    if not rows or "prompt" not in rows[0]:
        raise ValueError("validation dataset needs rows with a 'prompt' column (as the train dataset). "
                         "Fix: pass a datasets.Dataset or list of dicts with 'prompt' and the reward columns")
    n = max(samples, 1)
    prompts = [r["prompt"] for r in rows for _ in range(n)]  # (P * n,)
    prompt_ids = trainer._tokenize_prompts(prompts)[0]
    device = trainer.accelerator.device
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        comp_ids = _generate(trainer, prompt_ids, samples > 0, batch_size)
    texts = trainer.processing_class.batch_decode(comp_ids, skip_special_tokens=True)
    conversational = isinstance(rows[0]["prompt"], list)
    completions = [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts
    cols = {k: [r[k] for r in rows for _ in range(n)] for k in rows[0] if k not in ("prompt", "completion")}
    per = []  # K arrays of (P,) per-prompt means
    for fn in trainer.reward_funcs:
        saved = copy.deepcopy(fn.state_dict()) if hasattr(fn, "state_dict") else None
        try:
            r = _call_reward(fn, prompts=prompts, completions=completions, completion_ids=comp_ids, **cols,
                             trainer_state=trainer.state, log_extra=_noop, log_metric=_noop)
        finally:
            if saved is not None:
                fn.load_state_dict(saved)
        with np.errstate(all="ignore"):
            per.append(np.nanmean(np.asarray(r, dtype=float).reshape(len(rows), n), axis=1))
    per_prompt = np.stack(per, 1)  # (P, K)
    P = len(rows)
    with np.errstate(all="ignore"):
        point = np.nanmean(per_prompt, axis=0)
        se = np.nanstd(per_prompt, axis=0, ddof=1) / np.sqrt(P) if P > 1 else np.zeros(len(names))
    if np.isnan(point).any():
        bad = [nm for nm, v in zip(names, point) if np.isnan(v)]
        raise ValueError(f"reward functions {bad} returned None for every validation completion. Fix: give the "
                         "validation rows the columns these functions need")
    return {"point": point, "se": se, "per_prompt": per_prompt}
