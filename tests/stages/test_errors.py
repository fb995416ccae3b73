"""Every expected failure of a stage: exit code 2 and one line naming the key/file/endpoint and the fix.

Each test fails when the clean error is removed (the failure then escapes as a traceback,
exit code 1, or a different message). Bugs keep their traceback (exit code 1).
"""

from __future__ import annotations

import errno
import shutil
import time
from collections import namedtuple
from pathlib import Path

import pytest
import yaml

from moalign.errors import DiskFullError, StageError
from stages._edge import stage_main


def _params(**over):
    p = yaml.safe_load(Path("params.yaml").read_text())
    for dotted, v in over.items():
        *path, leaf = dotted.split(".")
        d = p
        for k in path:
            d = d.setdefault(k, {})
        d[leaf] = v
    Path("params.yaml").write_text(yaml.safe_dump(p))


def _one_error_line(capsys, stage: str = "x") -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith(f"moalign {stage}: error:")]
    assert len(lines) == 1 and "\n" not in lines[0], err
    assert "Fix" in lines[0] or "fix" in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def untracked(tiny_repo):
    _params(**{"base.tracking.enabled": False})
    return tiny_repo


def test_bad_param_bool_for_int(untracked, capsys):
    _params(**{"sft.max_steps": True})
    assert stage_main("x", lambda p: None, []) == 2
    assert "sft.max_steps" in _one_error_line(capsys)


def test_several_bad_params_still_one_line(untracked, capsys):
    _params(**{"sft.max_steps": True, "sft.lrr": 1})
    assert stage_main("x", lambda p: None, []) == 2
    line = _one_error_line(capsys)
    assert "sft.max_steps" in line and "sft.lrr" in line


def test_missing_input_folder_of_real_stage(untracked, capsys):
    from stages import balance

    assert balance.main([]) == 2  # data/prepared was never built
    assert "data/prepared/train" in _one_error_line(capsys, "balance")


def test_corrupt_json_input_names_file(untracked, capsys):
    from moalign.io import read_json

    Path("plan.json").write_text('{"phases": [')
    assert stage_main("x", lambda p: read_json("plan.json"), []) == 2
    assert "plan.json: not valid JSON" in _one_error_line(capsys)


def test_missing_local_model_folder_is_not_a_hub_id(untracked, capsys):
    from stages import train

    t = time.monotonic()
    assert train.main(["--strategy", "gradient"]) == 2
    line = _one_error_line(capsys, "train")
    assert "'models/sft' does not exist" in line and "dvc repro sft" in line
    assert time.monotonic() - t < 60


def test_bad_reward_options_typeerror(untracked, capsys):
    from moalign.rl.rewards import make_reward

    assert stage_main("x", lambda p: make_reward("accuracy", nonsense=1), []) == 2
    assert "train.reward_options.accuracy" in _one_error_line(capsys)


def test_judge_unreachable(untracked, capsys, monkeypatch):
    import socket

    from moalign.rubric.judges import make_judge

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setenv("MOALIGN_JUDGE_MODEL", "m")

    def run(p):
        make_judge("openai", base_url=f"http://127.0.0.1:{port}/v1", retries=0, backoff=0, timeout=2).ask("hi")

    assert stage_main("x", run, []) == 2
    assert f"127.0.0.1:{port}" in _one_error_line(capsys)


def test_mlflow_required_unreachable_is_quick_one_line(tiny_repo, capsys):
    from stages import prepare

    _params(**{"base.tracking.uri": "http://127.0.0.1:9", "base.tracking.required": True})
    t = time.monotonic()
    assert prepare.main([]) == 2
    assert time.monotonic() - t < 15
    assert "http://127.0.0.1:9" in _one_error_line(capsys, "prepare")
    assert not Path("data/prepared").exists()


def test_mlflow_optional_unreachable_warns_once_quickly(tiny_repo, caplog):
    from moalign.config import load_params
    from moalign.tracking import stage_run

    _params(**{"base.tracking.uri": "http://127.0.0.1:9"})
    tracking = load_params().base.tracking
    t = time.monotonic()
    with caplog.at_level("WARNING", logger="moalign.tracking"):
        for _ in range(2):
            with stage_run("x", tracking, {}) as tr:
                assert not tr.enabled
    assert time.monotonic() - t < 10
    assert sum("not reachable" in r.getMessage() for r in caplog.records) == 1


def test_disk_full_oserror(untracked, capsys):
    from moalign.io import write_text

    def run(p):
        with open("/dev/full", "w") as f:  # the kernel's always-full device
            f.write("x" * 10)
            f.flush()

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    assert stage_main("x", run, []) == 2
    assert "no space left on device" in _one_error_line(capsys)

    def run2(p):
        with pytest.MonkeyPatch.context() as m:
            m.setattr(Path, "write_text", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
            write_text("metrics/m.json", "{}")

    assert stage_main("x", run2, []) == 2
    assert "no space left on device at metrics/m.json" in _one_error_line(capsys)


def test_disk_full_torch_stream_error_during_checkpoint(untracked, capsys, monkeypatch):
    import torch

    from moalign import checkpoint

    def fail(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0; "
                           "basic_ios::clear: iostream error")

    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(torch, "save", fail)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 1024))
    with pytest.raises(DiskFullError):
        checkpoint.save("checkpoints/sft", 3, "fp", {})
    assert stage_main("x", lambda p: checkpoint.save("checkpoints/sft", 3, "fp", {}), []) == 2
    assert "no space left on device at checkpoints/sft/step-0000003" in _one_error_line(capsys)
    assert not list(Path("checkpoints/sft").iterdir())  # no temp leftovers


def test_bug_keeps_traceback_and_exit_1(untracked, capsys):
    def run(p):
        return 1 / 0

    assert stage_main("x", run, []) == 1
    err = capsys.readouterr().err
    assert "unexpected error" in err and "ZeroDivisionError" in err and "Traceback" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_traceback_of_expected_errors(untracked, capsys, monkeypatch, how):
    def run(p):
        raise StageError("thing: broken. Fix: mend it")

    argv = ["--debug"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("MOALIGN_DEBUG", "1")
    assert stage_main("x", run, argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "moalign x: error: thing: broken. Fix: mend it" in err


@pytest.mark.parametrize("sig, code", [(15, 143), (2, 130)])
def test_interrupted_stage_in_process(untracked, capsys, monkeypatch, sig, code):
    """The edge's own handler is installed for the run (and restored after): one line, 128 + signal."""
    import os
    import signal

    from moalign import checkpoint

    monkeypatch.setattr(checkpoint, "_last", None)  # this process has saved no checkpoint of its own

    def ignore(*_):  # what was there before: ignore the signal (so a missing edge handler fails, not kills, the test)
        pass

    before = signal.signal(signal.SIGTERM, ignore), signal.signal(signal.SIGINT, ignore)

    def run(p):
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler interrupts this

    try:
        t = time.monotonic()
        assert stage_main("x", run, []) == code
        assert time.monotonic() - t < 5
        assert signal.getsignal(signal.SIGTERM) is ignore and signal.getsignal(signal.SIGINT) is ignore  # restored
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (f"moalign x: interrupted by {signal.Signals(sig).name}; rerun the same "
                                            "command (no checkpoint: the stage starts over)") and "Traceback" not in err
