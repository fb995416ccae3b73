"""Moved to moalign/runlog.py; re-exported for the benchmarks that import ``runlog``."""

from moalign.runlog import RunLog  # noqa: F401
