"""The learnable fixture of the trainer tests: a tiny task the tiny policy measurably learns in seconds on CPU.

Why it exists: on a random-init tiny policy every completion hits the token cap, every built-in
reward is 0 and every gradient is 0, so a trainer with a flipped sign, a zeroed policy-gradient
term or an ignored setting passes every test. Here:

- the policy (:func:`learnable`) is a 1-layer Llama (hidden 32) briefly fitted (60 AdamW steps,
  about a second) to answer every prompt with 1-6 random tokens, each a digit or a word with
  probability 1/2, then EOS. Its rollouts therefore differ inside a group in length (conciseness
  varies; some hit the 8-token cap) and in the share of digit and letter characters;
- the test objectives (registered in ``REWARDS`` on import) are stateless shares of characters:
  ``t_digits`` (digits), ``t_letters`` (letters), ``t_space`` (whitespace) and ``t_const``
  (always 1: zero advantages); ``conciseness`` is the built-in stateful one (running mean length);
- :func:`cfg` is the TrainConfig every trainer test starts from (lr 1e-2: eight steps move the
  digit share by tenths; lr 3e-2 collapsed the policy onto words or onto one length on ~7% of
  seeds, which is what made this fixture's guards flip with the CPU's vector kernels).

Oracles (:func:`oracle_grads`, :func:`recorded_rollouts`): the ``t_record`` generation backend
records what the trainer sampled; the expected policy gradient is then recomputed from those
rollouts with an independent log-prob forward and ``combine_advantages`` / ``policy_loss`` (the
project's definitions, not a copy of their formulas, so the tests follow them when they change).
:class:`GradSpy` replaces ``torch.optim.AdamW`` to read the gradient the trainer steps with.
"""

from __future__ import annotations

import dataclasses
import os
import random
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch

from moalign.fastgen import fast_generate
from moalign.generation import BACKENDS, Generations, position_ids
from moalign.rl.config import TrainConfig
from moalign.rl.estimators import combine_advantages, policy_loss
from moalign.rl.rewards import REWARDS
from moalign.text import format_prompt


# Seed of the fixture's fit and of the trainer tests that use it: ``MOALIGN_TEST_SEED=7 pytest -m stochastic``
# reruns them on another draw (what another machine's float rounding amounts to). Thresholds beside the
# assertions were measured over seeds 0-19 (x fits 0-3 for the fixture) under torch's default, avx2 and
# avx512 CPU kernels.
SEED = int(os.environ.get("MOALIGN_TEST_SEED", "0"))


def _share(pred):
    class Share:  # test objective: ``scale`` x share of characters satisfying ``pred`` (varies within a group)
        def __init__(self, scale: float = 1.0):
            self.scale = scale

        def __call__(self, completions, **_):
            return [self.scale * sum(map(pred, t)) / max(len(t), 1) for t in completions]
    return Share


class Const:  # test objective: the same reward for every rollout (all advantages are 0)
    def __call__(self, completions, **_):
        return [1.0] * len(completions)


TEST_OBJECTIVES = {"t_digits": _share(str.isdigit), "t_letters": _share(str.isalpha),
                   "t_space": _share(str.isspace), "t_const": Const}
for _name, _factory in TEST_OBJECTIVES.items():
    if _name not in REWARDS:
        REWARDS.register(_name)(_factory)


