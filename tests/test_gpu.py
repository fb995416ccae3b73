"""CUDA/bf16 checks (skipped without a GPU)."""

import copy

import pytest
import torch

from moalign.rl.config import TrainConfig
from moalign.rl.trainer import train
from tests.test_core_sft import tiny

pytestmark = pytest.mark.gpu


def test_train_step_cuda_bf16():
    rows, tok, model = tiny()
    m = copy.deepcopy(model).to("cuda", dtype=torch.bfloat16)
    before = [p.detach().clone() for p in m.parameters()]
    cfg = TrainConfig(max_steps=1, prompts_per_step=2, group_size=2, max_new_tokens=8, eval_every=1, val_rows=2)
    res = train(cfg, "gradient", m, tok, rows["train"], rows["val"], seed=0)
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))
    assert abs(sum(res.weights[-1]) - 1) < 1e-3


def test_fast_backend_cuda_graphs_match_generate():
    """fast on CUDA (static shapes + torch.compile reduce-overhead) gives generate's greedy tokens (fp32)."""
    from moalign.generation import BACKENDS

    rows, tok, model = tiny()
    m = copy.deepcopy(model).to("cuda")
    prompts = [f"Question: {i} + {2 * i} = ?\nSolution:" for i in range(4)]
    ref = BACKENDS.get("hf")(m, tok, prompts, 16, False)
    got = BACKENDS.get("fast")(m, tok, prompts, 16, False)
    assert torch.equal(got.ids.cpu(), ref.ids.cpu())
