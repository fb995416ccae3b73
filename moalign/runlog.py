"""Resumable run records (moalign study and the benchmarks): one JSON object per finished run in ``<out>/runs.jsonl``.

A rerun reads what is there and skips it; each new record is appended as soon as its run ends, so
an interrupted benchmark loses at most the run in progress. A record with ``provenance``
(moalign/provenance.py) is refused when its config fingerprint differs from the records already there.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_runs(path: Path) -> list[dict]:
    """The records of a ``runs.jsonl`` (none when it does not exist)."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


class RunLog:
    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "runs.jsonl"
        self.runs: list[dict] = read_runs(self.path)

    def add(self, rec: dict) -> None:
        from moalign.provenance import same_config

        same_config(self.runs + [rec], str(self.path))
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        self.runs.append(rec)
