"""Moved to moalign/study_summary.py (``moalign study``); re-exported here for benchmarks/report.py and old imports."""

from moalign.study_summary import (  # noqa: F401
    ALPHA, PRESETS, _diffs, _ms, decision_table, decisions, figures, first_reach, paired, paired_test, summarise,
    table, verdict,
)
