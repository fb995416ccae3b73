"""Faults: unreadable checkpoints are skipped (once), outputs appear together, kills leave one line and no temp files."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from moalign import checkpoint
from moalign.errors import StageError
from moalign.io import Interrupted, atomic_outputs, atomic_path, on_signal

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
        from moalign.io import Interrupted, atomic_outputs, atomic_path, on_signal
        with atomic_outputs("a.txt", "b.txt") as (ta, tb):
            ta.write_text("new")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    (tmp_path / "a.txt").write_text("old")
    (tmp_path / "b.txt").write_text("old")
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path)
    assert r.returncode == -signal.SIGKILL
    assert (tmp_path / "a.txt").read_text() == "old" and (tmp_path / "b.txt").read_text() == "old"


def test_each_skipped_checkpoint_is_announced_once(tmp_path, caplog):
    """The train stage looks for its checkpoint twice (stage, then trainer): one warning per skipped file."""
    d = _two_checkpoints(tmp_path)
    newest = d / "step-0000002" / "state.pt"
    newest.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="moalign.checkpoint"):
        for _ in range(2):
            assert checkpoint.latest(d, "fp")["step"] == 1
    assert caplog.text.count(str(newest)) == 1 and caplog.text.count("resuming from the older") == 1
    assert checkpoint.last_checkpoint() == d / "step-0000001"  # what a kill now would name


@pytest.mark.parametrize("what", ["folder swap", "two outputs"])
def test_kill_during_renames_waits_for_them(tmp_path, monkeypatch, what):
    """SIGTERM after the first rename (a folder moved aside; one of two outputs in place): the renames
    complete, then the stage stops; nothing half-swapped, no temp or .old- folder left."""
    dest, other = tmp_path / "model", tmp_path / "m.json"
    dest.mkdir()
    (dest / "w").write_text("old")
    other.write_text("old")
    real, done = os.replace, []

    def replace(a, b):
        real(a, b)
        done.append(b)
        if len(done) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # give the handler a few bytecodes to run
                pass

    monkeypatch.setattr(os, "replace", replace)
    old = signal.signal(signal.SIGTERM, on_signal)
    try:
        with pytest.raises(Interrupted) as e:
            if what == "folder swap":
                with atomic_path(dest) as tmp:
                    tmp.mkdir()
                    (tmp / "w").write_text("new")
            else:
                with atomic_outputs(other, dest) as (t1, t2):
                    t1.write_text("new")
                    t2.mkdir()
                    (t2 / "w").write_text("new")
    finally:
        signal.signal(signal.SIGTERM, old)
    assert e.value.code == 143
    assert (dest / "w").read_text() == "new"
    assert other.read_text() == ("new" if what == "two outputs" else "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "model"]  # no .tmp folder, no .old- folder


STAGE = """
import sys, time
sys.path.insert(0, {root!r})
from moalign import checkpoint
from moalign.io import Interrupted, atomic_outputs, atomic_path, on_signal
from moalign.tracking import stage_run
from stages._edge import stage_main


def run(params):
    with stage_run("x", params.base.tracking, {{"a": 1}}):
        checkpoint.save("checkpoints/x", 3, "fp", {{"w": 1}})
        with atomic_outputs("metrics/m.json", "plots/p") as (m, p):
            m.write_text("new")
            p.mkdir()
            (p / "a.png").write_text("half")
            print("ready", flush=True)  # mid-write: both outputs half done in their temp folders
            time.sleep(120)


sys.exit(stage_main("x", run, []))
"""


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its schema created once (a copy per test skips the migrations)."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.mark.parametrize("tracking", [False, True], ids=["untracked", "tracked"])
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_kill_mid_write_one_line_no_leftovers(tmp_path, request, sig, code, tracking):
    """SIGTERM and SIGINT, tracking on or off: one line, exit 128 + signal, old outputs kept, no temp files."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if tracking:
        shutil.copy(request.getfixturevalue("empty_store"), tmp_path / "mlflow.db")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"base": {"tracking": {"enabled": tracking, "uri": uri}}}))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/m.json").write_text("old")
    env = {**os.environ, "MOALIGN_PARENT_RUN_ID": ""}
    p = subprocess.Popen([sys.executable, "-c", STAGE.format(root=str(ROOT))], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == code, err
    said = [ln for ln in err.splitlines() if ln.startswith("moalign x:")]
    want = (f"moalign x: interrupted by {signal.Signals(sig).name}; resume with the same command "
            f"(last checkpoint: {Path('checkpoints/x/step-0000003')})")
    assert "Traceback" not in err and len(said) == 1 and said[0].startswith(want), err
    assert (tmp_path / "metrics/m.json").read_text() == "old" and not (tmp_path / "plots/p").exists()
    leftovers = [q for q in tmp_path.rglob("*") if q.name.endswith(".tmp") or ".old-" in q.name]
    assert not leftovers
    if tracking:
        import mlflow

        mlflow.set_tracking_uri(uri)
        runs = mlflow.search_runs(experiment_names=["moalign"])
        assert list(runs["status"]) == ["KILLED"] and f"MLflow run {runs['run_id'][0]} ended as KILLED" in said[0]
