"""The one training entry: the SFT policy, its tokenizer and the prepared rows, loaded as the train stage loads them.

``stages/train.py`` (the DVC stage, with its Accelerator, checkpoints and snapshots) and ``moalign study``
(many short runs in one process) both load what they train through :func:`load_sft` and
:func:`training_rows`, so a study run starts from exactly what ``train@<strategy>`` starts from:
``models/sft`` (+ fresh LoRA adapters when SFT used LoRA, the pretrained-lr warning, the frozen SFT
reference when ``kl_coef`` > 0: with LoRA the same model with its adapters off) and
``data/prepared/{train,val}`` with the first ``train.val_rows``
validation rows as the trainer's validation points.

    policy, tok, res = train_from_sft(load_params(), "hypervolume", seed=0, steps=40,
                                      overrides={"weighting": {"hv_scale": 10.0}})
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import numpy as np

from moalign.config import Params
from moalign.rl.config import TrainConfig
from moalign.schema import deep_merge

SFT = Path("models/sft")
PREPARED = Path("data/prepared")


def train_config(params: Params, overrides: dict[str, Any] | None = None, steps: int | None = None) -> TrainConfig:
    """``params.train`` with ``overrides`` (nested keys of the train section) and ``max_steps = steps`` applied."""
    raw = params.section("train")
    if steps is not None:
        raw["max_steps"] = steps
    try:
        return TrainConfig(**deep_merge(raw, overrides or {}))
    except Exception as e:  # pydantic ValidationError: name the override
        raise ValueError(f"train overrides {overrides} give an invalid train config ({e}). "
                         "Fix: use keys and values of the train section") from None


def load_sft(params: Params, cfg: TrainConfig, device, dtype, root: str | Path = "."):
    """(tokenizer, trainable policy on ``device``, frozen SFT reference or None) from ``<root>/models/sft``."""
    import torch  # noqa: F401 - the policy's library

    from moalign.guards import warn_pretrained
    from moalign.modeling import load_tokenizer, reference_policy, trainable_policy

    sft = Path(root) / SFT
    tok = load_tokenizer(sft)
    model = trainable_policy(sft, dtype=dtype).to(device)  # + fresh LoRA adapters when SFT used LoRA
    warn_pretrained("train", bool(params.prepare.model.name_or_path), cfg.lr, hasattr(model, "peft_config"),
                    model, device)
    ref = reference_policy(model) if cfg.kl_coef > 0 else None  # LoRA: the same model, adapters off
    return tok, model, ref


def load_split(name: str, root: str | Path = ".") -> list[dict]:
    """All rows of ``<root>/data/prepared/<name>``."""
    import datasets

    return list(datasets.load_from_disk(str(Path(root) / PREPARED / name)))


def training_rows(cfg: TrainConfig, root: str | Path = ".") -> tuple[list[dict], list[dict]]:
    """(train rows, the validation rows the trainer scores during training: the first ``cfg.val_rows`` of val)."""
    return load_split("train", root), load_split("val", root)[: cfg.val_rows]


def seed_all(seed: int, threads: int = 0) -> None:
    """python, numpy and torch from ``seed``; torch CPU threads (0 keeps the current number)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


def train_from_sft(params: Params, strategy: str, seed: int, *, overrides: dict[str, Any] | None = None,
                   steps: int | None = None, root: str | Path = ".", threads: int | None = None,
                   log_fn: Callable[[dict, int], None] | None = None, selection_cache: str | Path | None = None):
    """Train ``strategy`` from the SFT policy for ``steps`` (default ``train.max_steps``) updates with ``seed``.

    Returns ``(policy, tokenizer, TrainResult)``; nothing is written (no checkpoints, no snapshots) but the
    pass rates of ``train.prompt_selection`` in ``selection_cache`` (a JSON file, read when it exists): the
    caller decides what to keep. ``overrides``: nested keys of the train section for this run only.
    """
    from moalign.rl.trainer import train

    cfg = train_config(params, overrides, steps)
    tok, model, ref = _seeded_sft(params, cfg, seed, root, threads)
    train_rows, val_rows = training_rows(cfg, root)
    res = train(cfg, strategy, model, tok, train_rows, val_rows, seed, ref_model=ref, log_fn=log_fn,
                selection_cache=selection_cache)
    return model, tok, res


def start_policy(params: Params, root: str | Path = ".", threads: int | None = None):
    """``(policy, tokenizer)``: the SFT policy every RL run starts from, untrained (the study's ``start`` row)."""
    tok, model, _ = _seeded_sft(params, train_config(params, {"kl_coef": 0.0}), 0, root, threads)
    return model.eval(), tok


def _seeded_sft(params: Params, cfg: TrainConfig, seed: int, root: str | Path, threads: int | None):
    """:func:`load_sft` on ``base.device`` in ``base.dtype`` after :func:`seed_all` (``threads``: default base.threads)."""
    from moalign.modeling import resolve_device, resolve_dtype

    seed_all(seed, params.base.threads if threads is None else threads)
    device = resolve_device(params.base.device)
    return load_sft(params, cfg, device, resolve_dtype(params.base.dtype, device), root)
