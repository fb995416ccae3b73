"""Resume is exact: a run killed after a checkpoint and resumed equals the uninterrupted run bit for bit.

On the learnable fixture (tests/rl/learnable.py: rewards vary, gradients are non-zero, the
conciseness running mean moves), compared bit for bit: the policy's parameters at the end, and the
whole checkpoint of a step after the resume (policy, AdamW state, weighting state - weights,
reference, buffer, meta -, reward state, result so far), plus the final reward state and weights
from the rank dump. The resumed run must also *resume* (start after the checkpoint): everything
is seeded by (seed, step), so a run that silently restarted from step 0 would match too.
"""

import json

import pytest
import torch

from moalign import checkpoint
from moalign.rl.distributed import DUMP_ENV
from moalign.rl.trainer import train
from tests.rl.learnable import Stopped, cfg, learnable, same, stop_at


@pytest.mark.parametrize("strategy", ["gradient", "hypervolume"])
def test_resume_after_kill_is_bit_exact(tmp_path, monkeypatch, strategy):
    rows, tok, _ = learnable()
    c = cfg(max_steps=4, checkpoint_every=1, eval_every=1)  # t_digits + conciseness (a reward state)

    def run(ckpt, dump, stop_after=None, steps=None):
        monkeypatch.setenv(DUMP_ENV, str(tmp_path / dump))
        m = learnable()[2]
        res = train(c, strategy, m, tok, rows["train"], rows["val"], seed=0, ckpt_dir=tmp_path / ckpt,
                    fingerprint="f", on_checkpoint=stop_at(stop_after),
                    log_fn=(lambda metrics, s: steps.append(s)) if steps is not None else None)
        return m, res, json.loads((tmp_path / dump / "rank0.json").read_text())

    full_m, full, full_dump = run("a", "dump-a")
    with pytest.raises(Stopped):
        run("b", "dump-b", stop_after=2)
    steps: list[int] = []
    res_m, resumed, res_dump = run("b", "dump-b", steps=steps)
    assert steps == [3, 4] and res_dump["start"] == 2  # it resumed after the step-2 checkpoint
    # the run had something to carry over: gradients, a moving reward state, buffer points
    assert all(h["charts/grad_norm"] > 0 for h in full.history)
    assert len({h["rewards/conciseness/mean"] for h in full.history}) > 1
    for (na, pa), (nb, pb) in zip(full_m.state_dict().items(), res_m.state_dict().items()):
        assert na == nb and torch.equal(pa, pb), na
    a, b = checkpoint.latest(tmp_path / "a", "f"), checkpoint.latest(tmp_path / "b", "f")
    assert a["step"] == b["step"] == 3  # written after the resume by the resumed run
    for key in ("model", "optimizer", "weighting", "rewards", "result"):
        same(a[key], b[key], key)
    assert a["optimizer"]["state"] and a["rewards"]["conciseness"]["count"] == 3 * 16
    assert len(a["weighting"]["buffer"]) >= 1
    same(full, resumed, "result")
    for key in ("param_hash", "final_weights", "weights", "validation", "rewards_state"):
        same(full_dump[key], res_dump[key], key)
