"""Dynamic sampling (``train.dynamic_sampling``, moalign/rl/filtering.py): the filter, the rounds, the trainer.

Hand-made groups check :func:`informative`, :func:`choose` and :func:`dynamic_sample`; the learnable
fixture (tests/rl/learnable.py) checks the trainer: a filter that never keeps a group (``t_const``)
exhausts the rounds and trains on the first round, as without the filter; a filter on ``t_digits``
trains on B*G rollouts whose groups vary, the first informative ones in draw order; the option off
(or on with nothing filtered) changes nothing; a run with it on resumes bit for bit.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from moalign import checkpoint
from moalign.config import Params
from moalign.generation import Generations
from moalign.rl import filtering, trainer
from moalign.rl.distributed import DUMP_ENV
from moalign.rl.filtering import choose, dynamic_sample, informative
from moalign.rl.trainer import train
from moalign.schema import ParamsError
from tests.rl.learnable import Stopped, cfg, learnable, recorded_rollouts, recording, same, stop_at
from tests.tiny import ROOT, merge


def groups(*rows: list[list[float]]) -> torch.Tensor:
    """(B, G, K) rewards from B groups written as G rows of K rewards each."""
    return torch.tensor(rows, dtype=torch.float32)


# --- the filter ---------------------------------------------------------------------------------------------


def test_informative_is_a_spread_in_any_listed_objective():
    r = groups([[0, 1], [0, 0], [0, 1]],  # accuracy all 0 (the usual real-model group), length varies
               [[1, 0], [1, 1], [1, 0]],  # accuracy all 1
               [[0, 1], [1, 1], [0, 1]],  # accuracy varies, length constant
               [[0.5, 0], [0.5, 0], [0.5000001, 0]])  # a spread is any difference, however small
    assert informative(r, [0]).tolist() == [False, False, True, True]
    assert informative(r, [1]).tolist() == [True, True, False, False]
    assert informative(r, [0, 1]).tolist() == [True, True, True, True]  # any listed objective that varies
    assert informative(groups([[1, 0]], [[0, 1]]), [0, 1]).tolist() == [False, False]  # one rollout: no spread


def test_choose_takes_the_first_informative_groups_then_fills():
    m = [torch.tensor([False, True, False, True]), torch.tensor([True, True, False, False])]
    assert choose(m, 3) == [(0, 1), (0, 3), (1, 0)]  # first three informative, in draw order
    assert choose(m, 4) == [(0, 1), (0, 3), (1, 0), (1, 1)]  # surplus beyond B is cut
    assert choose([torch.tensor([False, True, False, False])], 4) == [(0, 0), (0, 1), (0, 2), (0, 3)]  # filled
    assert choose([torch.tensor([False, False]), torch.tensor([True, False])], 2) == [(0, 0), (1, 0)]


def gens(prompt: list[list[int]], comp: list[list[int]], tag: str) -> Generations:
    """A hand-made rollout batch: left-padded prompts (0 = pad) then completions (0 = after EOS)."""
    p, c = torch.tensor(prompt), torch.tensor(comp)
    ids, mask = torch.cat([p, c], 1), torch.cat([p != 0, c != 0], 1).long()
    cmask = torch.cat([torch.zeros_like(p), (c != 0).long()], 1)
    return Generations([f"{tag}{i}" for i in range(len(p))], ids, mask, cmask, (c != 0).sum(1).tolist())


def test_dynamic_sample_rounds_selection_and_padding():
    B, G = 2, 2
    first = (gens([[0, 5], [0, 5], [6, 7], [6, 7]], [[1, 0], [2, 0], [3, 3], [3, 0]], "a"),
             torch.tensor([[1.0], [1.0], [0.0], [1.0]]))  # group 0 constant, group 1 varies
    second = (gens([[8], [8], [9], [9]], [[4, 4, 4], [4, 0, 0], [5, 0, 0], [5, 5, 0]], "b"),
              torch.tensor([[0.0], [0.0], [0.0], [1.0]]))  # group 0 constant, group 1 varies
    drawn, asked = [], []

    def draw(r):
        drawn.append(r)
        return second

    def more(short):
        asked.append(short)
        return short

    g, rew, stats = dynamic_sample(first, draw, B, G, [0], max_rounds=3, pad_id=0, more=more)
    assert drawn == [1] and asked == [True, False]  # one extra round filled the batch
    assert stats == {"train/sampling_rounds": 2.0, "train/scored_groups": 4.0, "train/kept_groups": 2.0,
                     "train/filtered_groups": 2.0}
    assert g.texts == ["a2", "a3", "b2", "b3"] and g.lengths == [2, 1, 1, 2] and rew[:, 0].tolist() == [0, 1, 0, 1]
    # one layout [prompt | completion]: prompts left-padded to 2 columns, completions right-padded to 3
    assert g.completion_start == 2
    assert g.ids.tolist() == [[6, 7, 3, 3, 0], [6, 7, 3, 0, 0], [0, 9, 5, 0, 0], [0, 9, 5, 5, 0]]
    assert g.mask.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0, 1, 1, 1, 0]]
    assert g.completion_mask[:, 2:].tolist() == g.mask[:, 2:].tolist() and not g.completion_mask[:, :2].any()

    # rounds run out: the kept group plus the first uninformative one; every round is asked about
    drawn.clear(), asked.clear()
    never = (second[0], torch.zeros(4, 1))
    g, rew, stats = dynamic_sample(first, lambda r: drawn.append(r) or never, B, G, [0], 2, 0, more)
    assert drawn == [1, 2] and asked == [True, True]
    assert g.texts == ["a0", "a1", "a2", "a3"] and stats["train/kept_groups"] == 1.0
    assert stats["train/filtered_groups"] == 4.0 and stats["train/sampling_rounds"] == 3.0

    # nothing dropped: the first round itself (no re-padding); max_rounds 0: no extra round, only the metrics
    full = (first[0], torch.tensor([[0.0], [1.0], [0.0], [1.0]]))
    assert dynamic_sample(full, None, B, G, [0], 3, 0)[0] is full[0]
    g, _, stats = dynamic_sample(first, None, B, G, [0], 0, 0)
    assert g is first[0] and stats["train/kept_groups"] == 1.0 and stats["train/sampling_rounds"] == 1.0
    # another process still short: this one runs the round too (every rank the same rounds)
    g, _, stats = dynamic_sample(full, lambda r: second, B, G, [0], 1, 0, more=lambda short: True)
    assert stats["train/sampling_rounds"] == 2.0 and g is full[0]  # its own first B groups are kept


# --- the config ---------------------------------------------------------------------------------------------


def params(**ds) -> Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    return Params(merge(raw, {"train": {"dynamic_sampling": ds}}))


def test_config_default_off_and_errors_name_the_key():
    p = params()
    assert p.train.dynamic_sampling.enabled is False and p.train.dynamic_sampling.objectives == ["accuracy"]
    assert params(enabled=True, objectives=["accuracy", "clarity"]).train.dynamic_sampling.max_rounds == 3
    for ds, key in [({"max_round": 2}, "train.dynamic_sampling.max_round: unknown key"),
                    ({"max_rounds": -1}, "train.dynamic_sampling.max_rounds"),
                    ({"enabled": 1}, "train.dynamic_sampling.enabled"),
                    ({"objectives": []}, "train.dynamic_sampling.objectives"),
                    ({"objectives": ["acuracy"]}, "dynamic_sampling.objectives names 'acuracy'")]:
        with pytest.raises(ParamsError, match="invalid params") as e:
            params(**ds)
        assert key in str(e.value), (key, str(e.value))
    with pytest.raises(ParamsError) as e:
        params(enabled=True, objectives=["rubric"])
    assert "dynamic_sampling.objectives ['rubric'] are not in objectives" in str(e.value)
    assert "Fix: name objectives the run trains on" in str(e.value)
    cfg(objectives=["t_digits"], dynamic_sampling={"objectives": ["accuracy"]})  # off: accuracy need not be trained
    with pytest.raises(ValueError, match="group_size >= 2"):
        cfg(estimator="reinforce", group_size=1, dynamic_sampling={"enabled": True, "objectives": ["t_digits"]})


# --- the trainer --------------------------------------------------------------------------------------------


def run(c, strategy="fixed", **kw):
    rows, tok, model = learnable()
    with recording() as rec:
        res = train(c, strategy, model, tok, rows["train"], rows["val"], seed=0, **kw)
    return model, res, recorded_rollouts(rec, rows["train"])


def spy_advantages(monkeypatch) -> list[torch.Tensor]:
    """The (B, G, K) rewards of every combine_advantages call of the trainer (the batch it trains on)."""
    seen = []
    exact = trainer.combine_advantages

    def spy(r3, *a, **kw):
        seen.append(r3.detach().clone())
        return exact(r3, *a, **kw)

    monkeypatch.setattr(trainer, "combine_advantages", spy)
    return seen


def strip(res):
    return [{k: v for k, v in h.items() if not k.startswith(("train/", "perf/"))} for h in res.history]


def equal_params(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_never_informative_exhausts_rounds_then_trains_on_the_first_round():
    """t_const never varies: every step runs 1 + max_rounds rounds, keeps nothing, and trains on the first
    round's groups (the fill) - exactly the update without the filter."""
    base = dict(objectives=["t_const", "t_digits"], generation_backend="t_record")
    off_m, off, off_rollouts = run(cfg(**base))
    on_m, on, on_rollouts = run(cfg(**base, dynamic_sampling={"enabled": True, "objectives": ["t_const"],
                                                                "max_rounds": 2}))
    for h in on.history:
        assert (h["train/sampling_rounds"], h["train/scored_groups"], h["train/kept_groups"],
                h["train/filtered_groups"]) == (3.0, 12.0, 0.0, 8.0), h
    assert len(on_rollouts) == 3 * len(off_rollouts) == 3 * 4  # the extra rounds were generated
    assert all(len(g.texts) == 16 for g in on_rollouts)
    assert [g.texts for g in on_rollouts[::3]] == [g.texts for g in off_rollouts]  # round 0 = the off run's
    assert equal_params(on_m, off_m) and strip(on) == strip(off)


