"""Tiny overrides of the rubric section (kept apart so the rubric's keys live in one place)."""

RUBRIC_TINY: dict = {
    "n_prompts": 12,
    "samples_per_prompt": 3,
    "max_new_tokens": 12,
    "evolve": {"population": 4, "generations": 2, "elite": 1},
    # a 6-step SFT policy writes no working the honest_working annotator can tell apart (no pairs);
    # the default annotator is unit-tested in tests/rubric/test_annotators_pointwise.py
    "annotator": "rules",
    "balance_length": False,
}