class Recorder:
    """The ``t_record`` generation backend: ``fast`` plus a log of every call (prompts, sampled?, output)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool, Generations]] = []

    def __call__(self, model, tok, prompts, max_new_tokens, do_sample, *args, **kw) -> Generations:
        g = fast_generate(model, tok, prompts, max_new_tokens, do_sample, *args, **kw)
        self.calls.append((list(prompts), do_sample, g))
        return g


RECORDER = Recorder()
if "t_record" not in BACKENDS:
    BACKENDS.register("t_record")(RECORDER)


@contextmanager
def recording() -> Iterator[Recorder]:
    """Clear the ``t_record`` log, yield it (use ``cfg(generation_backend="t_record")``)."""
    RECORDER.calls = []
    yield RECORDER


def recorded_rollouts(rec: Recorder, train_rows: list[dict]) -> list[Generations]:
    """The training rollouts among the recorded calls (their prompts are train prompts; validation uses val rows)."""
    train_prompts = {format_prompt(r["question"]) for r in train_rows}
    return [g for prompts, sampled, g in rec.calls if sampled and set(prompts) <= train_prompts]


@lru_cache(maxsize=1)
def _fitted() -> tuple[dict, object, dict]:
    from moalign.data.arith import corpus, generate
    from moalign.modeling import tiny_config, train_tokenizer
    from transformers import AutoModelForCausalLM

    rows = generate({"en": 60, "de": 2}, 2, 2, {"add": 1}, 0)
    tok = train_tokenizer(corpus(rows["train"]), 300)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", len(tok), 32, 1, 2, 128, tok))
    vocab = tok.get_vocab()
    digits = sorted(i for t, i in vocab.items() if len(t.lstrip("Ġ")) == 1 and t.lstrip("Ġ").isdigit())
    words = sorted(i for t, i in vocab.items() if t.startswith("Ġ") and len(t) > 2 and t[1:].isalpha())
    rng = random.Random(SEED)
    prompts = [tok(format_prompt(r["question"]), add_special_tokens=False)["input_ids"] for r in rows["train"]]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(60):
        seqs, labels = [], []
        for _ in range(32):
            p = rng.choice(prompts)
            c = [rng.choice(digits if rng.random() < 0.5 else words) for _ in range(rng.randint(1, 6))]
            seqs.append(p + c + [tok.eos_token_id])
            labels.append([-100] * len(p) + c + [tok.eos_token_id])
        L = max(map(len, seqs))
        ids = torch.full((len(seqs), L), tok.pad_token_id)
        lab = torch.full((len(seqs), L), -100)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for i, (s, lb) in enumerate(zip(seqs, labels)):
            ids[i, : len(s)], lab[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), torch.tensor(lb), 1
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return rows, tok, {k: v.clone() for k, v in model.state_dict().items()}


def learnable():
    """(rows, tok, model): the fitted policy, a fresh copy on every call (tests may train it in place)."""
    rows, tok, state = _fitted()
    from moalign.modeling import tiny_config
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(tiny_config("llama", len(tok), 32, 1, 2, 128, tok))
    model.load_state_dict(state)
    return rows, tok, model


def cfg(**kw) -> TrainConfig:
    """The trainer tests' config: 4 prompts x 4 rollouts of <= 8 tokens, lr 1e-2, objectives t_digits + conciseness."""
    base = dict(max_steps=4, prompts_per_step=4, group_size=4, max_new_tokens=8, eval_every=2, val_rows=4,
                val_samples=2, checkpoint_every=2, snapshot_every=2, lr=1e-2, objectives=["t_digits", "conciseness"],
                strategies=["fixed", "hypervolume", "gradient"], grad_layers=[r"mlp\.down_proj"])
    base.update(kw)
    return TrainConfig(**base)


def completion_logprobs(model, g: Generations) -> torch.Tensor:
    """(N, L-1) log-prob of each next token, from one plain forward (independent of the trainer's bucketing)."""
    logits = model(input_ids=g.ids, attention_mask=g.mask, position_ids=position_ids(g.mask)).logits[:, :-1]
    return torch.log_softmax(logits.float(), -1).gather(-1, g.ids[:, 1:, None])[..., 0]


def rollout_rewards(c: TrainConfig, g: Generations) -> torch.Tensor:
    """(B, G, K) rewards of the rollouts ``g`` under the config's (stateless test) objectives."""
    fns = {o: REWARDS.get(o)(**c.reward_options.get(o, {})) for o in c.objectives}
    r = torch.tensor([fns[o](g.texts) for o in c.objectives], dtype=torch.float32).T  # (N, K)
    return r.view(-1, c.group_size, len(c.objectives))


def oracle_grads(model, c: TrainConfig, g: Generations, weights: torch.Tensor) -> list[torch.Tensor]:
    """Expected gradient of the first update (no KL) from the rollouts ``g`` of ``model``, one per parameter.

    Rewards from the (stateless) test objectives, advantages by ``combine_advantages`` with the
    config's estimator, aggregation and std, loss by ``policy_loss`` at ratio 1.
    """
    adv = combine_advantages(rollout_rewards(c, g), weights, c.estimator, c.aggregation, c.std).reshape(-1)  # (N,)
    logp = completion_logprobs(model, g)
    loss, _ = policy_loss(logp, logp.detach(), adv, g.completion_mask[:, 1:], c.clip_eps)
    params = [p for p in model.parameters() if p.requires_grad]
    return [x if x is not None else torch.zeros_like(p)
            for x, p in zip(torch.autograd.grad(loss, params, allow_unused=True), params)]


class GradSpy(torch.optim.AdamW):
    """AdamW that keeps a copy of the gradients of every ``step()`` (monkeypatch it over torch.optim.AdamW)."""

    steps: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        GradSpy.steps.append([p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                              for grp in self.param_groups for p in grp["params"]])
        return super().step(closure)


def flat(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def same(a, b, where="state"):
    """Bitwise equality of nested states (tensors, arrays, dicts, lists, TrainResult); wall times excluded."""
    from moalign.rl.trainer import TrainResult

    if isinstance(a, TrainResult):
        a, b = dataclasses.asdict(a), dataclasses.asdict(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        ka, kb = ({k for k in x if not str(k).startswith("perf/")} for x in (a, b))
        assert ka == kb, where
        for k in ka:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


class Stopped(RuntimeError):
    """What :func:`stop_at` raises: the stand-in for a kill right after a checkpoint, in-process."""


def stop_at(step: int | None):
    """``train(..., on_checkpoint=stop_at(2))`` stops the run once the checkpoint of step 2 is complete."""
    def hook(done: int) -> None:
        if step is not None and done >= step:
            raise Stopped(f"stopped after step {done}")
    return hook
