"""moalign/guards.py: tiny-model defaults meeting a pretrained model; a rubric stage without pairs."""

from __future__ import annotations

import pytest

from moalign.guards import no_pairs_message, pretrained_warnings, splits_filled
from moalign.rubric.annotators import ANNOTATORS
from moalign.rubric.preferences import synthetic_pairs


def test_tiny_defaults_on_a_pretrained_model_warn_with_key_and_fix():
    (lr,) = pretrained_warnings("sft", True, 3e-3, True, 134_515_008, cpu=True)
    assert lr.startswith("sft.lr = 0.003 ") and "Fix: sft.lr: 2e-4" in lr
    full = pretrained_warnings("sft", True, 3e-3, False, 134_515_008, cpu=True)
    assert len(full) == 2 and "Fix: sft.lr: 2e-5" in full[0]
    assert "all 134.5M parameters" in full[1] and "sft.lora.enabled: true" in full[1]
    assert pretrained_warnings("train", True, 1e-4, False, 134_515_008, cpu=False)[0].startswith("train.lr = 0.0001")
    # what the profile uses, the tiny model, or a GPU with a sane rate: silent
    assert pretrained_warnings("sft", True, 1e-3, True, 134_515_008, cpu=True) == []
    assert pretrained_warnings("train", True, 1e-4, True, 134_515_008, cpu=True) == []
    assert pretrained_warnings("sft", False, 3e-3, False, 300_000, cpu=True) == []
    assert pretrained_warnings("sft", True, 2e-5, False, 134_515_008, cpu=False) == []


def test_splits_filled_follows_split_by_prompt_rounding():
    assert not splits_filled(3, [0.5, 0.25, 0.25]) and splits_filled(4, [0.5, 0.25, 0.25])
    assert not splits_filled(0, [0.5, 0.25, 0.25])


def _pairs(samples, answers, annotator="honest_working"):
    n = len(samples)
    return synthetic_pairs([f"q{i}" for i in range(n)], answers, ["en"] * n, samples, 0.0, 0, annotator=annotator,
                           balance_length=True)


def test_no_boxed_answer_is_named_instead_of_n_prompts():
    samples = [["The answer is 47", "I think it is 85.", "Let x be the apples"]] * 30  # never the format
    answers = ["85"] * 30
    pairs = _pairs(samples, answers)
    assert pairs == []
    msg = no_pairs_message(pairs, samples, answers, ANNOTATORS.get("honest_working"), "honest_working",
                           [0.5, 0.25, 0.25])
    assert "90 samples (30 prompts x 3): 0 wrote a \\boxed{} answer, 0 were correct" in msg
    assert "all got the same honest_working annotator key (0, -1)" in msg
    assert "never wrote a boxed answer" in msg and "Fix: train SFT" in msg and "n_prompts" not in msg


def test_enough_pairs_pass_and_few_varied_prompts_blame_n_prompts():
    good = "1. 47 + 38\n2. 7 + 8 = 15, write 5 carry 1\n3. 4 + 3 + 1 = 8, write 8 carry 0\n4. so the result is 85\n" \
           "Answer: \\boxed{85}"
    samples = [[good, "Answer: \\boxed{84}", "no idea"]] * 8
    pairs = _pairs(samples, ["85"] * 8)
    assert no_pairs_message(pairs, samples, ["85"] * 8, ANNOTATORS.get("honest_working"), "honest_working",
                            [0.5, 0.25, 0.25]) is None
    few = samples[:2] + [["no idea"] * 3] * 6  # only 2 prompts with different keys
    msg = no_pairs_message(_pairs(few, ["85"] * 8), few, ["85"] * 8, ANNOTATORS.get("honest_working"),
                           "honest_working", [0.5, 0.25, 0.25])
    assert "on 2 prompts" in msg and "Fix: raise rubric.n_prompts" in msg


@pytest.mark.slow
def test_rubric_stage_reports_what_the_untrained_policy_wrote(tiny_repo, capsys):
    """A 6-step tiny SFT policy writes no boxed answer: the rubric stage says so (exit 2, one line)."""
    import yaml

    from stages import balance, prepare, rubric, sft

    raw = yaml.safe_load(open("params.yaml"))
    raw["rubric"].update(annotator="honest_working", balance_length=True)
    raw["base"]["tracking"]["enabled"] = False
    yaml.safe_dump(raw, open("params.yaml", "w"))
    for stage in (prepare, balance, sft):
        assert stage.main([]) == 0
    assert rubric.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("moalign rubric: error: the SFT policy's samples gave 0 preference pairs")
    assert "wrote a \\boxed{} answer" in err and "Fix:" in err and "raise rubric.n_prompts" not in err