def test_informative_filter_trains_on_groups_that_vary(monkeypatch):
    """On t_digits with 2 rollouts per group at temperature 0.5 (groups often agree): each step trains on
    B*G rollouts, the first B groups in draw order whose digit share varies (filled only if rounds ran out)."""
    seen = spy_advantages(monkeypatch)
    B, G = 4, 2
    c = cfg(group_size=G, temperature=0.5, generation_backend="t_record",
            dynamic_sampling={"enabled": True, "objectives": ["t_digits"], "max_rounds": 3})
    _, res, rollouts = run(c)
    assert len(seen) == c.max_steps and all(r3.shape == (B, G, 2) for r3 in seen)  # B*G rollouts per update
    # worst case over train seeds 0-19 x fits 0-1: 4 groups filtered over the 4 steps
    assert sum(h["train/filtered_groups"] for h in res.history) >= 2
    rounds = [int(h["train/sampling_rounds"]) for h in res.history]
    assert len(rollouts) == sum(rounds)  # one generation call per round
    digits = lambda texts: torch.tensor([sum(map(str.isdigit, t)) / max(len(t), 1) for t in texts])  # noqa: E731
    at = 0
    for h, r3, n in zip(res.history, seen, rounds):
        kept = int(h["train/kept_groups"])
        spread = r3[..., 0].amax(1) != r3[..., 0].amin(1)
        assert int(spread.sum()) == kept and (kept == B or n == 1 + c.dynamic_sampling.max_rounds)
        masks = [informative(digits(g.texts).view(B, G, 1), [0]) for g in rollouts[at:at + n]]
        want = torch.stack([digits(rollouts[at + r].texts).view(B, G)[i] for r, i in choose(masks, B)])
        assert torch.equal(r3[..., 0], want)  # the first B informative groups, in draw order
        assert h["train/filtered_groups"] == sum(int((~m).sum()) for m in masks) - (B - kept)
        at += n


