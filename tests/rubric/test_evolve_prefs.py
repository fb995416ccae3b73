"""Evolution, the synthetic annotator, user preference files and the typed config."""

import json

import pytest

from moalign.rubric.config import EvolveConfig, RubricConfig
from moalign.rubric.evolve import agreement, evolve, mutate
from moalign.rubric.judges import make_judge
from moalign.rubric.annotators import rules_key as annotator_key
from moalign.rubric.preferences import PreferenceError, load_preferences, synthetic_pairs
from moalign.rubric.schema import load_meta_rubric
from tests.rubric.helpers import LAYER, META, preference_splits as build_preferences, resp, sft_like_samples


@pytest.fixture(scope="module")
def splits():
    p, a, s = sft_like_samples(60, 4, seed=0)
    ds = build_preferences(p, a, ["en"] * 60, s, label_noise=0.1, seed=0)
    return {k: list(v) for k, v in ds.items()}


def test_evolution_improves_held_out_agreement_and_is_deterministic(splits):
    rubric, j = load_meta_rubric(META, LAYER), make_judge("rules")
    cfg = EvolveConfig(population=8, generations=6, elite=1)
    res = evolve(rubric, j, splits, cfg, seed=0)
    a = res["agreement"]
    # the generic (length-loving) rubric gets fixed; gain over seeds 0-19 (data, split and search seed
    # all set to the seed): mean +0.356, worst +0.167. An evolution without selection (constant train
    # fitness) or without mutation gains exactly 0.000 on each of those seeds
    assert a["refined/test"] >= a["initial/test"] + 0.05
    assert a["refined/val"] >= a["initial/val"]  # gain over seeds 0-19: mean +0.371, worst +0.189
    best = [h["fitness/best"] for h in res["history"]]
    assert len(best) == 7 and best == sorted(best)  # elitism: best train fitness never drops (every seed 0-19)
    assert res["diff"].startswith("--- initial.yaml") and res["edits"]
    again = evolve(rubric, j, splits, cfg, seed=0)
    assert again["rubric"] == res["rubric"] and again["history"] == res["history"]
    assert res["rubric"].criteria[0].name == "correctness"  # the fatal criterion is never edited away


def test_zero_generations_keeps_initial(splits):
    rubric = load_meta_rubric(META)
    res = evolve(rubric, make_judge("rules"), splits, EvolveConfig(population=3, generations=0, elite=1), seed=1)
    assert res["rubric"] == rubric and res["diff"] == "" and res["edits"] == []


def test_tie_credit(splits):
    rubric, j = load_meta_rubric(META), make_judge("rules")
    pair = [{"prompt": "q", "chosen": resp(5), "rejected": resp(5, filler=0).replace("step", "stop"), "answer": "5"}]
    assert agreement(j, rubric, pair, 0.5) == 0.5 and agreement(j, rubric, pair, 0.0) == 0.0


def test_mutations_are_valid(splits):
    import random

    rng, r = random.Random(0), load_meta_rubric(META, LAYER)
    for _ in range(50):
        r, desc = mutate(r, rng)
        assert desc.split()[0] in {"ADD", "DELETE", "MODIFY"}
        assert any(c.tier == "fatal" for c in r.criteria)


def test_annotator_order_and_noise():
    assert annotator_key(resp(5), "5") > annotator_key(resp(6), "5")  # correct first
    assert annotator_key(resp(6), "5") > annotator_key(resp(6, boxed=False), "5")  # then well-formed
    assert annotator_key(resp(5), "5") > annotator_key(resp(5, filler=5), "5")  # then shorter
    assert annotator_key(resp(5, n_steps=1), "5") < annotator_key(resp(5, n_steps=2, filler=9), "5")  # 1 step
    samples = [[resp(i), resp(i + 1), resp(i, filler=3)] for i in range(300)]
    rows = synthetic_pairs([f"q{i}" for i in range(300)], [str(i) for i in range(300)], ["d"] * 300, samples, 0.1, 0)
    noise = sum(r["noisy"] for r in rows) / len(rows)
    assert 0.07 < noise < 0.13  # 900 pairs; over seeds 0-19: mean 0.101, worst 0.087 (low) / 0.114 (high)
    clean = [r for r in rows if not r["noisy"]]
    assert all(annotator_key(r["chosen"], r["answer"]) > annotator_key(r["rejected"], r["answer"]) for r in clean)
    assert {r["level"] for r in rows} == {"correct", "length"}
    assert rows == synthetic_pairs([f"q{i}" for i in range(300)], [str(i) for i in range(300)], ["d"] * 300,
                                   samples, 0.1, 0)


