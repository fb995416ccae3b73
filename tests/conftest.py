import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for it in items:
            if "gpu" in it.keywords:
                it.add_marker(skip)


@pytest.fixture
def tiny_repo(tmp_path, monkeypatch):
    """A copy of the project with the tiny params, as the current directory."""
    from tests.tiny import make_repo

    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MOALIGN_PARENT_RUN_ID", raising=False)
    return repo