def test_off_is_unchanged_and_nothing_filtered_is_unchanged(monkeypatch):
    """Without the key, with it off, and with it on where every group is kept: the same run, bit for bit."""
    m0, r0, _ = run(cfg(), "gradient")
    m1, r1, _ = run(cfg(dynamic_sampling={"enabled": False, "objectives": ["t_digits"], "max_rounds": 5}), "gradient")
    same(r0, r1, "result")
    assert equal_params(m0, m1)
    monkeypatch.setattr(filtering, "informative", lambda r, idx: torch.ones(r.shape[0], dtype=torch.bool))
    m2, r2, _ = run(cfg(dynamic_sampling={"enabled": True, "objectives": ["t_digits"]}), "gradient")
    assert equal_params(m0, m2) and strip(r2) == strip(r0)
    assert all(h["train/sampling_rounds"] == 1.0 and h["train/kept_groups"] == 4.0 for h in r2.history)


def test_resume_with_dynamic_sampling_is_bit_exact(tmp_path, monkeypatch):
    """As tests/rl/test_resume.py, with dynamic sampling on conciseness (often constant in a group, so extra
    rounds run and the running mean length counts their rollouts): the resumed run equals the uninterrupted one."""
    c = cfg(checkpoint_every=1, eval_every=1,
            dynamic_sampling={"enabled": True, "objectives": ["conciseness"], "max_rounds": 2})

    def go(ckpt, stop_after=None):
        monkeypatch.setenv(DUMP_ENV, str(tmp_path / f"dump-{ckpt}"))
        m, res, _ = run(c, "gradient", ckpt_dir=tmp_path / ckpt, fingerprint="f", on_checkpoint=stop_at(stop_after))
        return m, res, json.loads((tmp_path / f"dump-{ckpt}" / "rank0.json").read_text())

    full_m, full, full_dump = go("a")
    with pytest.raises(Stopped):
        go("b", stop_after=2)
    res_m, resumed, res_dump = go("b")
    assert res_dump["start"] == 2
    rounds = [h["train/sampling_rounds"] for h in full.history]
    # extra rounds ran (worst case over train seeds 0-19 x fits 0-1: 6 rounds in 4 steps)
    assert sum(rounds) > c.max_steps and full_dump["sampling_rounds"] == rounds
    assert equal_params(full_m, res_m)
    a, b = checkpoint.latest(tmp_path / "a", "f"), checkpoint.latest(tmp_path / "b", "f")
    assert a["step"] == b["step"] == 3
    for key in ("model", "optimizer", "weighting", "rewards", "result"):
        same(a[key], b[key], key)
    assert a["rewards"]["conciseness"]["count"] == 16 * sum(rounds[:3])  # every scored rollout, kept or not
    same(full, resumed, "result")
    for key in ("param_hash", "final_weights", "weights", "validation", "rewards_state"):
        same(full_dump[key], res_dump[key], key)
    assert list(res_dump["sampled"]) == ["3", "4"]  # the prompts of every round, as the full run drew them
    assert all(full_dump["sampled"][k] == v for k, v in res_dump["sampled"].items())
