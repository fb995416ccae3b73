import os
import subprocess
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


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """(repo, stdout) of ONE real `dvc repro` of the tiny config in a git + DVC copy of the project.

    Shared by the slow tests that need a whole pipeline's outputs (tests/test_e2e.py, and the browser
    test that opens what this run logged to MLflow), so the DAG runs once per session. Tests may
    add to it (test_e2e runs experiments and a sweep there afterwards), not undo it.
    """
    from tests.tiny import make_repo

    repo = make_repo(tmp_path_factory.mktemp("pipeline") / "repo", git=True)
    env = {k: v for k, v in os.environ.items() if k != "MOALIGN_PARENT_RUN_ID"}
    p = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return repo, p.stdout
