"""Data for the prepare stage: the default arithmetic generator and the user-dataset loader."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable


def rows_per_domain(rows: Iterable[dict], per_domain: int) -> list[dict]:
    """The first ``per_domain`` rows of each domain, in order (eval subsets of val/test)."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for r in rows:
        if seen[r["domain"]] < per_domain:
            seen[r["domain"]] += 1
            out.append(r)
    return out