def test_split_by_prompt_and_empty_split_error():
    p, a, s = sft_like_samples(20, 3, seed=1)
    ds = build_preferences(p, a, ["en"] * 20, s, 0.1, 0)
    assert set(ds) == {"train", "val", "test"}
    assert not set(ds["train"]["prompt"]) & (set(ds["test"]["prompt"]) | set(ds["val"]["prompt"]))
    with pytest.raises(PreferenceError, match="n_prompts"):
        build_preferences(p[:1], a[:1], ["en"], s[:1], 0.1, 0)


def test_load_user_preferences(tmp_path):
    rows = [{"question": f"q{i}", "good": "a", "bad": "b", "answer": i} for i in range(8)]
    f = tmp_path / "prefs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_preferences(str(f), [0.5, 0.25, 0.25], 0, columns={"prompt": "question", "chosen": "good",
                                                                 "rejected": "bad"})
    assert sum(len(v) for v in ds.values()) == 8 and ds["train"][0]["answer"] is not None
    with pytest.raises(PreferenceError, match=r"available columns: \['question', 'good', 'bad', 'answer'\]"):
        load_preferences(str(f))
    with pytest.raises(PreferenceError, match="does not exist"):
        load_preferences(str(tmp_path / "none.csv"))


def test_config_validation():
    cfg = RubricConfig()
    assert cfg.judge == "rules" and cfg.evolve.tie_credit == 0.5 and cfg.label_noise == 0.1
    with pytest.raises(ValueError, match="valid names: hf, openai, rules"):
        RubricConfig(judge="gpt")
    with pytest.raises(ValueError, match="Fix: e.g. \\[0.5, 0.25, 0.25\\]"):
        RubricConfig(splits=[0.5, 0.5])
    with pytest.raises(ValueError, match="elite"):
        EvolveConfig(population=2, elite=2)
    with pytest.raises(ValueError, match="valid names"):
        RubricConfig(gate_checks=["vibes"])
    with pytest.raises(ValueError, match="extra"):
        RubricConfig(judje="rules")


class FakeLLMJudge:
    """An 'LLM' backend: rules verdicts, and a scripted reflective edit from ``ask``."""

    def __init__(self):
        self.inner, self.asked = make_judge("rules"), 0

    def judge(self, *a, **k):
        return self.inner.judge(*a, **k)

    def ask(self, prompt, parse):
        self.asked += 1
        assert "Failures:" in prompt and "criteria:" in prompt
        return parse('```json\n{"op": "ADD", "criterion": {"name": "brevity", "tier": "core", "check": "length", '
                     '"direction": -1, "margin": 0}}\n```')


def test_llm_edit_hook_is_used(splits):
    j = FakeLLMJudge()
    res = evolve(load_meta_rubric(META), j, splits, EvolveConfig(population=3, generations=1, elite=1,
                                                                 mutation_rate=1.0), seed=0)
    assert j.asked >= 1 and "LLM ADD brevity" in res["edits"]  # every seed 0-19
    # gain over seeds 0-19 (as in the evolution test): mean +0.367, worst +0.078 (seed 2). Kept at "> 0":
    # any lower bound would pass an edit that does not help
    assert res["agreement"]["refined/test"] > res["agreement"]["initial/test"]
