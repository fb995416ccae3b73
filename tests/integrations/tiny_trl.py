"""A tiny TRL world for the adapter's tests: a 2-layer random Llama, the arithmetic tokenizer, toy rewards.

The toy rewards vary within every group of a random policy's completions (so gradients are
non-zero): ``even`` is the share of even token ids in a completion, ``odd`` = 1 - even (the exact
opposite, so g_odd = -g_even), ``even2`` a second copy of ``even`` (a different name, the same
reward), ``length`` a stateful reward (running mean of lengths, the shape of moalign's conciseness).
"""

from __future__ import annotations

from pathlib import Path

import torch

from moalign.data.arith import corpus, generate
from moalign.modeling import tiny_config, train_tokenizer

_ROWS = generate({"en": 60, "de": 2}, 4, 4, {"add": 1}, 0)
TOK = train_tokenizer(corpus(_ROWS["train"]), 300)


def rows(split: str, n: int) -> list[dict]:
    return [{"prompt": f"Question: {r['question']}\nSolution:", "answer": r["answer"]} for r in _ROWS[split][:n]]


def dataset(split: str = "train", n: int = 32):
    import datasets

    return datasets.Dataset.from_list(rows(split, n))


def model(seed: int = 0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config("llama", len(TOK), 32, 2, 2, 256, TOK))


def _even_share(ids: list[int]) -> float:
    return sum(t % 2 == 0 for t in ids) / max(len(ids), 1)


def even(completions, completion_ids, **_):
    return [_even_share(c) for c in completion_ids]


def even2(completions, completion_ids, **_):
    return [_even_share(c) for c in completion_ids]


def odd(completions, completion_ids, **_):
    return [1.0 - _even_share(c) for c in completion_ids]


class Length:
    """Stateful: 1 if the completion has at most the running mean of tokens (this batch included), else 0."""

    __name__ = "length"

    def __init__(self):
        self.total, self.count = 0.0, 0

    def __call__(self, completions, completion_ids, **_):
        self.total += sum(len(c) for c in completion_ids)
        self.count += len(completion_ids)
        return [float(len(c) <= self.total / self.count) for c in completion_ids]

    def state_dict(self):
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, s):
        self.total, self.count = float(s["total"]), int(s["count"])


def args(out: Path, **kw):
    """GRPOConfig of a few CPU steps: 2 prompts x 4 generations per step, 8-token completions."""
    from trl import GRPOConfig

    base = dict(output_dir=str(out), per_device_train_batch_size=8, num_generations=4, max_completion_length=8,
                max_steps=3, learning_rate=1e-2, logging_steps=1, report_to="none", use_cpu=True, bf16=False,
                save_strategy="no", disable_tqdm=True, seed=0, dataloader_num_workers=0)
    return GRPOConfig(**{**base, **kw})
