"""Faults: unreadable checkpoints are skipped, multi-file outputs appear together, SIGTERM ends runs as KILLED."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from moalign import checkpoint
from moalign.errors import StageError
from moalign.io import atomic_outputs

ROOT = Path(__file__).resolve().parents[1]


def _two_checkpoints(tmp_path: Path) -> Path:
    d = tmp_path / "ckpt"
    checkpoint.save(d, 1, "fp", {"w": 1})
    checkpoint.save(d, 2, "fp", {"w": 2})
    return d


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_unreadable_newest_checkpoint_is_skipped(tmp_path, caplog, damage):
    d = _two_checkpoints(tmp_path)
    newest = d / "step-0000002" / "state.pt"
    data = newest.read_bytes()
    newest.write_bytes({"truncate": data[: len(data) // 2], "empty": b"", "garbage": b"not a zip"}[damage])
    with caplog.at_level(logging.WARNING, logger="moalign.checkpoint"):
        state = checkpoint.latest(d, "fp")
    assert state is not None and state["step"] == 1 and state["w"] == 1
    assert str(newest) in caplog.text and "skipping" in caplog.text
    assert "step-0000001" in caplog.text  # says which one it resumes from


def test_all_unreadable_starts_fresh_saying_so(tmp_path, caplog):
    d = _two_checkpoints(tmp_path)
    for f in d.glob("step-*/state.pt"):
        f.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="moalign.checkpoint"):
        assert checkpoint.latest(d, "fp") is None
    assert "starting from scratch" in caplog.text
    assert checkpoint.latest(tmp_path / "none", "fp") is None  # no checkpoints: silent None


def test_atomic_outputs_all_or_nothing(tmp_path):
    a, b = tmp_path / "metrics" / "m.json", tmp_path / "plots" / "p"
    a.parent.mkdir()
    a.write_text("old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_outputs(a, b) as (ta, tb):
            ta.write_text("new")
            raise RuntimeError("killed")  # a crash between the two writes
    assert a.read_text() == "old" and not b.exists()
    with atomic_outputs(a, b) as (ta, tb):
        ta.write_text("new")
        tb.mkdir()
        (tb / "x.png").write_text("png")
    assert a.read_text() == "new" and (b / "x.png").read_text() == "png"
    with pytest.raises(StageError, match="not written"):
        with atomic_outputs(a, b) as (ta, tb):
            ta.write_text("newer")  # forgot b
    assert a.read_text() == "new"
    leftovers = [p for p in tmp_path.rglob(".*") if p.name.endswith(".tmp") or ".old-" in p.name]
    assert not leftovers


def test_atomic_outputs_killed_midway_in_a_subprocess(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from moalign.io import atomic_outputs
        with atomic_outputs("a.txt", "b.txt") as (ta, tb):
            ta.write_text("new")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    (tmp_path / "a.txt").write_text("old")
    (tmp_path / "b.txt").write_text("old")
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path)
    assert r.returncode == -signal.SIGKILL
    assert (tmp_path / "a.txt").read_text() == "old" and (tmp_path / "b.txt").read_text() == "old"


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_ends_mlflow_run_as_killed(tmp_path, sig, code):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from moalign.config import TrackingConfig
        from moalign.tracking import stage_run
        with stage_run("sft", TrackingConfig(uri={uri!r}), {{"a": 1}}):
            print("ready", flush=True)
            time.sleep(120)
    """)
    env = {**os.environ, "MOALIGN_PARENT_RUN_ID": ""}
    p = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == code, err
    assert "Traceback" not in err and "ended as KILLED" in err
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["moalign"])
    assert list(runs["status"]) == ["KILLED"]
