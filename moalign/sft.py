"""SFT core: warm-start the policy on the balanced mixture so RL has signal.

The batch sampler follows the balance plan (phases and loss weights); the loss (``sft.loss``,
default ``token_mean``) is the cross-entropy of every target token of the batch, each token
multiplied by its domain's loss weight
(1 except for scalarization), averaged over the batch. Evaluation reports per-domain
validation loss and accuracy of greedy answers, graded by :func:`moalign.grading.grade`
(the grader of the RL accuracy reward and of evaluation).

Prompts and targets are rendered by :mod:`moalign.text` for the tokenizer at hand: with a chat
template the target is the assistant turn, the loss covers only its tokens (content and the
end-of-turn EOS, so generation learns to stop) and never the prompt or the template's system turn.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from moalign import checkpoint

from moalign.generation import BACKENDS
from moalign.grading import grade
from moalign.config import LoraConfig, SFTConfig  # noqa: F401 - torch-free home: moalign/config.py
from moalign.text import format_prompt, format_target


def until_eos(ids: list[int], eos: int) -> list[int]:
    """``ids`` cut right after their first EOS, or with EOS appended when they hold none."""
    return ids[: ids.index(eos) + 1] if eos in ids else ids + [eos]


def encode_rows(tok, rows: list[dict]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, target ids ending with EOS) per row (moalign.text renders both)."""
    prompts = tok([format_prompt(r["question"], tok) for r in rows], add_special_tokens=False)["input_ids"]
    targets = [format_target(r["question"], r.get("solution") or "", r["answer"], tok) for r in rows]
    comps = tok(targets, add_special_tokens=False)["input_ids"]
    return [(p, until_eos(c, tok.eos_token_id)) for p, c in zip(prompts, comps)]


def collate(encoded: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids (B, L), attention mask (B, L), labels (B, L) with -100 outside completions."""
    L = max(len(p) + len(c) for p, c in encoded)
    ids = torch.full((len(encoded), L), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), L), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), L), dtype=torch.long)
    for i, (p, c) in enumerate(encoded):
        seq = p + c
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, len(p) : len(seq)] = torch.tensor(c)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def sequence_ce(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) summed cross-entropy of each sequence's completion tokens, and (B,) their counts."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="none"
    ).view(labels.shape)
    valid = (labels != -100).float()
    return (ce * valid).sum(-1), valid.sum(-1)


def per_sequence_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B,) token-mean cross-entropy of each sequence's completion."""
    total, n = sequence_ce(model, batch)
    return total / n.clamp(min=1)


def weighted_loss(per_seq: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scalarization (Upsample-or-Upweight eq. for w_i): mean_b w_{d(b)} * loss_b (sequence mean)."""
    return (per_seq * weights).mean()


def weighted_token_loss(total: torch.Tensor, n: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_b w_{d(b)} * CE_b / sum_b n_b: every target token weighs the same (times its domain weight)."""
    return (total * weights).sum() / n.sum().clamp(min=1)


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        prog = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))

    return f


@torch.no_grad()
def evaluate_policy(model, tok, rows: list[dict], max_new_tokens: int, batch_size: int = 64) -> dict[str, float]:
    """Per-domain validation loss and greedy exact-match accuracy: ``eval/<domain>/{loss,accuracy}``."""
    device = next(model.parameters()).device
    model.eval()
    enc = encode_rows(tok, rows)
    losses: list[float] = []
    for i in range(0, len(enc), batch_size):
        b = {k: v.to(device) for k, v in collate(enc[i : i + batch_size], tok.pad_token_id).items()}
        losses += per_sequence_loss(model, b).tolist()
    gens = BACKENDS.get("fast")(model, tok, [format_prompt(r["question"], tok) for r in rows], max_new_tokens, False)
    by = defaultdict(lambda: defaultdict(list))
    for r, loss, text, n in zip(rows, losses, gens.texts, gens.lengths):
        ok = grade(text, r["answer"])
        for d in (r["domain"], "all"):
            by[d]["loss"].append(loss)
            by[d]["accuracy"].append(float(ok))
            by[d]["length"].append(n)
    model.train()
    return {f"eval/{d}/{k}": sum(v) / len(v) for d, kv in by.items() for k, v in kv.items()}


