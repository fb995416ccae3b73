"""README and benchmarks/README tables are rendered from committed files (``python -m moalign.report``)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from moalign.report import cli as report

ROOT = Path(__file__).resolve().parents[1]


def test_committed_readmes_match_their_files(capsys):
    assert report.main(["--check"]) == 0, capsys.readouterr().err


def test_the_commands_run_the_report():
    """``python -m moalign.report`` and ``moalign report`` are the same command (Makefile, README)."""
    for cmd in ([sys.executable, "-m", "moalign.report", "--check"], [sys.executable, "-m", "moalign.cli", "report", "--check"]):
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        assert p.returncode == 0 and "report blocks up to date" in p.stdout, p.stderr


def test_check_fails_when_a_result_file_changes(tmp_path):
    ref = tmp_path / "results/reference/metrics"
    ref.mkdir(parents=True)
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(ROOT / "results/reference/metrics/evaluate.json", ref / "evaluate.json")
    block = "<!-- report:results -->\nold\n<!-- /report:results -->\n"
    (tmp_path / "README.md").write_text("# x\n" + block)
    (tmp_path / "benchmarks/README.md").write_text("# y\n")
    assert report.main(["--check", "--root", str(tmp_path)]) == 1  # "old" is not what the file says
    assert report.main(["--root", str(tmp_path)]) == 0  # rewrite
    assert report.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "metrics").mkdir()  # a user's own run (dvc repro writes metrics/): the check does not read it
    (tmp_path / "metrics/evaluate.json").write_text("{}")
    assert report.main(["--check", "--root", str(tmp_path)]) == 0
    m = json.loads((ref / "evaluate.json").read_text())
    first = next(k for k, v in m.items() if isinstance(v, dict) and "accuracy" in v)
    m[first]["accuracy"] += 0.01
    (ref / "evaluate.json").write_text(json.dumps(m))
    assert report.main(["--check", "--root", str(tmp_path)]) == 1  # the README number is now stale
