"""Tiny overrides of the rubric section (kept apart so the rubric's keys live in one place)."""

RUBRIC_TINY: dict = {}
