"""Evaluate core: sampled vs greedy points with prompt-clustered SEs, bootstrap CI, references, style shares."""

import numpy as np
import pytest
import torch

from moalign.evaluate import (bootstrap_hv_ci, resolve_baseline, resolve_reference, score_policy, style_shares,
                              weight_shift)
from moalign.generation import BACKENDS, Generations
from moalign.pareto import hypervolume
from moalign.rl.rewards import make_reward

WORKED = "1. 12 + 30\n2. 2 + 0 = 2\n3. 1 + 3 = 4\n4. so the result is 42\nAnswer: \\boxed{42}"
OUTLINE = "1. 12 + 30\n2. so the result is 41\nAnswer: \\boxed{41}"
TERSE = "Answer: \\boxed{42}"
CALLS: list[dict] = []


@BACKENDS.register("t_script") if "t_script" not in BACKENDS else (lambda f: f)
def _scripted(model, tok, prompts, max_new_tokens, do_sample, temperature=1.0, top_p=1.0, seed=None, **_):
    """Greedy: WORKED for every prompt. Sampled: WORKED, OUTLINE, TERSE, TERSE for each prompt in turn."""
    CALLS.append({"n": len(prompts), "do_sample": do_sample, "temperature": temperature, "seed": seed})
    cycle = [WORKED, OUTLINE, TERSE, TERSE]
    texts = [cycle[i % 4] if do_sample else WORKED for i in range(len(prompts))]
    lengths = [len(t.split()) for t in texts]
    z = torch.zeros(len(texts), 1)
    return Generations(texts, z, z, z, lengths)


def test_sampled_point_is_prompt_mean_with_clustered_se():
    rows = [{"question": f"q{i}", "answer": "42", "domain": "en"} for i in range(3)]
    objs = ["accuracy", "conciseness", "clarity"]
    fns = {o: make_reward(o) for o in ("accuracy", "clarity")}
    g = score_policy(None, None, rows, objs, fns, 100, backend="t_script")
    assert CALLS[-1]["do_sample"] is False and g["decoding"] == "greedy"
    assert g["point"][0] == 1.0 and g["point"][2] == 1.0 and g["se"][0] == 0.0
    s = score_policy(None, None, rows, objs, fns, 100, backend="t_script", samples=4, temperature=0.7, seed=3)
    assert CALLS[-1] == {"n": 12, "do_sample": True, "temperature": 0.7, "seed": 3}
    # per prompt: accuracy (1 + 0 + 1 + 1) / 4, clarity (1 + 1 + 0 + 0) / 4; identical prompts -> SE 0
    assert s["point"][0] == pytest.approx(0.75) and s["point"][2] == pytest.approx(0.5)
    lens = [len(t.split()) for t in (WORKED, OUTLINE, TERSE, TERSE)]
    assert s["length"] == pytest.approx(np.mean(lens)) and s["point"][1] == pytest.approx(1 - np.mean(lens) / 100)
    assert s["per_prompt"].shape == (3, 3) and s["se"] == pytest.approx([0.0, 0.0, 0.0])
    assert s["styles"]["terse"] == pytest.approx(0.5) and s["styles"]["worked"] == pytest.approx(0.25)
    assert s["styles"]["outline_accuracy"] == 0.0 and s["styles"]["terse_accuracy"] == 1.0


def test_style_shares_by_hand():
    st = style_shares([WORKED, OUTLINE, TERSE, TERSE], np.array([1.0, 0.0, 1.0, 0.0]))
    assert (st["terse"], st["outline"], st["worked"]) == (0.5, 0.25, 0.25)
    assert st["terse_accuracy"] == 0.5 and st["worked_accuracy"] == 1.0
    assert np.isnan(style_shares([TERSE], np.array([1.0]))["worked_accuracy"])


def test_bootstrap_ci_brackets_the_point_and_collapses_without_spread():
    rng = np.random.default_rng(0)
    per = rng.uniform(0.2, 0.8, size=(200, 3))
    lo, hi = bootstrap_hv_ci(per, [0, 0, 0], 500, seed=1)
    hv = hypervolume(per.mean(0)[None], np.zeros(3))
    assert lo < hv < hi and hi - lo < 0.05
    flat = np.tile([0.5, 0.4, 0.2], (50, 1))
    assert bootstrap_hv_ci(flat, [0, 0, 0], 100) == pytest.approx([0.04, 0.04])
    assert all(np.isnan(bootstrap_hv_ci(per, [0, 0, 0], 0)))


def test_reference_baseline_and_weight_shift():
    assert resolve_reference("origin", 0.05, [0.5, 0.5], 2) == [0.0, 0.0]
    assert resolve_reference("sft", 0.05, [0.5, 0.3], 2) == pytest.approx([0.45, 0.25])
    assert resolve_reference([0.1, 0.2], 0.05, [0.5, 0.3], 2) == [0.1, 0.2]
    with pytest.raises(ValueError, match="evaluate.reference has 1 coordinates"):
        resolve_reference([0.1], 0.05, [0.5, 0.3], 2)
    hv = {"sft": 0.1, "fixed-accuracy": 0.2, "fixed-efficiency": 0.3, "gradient": 0.9}
    assert resolve_baseline("best_fixed", hv) == "fixed-efficiency"
    assert resolve_baseline("gradient", hv) == "gradient" and resolve_baseline("best_fixed", {"a": 1.0}) is None
    assert weight_shift([[1 / 3] * 3, [0.3, 0.3, 0.4], [0.5, 0.2, 0.3]]) == pytest.approx(0.5 - 1 / 3)
    assert weight_shift([]) == 0.0
