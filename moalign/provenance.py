"""Where a record came from: the commit, a fingerprint of the resolved config, library versions, the machine.

Every benchmark/study record carries ``provenance(config)`` so that a reader can tell which code and
which settings made it, and so that records made with different settings are never averaged together
(``same_config`` refuses to mix them).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from typing import Any

LIBRARIES = ("moalign", "torch", "transformers", "trl", "peft", "accelerate", "moocore")


def config_hash(config: Any) -> str:
    """sha256 of the config as canonical JSON (sorted keys), first 16 hex digits."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict:
    """CPUs, platform, Python, torch's CPU kernels (ATEN_CPU_CAPABILITY) and CUDA."""
    import torch

    cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu_capability": cap, "cuda": torch.cuda.is_available()}


def git_state(cwd: str | os.PathLike | None = None, paths: tuple[str, ...] = ()) -> tuple[str, bool]:
    """(commit, whether tracked files - under ``paths`` when given - differ from it); ("unknown", False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *paths], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit, bool(dirty)
    except Exception:  # noqa: BLE001 - no git, no commit yet
        return "unknown", False


def provenance(config: Any, cwd: str | os.PathLike | None = None, **facts: Any) -> dict:
    """The record's provenance: commit, dirty flag, ``config_sha256`` of ``config``, versions, machine, ``facts``."""
    commit, dirty = git_state(cwd)
    return {"git_commit": commit, "git_dirty": dirty, "config_sha256": config_hash(config), "versions": versions(),
            "machine": machine(), **facts}


def same_config(records: list[dict], where: str, config_sha256: str | None = None) -> None:
    """Raise a ValueError when records carrying provenance were made with different configs (or, given
    ``config_sha256``, with any other config than that one: before a run of it is added)."""
    hashes = {r["provenance"]["config_sha256"] for r in records if "provenance" in r}
    if config_sha256 and hashes - {config_sha256}:
        raise ValueError(f"{where}: its records were made with another config "
                         f"({', '.join(sorted(hashes - {config_sha256}))}; this one is {config_sha256}): they would be "
                         "mixed. Fix: write this study to its own --out folder")
    if len(hashes) > 1:
        raise ValueError(f"{where}: records from different configs ({', '.join(sorted(hashes))}) would be mixed. "
                         "Fix: write each config's runs to its own --out folder")