@torch.no_grad()
def domain_losses(model, tok, rows: list[dict], prefix: str = "val_loss", batch_size: int = 64) -> dict[str, float]:
    """Mean per-sequence completion loss per domain, no generation: ``{f"{prefix}/{domain}": loss}``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    enc = encode_rows(tok, rows)
    by: dict[str, list[float]] = defaultdict(list)
    for i in range(0, len(enc), batch_size):
        b = {k: v.to(device) for k, v in collate(enc[i : i + batch_size], tok.pad_token_id).items()}
        for r, loss in zip(rows[i : i + batch_size], per_sequence_loss(model, b).tolist()):
            by[r["domain"]].append(loss)
    if was_training:
        model.train()
    return {f"{prefix}/{d}": sum(v) / len(v) for d, v in sorted(by.items())}


def curve_point(model, tok, curve_rows: dict[str, list[dict]], step: int) -> dict[str, float]:
    """One point of the per-domain loss curves: ``step`` and ``<prefix>/<domain>`` for each row set."""
    point: dict[str, float] = {"step": step}
    for prefix, rows in curve_rows.items():
        point |= domain_losses(model, tok, rows, prefix)
    return point


def train_sft(model, tok, encoded: list, sampler, cfg: SFTConfig, val_rows: list[dict],
              log_fn: Callable[[dict[str, float], int], None] | None = None,
              ckpt_dir: str | Path | None = None, fingerprint: str = "",
              curve_rows: dict[str, list[dict]] | None = None) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The SFT loop: AdamW, warmup + cosine, plan-sampled weighted batches, periodic eval and checkpoints.

    Every ``cfg.val_loss_every`` steps (and at step 0) the per-domain loss of each row set in
    ``curve_rows`` (default ``{"val_loss": val_rows}``; e.g. add ``"train_loss": <train rows>``
    to see overfitting) is logged and appended to the history as ``{"step", "<prefix>/<domain>"}``;
    the periodic evals append ``{"step", "eval/<domain>/<metric>"}``. Resumes from ``ckpt_dir``
    when it holds a checkpoint with ``fingerprint``. Returns the history and the last eval metrics.
    """
    curve_rows = {"val_loss": val_rows} if curve_rows is None else curve_rows
    log = logging.getLogger("moalign.sft")
    log_fn = log_fn or (lambda m, s: None)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_steps, cfg.max_steps))
    start, history = 0, []
    state = checkpoint.latest(ckpt_dir, fingerprint) if ckpt_dir else None
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        start, history = state["step"], state["history"]
        log.info("resuming from checkpoint at step %d", start)
    metrics: dict[str, float] = {}
    if start == 0 and curve_rows:
        point = curve_point(model, tok, curve_rows, 0)
        history.append(point)
        log_fn({k: v for k, v in point.items() if k != "step"}, 0)
    model.train()
    for step in tqdm(range(start, cfg.max_steps), initial=start, total=cfg.max_steps, desc="sft", mininterval=5):
        idx, weights = sampler.batch(step)
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx], tok.pad_token_id).items()}
        w = torch.tensor(weights, device=device)
        if cfg.loss == "token_mean":
            loss = weighted_token_loss(*sequence_ce(model, batch), w)
        else:
            loss = weighted_loss(per_sequence_loss(model, batch), w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        done = step + 1
        if done % 10 == 0 or done == cfg.max_steps:
            log_fn({"losses/train": loss.item(), "charts/grad_norm": float(gnorm),
                    "charts/lr": sched.get_last_lr()[0], "charts/phase": sampler.phase_at(step)}, done)
        if curve_rows and (done % cfg.val_loss_every == 0 or done == cfg.max_steps):
            point = curve_point(model, tok, curve_rows, done)
            history.append(point)
            log_fn({k: v for k, v in point.items() if k != "step"}, done)
        if done % cfg.eval_every == 0 or done == cfg.max_steps:
            metrics = evaluate_policy(model, tok, val_rows, cfg.max_new_tokens)
            history.append({"step": done, **metrics})
            log_fn(metrics, done)
            log.info("step %d: %s", done, {k: round(v, 3) for k, v in metrics.items() if "/all/" in k})
        if ckpt_dir and done % cfg.checkpoint_every == 0 and done < cfg.max_steps:
            checkpoint.save(ckpt_dir, done, fingerprint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                                          "scheduler": sched.state_dict(), "history": history})
    return history, metrics
