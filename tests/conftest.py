import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# Tests whose outcome hangs on sampled draws or trained numbers (fixture, learnable, trainer oracle, resume,
# two processes, sampling frequencies, rubric statistics): `make test` runs them again under torch's portable
# (ATEN_CPU_CAPABILITY=default) and AVX2 kernels, since another CPU's float rounding changes which draws come.
STOCHASTIC = ("tests/rl/", "tests/stages/test_multiprocess.py", "tests/test_fastgen_sampling.py",
              "tests/test_core_sft.py", "tests/rubric/test_hidden_criterion.py", "tests/rubric/test_evolve_prefs.py",
              "tests/rubric/test_annotators_pointwise.py", "tests/rubric/test_splits_gate.py",
              "tests/integrations/test_trl_weighting.py")


def pytest_collection_modifyitems(config, items):
    import torch

    root = Path(__file__).resolve().parents[1]
    for it in items:
        rel = Path(it.fspath).resolve().relative_to(root).as_posix()
        if rel.startswith(STOCHASTIC):
            it.add_marker(pytest.mark.stochastic)
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
