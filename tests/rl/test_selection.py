"""train.prompt_selection (moalign/rl/selection.py): which prompts are kept, on hand-made pass rates and in the trainer."""

from __future__ import annotations

import numpy as np
import pytest

from moalign.rl.selection import choose_prompts


def test_band_keeps_prompts_solved_sometimes():
    rates = np.array([0.0, 0.25, 1.0, 0.5, 0.0, 0.75])
    keep, info = choose_prompts(rates, 0.0, 1.0, min_keep=2)
    assert keep == [1, 3, 5] and info["in_band"] == 3 and not info["fallback"]
    assert info["mean_rate_kept"] == pytest.approx(0.5) and info["mean_rate_pool"] == pytest.approx(2.5 / 6)
    assert choose_prompts(rates, 0.3, 0.8, min_keep=1)[0] == [3, 5]  # a narrower band


def test_too_few_in_band_keeps_the_best_below_high_and_says_so():
    rates = np.array([0.0, 0.25, 1.0, 0.0, 0.0, 1.0])
    keep, info = choose_prompts(rates, 0.0, 1.0, min_keep=3)
    # one prompt in the band (0.25); fallback: the 3 highest rates below 1.0, i.e. 0.25 and two of the zeros
    assert info["fallback"] and info["in_band"] == 1 and keep == [0, 1, 3]
    assert 2 not in keep and 5 not in keep  # always-solved prompts give no accuracy signal either
    nothing = choose_prompts(np.ones(4), 0.0, 1.0, min_keep=2)[0]
    assert len(nothing) == 2  # every prompt always solved: train on some rather than on none


def test_config_rejects_an_empty_band_and_unknown_objective():
    from moalign.rl.config import TrainConfig

    with pytest.raises(ValueError, match="low 0.5 >= high 0.5"):
        TrainConfig(prompt_selection={"low": 0.5, "high": 0.5})
    with pytest.raises(ValueError, match="prompt_selection.objective 'helpfulness' is unknown"):
        TrainConfig(prompt_selection={"objective": "helpfulness"})


def test_trainer_draws_only_selected_prompts(monkeypatch, tmp_path):
    """On the learnable fixture with t_digits as the pass rate: the trainer trains only on the kept rows, logs what
    the selection measured, and a resumed run selects the same rows."""
    import json

    from moalign.rl.distributed import DUMP_ENV
    from moalign.rl.trainer import train
    from tests.rl.learnable import cfg, learnable

    rows, tok, model = learnable()
    sel = {"enabled": True, "pool": 16, "samples": 4, "objective": "t_digits", "low": 0.0, "high": 1.0, "min_keep": 2}
    logged: list[tuple[dict, int]] = []
    monkeypatch.setenv(DUMP_ENV, str(tmp_path))
    res = train(cfg(max_steps=2, prompt_selection=sel), "fixed", model, tok, rows["train"], rows["val"], seed=0,
                log_fn=lambda m, s: logged.append((m, s)))
    info = res.selection
    assert info["pool"] == 16 and len(info["rates"]) == 16 and 2 <= info["kept"] <= 16
    kept_rates = sorted(r for r in info["rates"] if 0 < r < 1)
    assert info["fallback"] or info["kept"] == len(kept_rates)
    first = [m for m, s in logged if s == 0][0]
    assert first["selection/kept"] == info["kept"] and first["selection/pool"] == 16
    dump = json.loads((tmp_path / "rank0.json").read_text())
    assert all(0 <= i < info["kept"] for ids in dump["sampled"].values() for i in ids)  # indices into the kept rows
    again = train(cfg(max_steps=1, prompt_selection=sel), "fixed", learnable()[2], tok, rows["train"], rows["val"],
                  seed=0)
    assert again.selection["rates"] == info["rates"]  # deterministic: a resumed run recomputes the same set


def test_cached_pass_rates_are_measured_once(monkeypatch, tmp_path):
    """The train stage names a cache per SFT policy and settings: the second strategy reads the rates, decodes none."""
    from moalign.rl import selection
    from moalign.rl.trainer import train
    from tests.rl.learnable import cfg, learnable

    rows, tok, model = learnable()
    c = cfg(max_steps=1, prompt_selection={"enabled": True, "pool": 8, "samples": 2, "objective": "t_digits"})
    key = selection.cache_key(c, 0, "sft-a")
    assert key != selection.cache_key(c, 0, "sft-b") and key != selection.cache_key(c, 1, "sft-a")
    cache = tmp_path / f"{key}.json"
    first = train(c, "fixed", model, tok, rows["train"], rows["val"], seed=0, selection_cache=cache)
    assert cache.exists()

    def no_decoding(*a, **kw):
        raise AssertionError("pass rates decoded again")

    monkeypatch.setattr(selection, "pass_rates", no_decoding)
    again = train(c, "gradient", learnable()[2], tok, rows["train"], rows["val"], seed=0, selection_cache=cache)
    assert again.selection["rates"] == first.selection["rates"] and again.selection["kept"] == first.selection["kept"]
