"""A real browser (headless Debian Chromium via Playwright) finds the strategy runs in ``mlflow ui``.

The store is the one a real ``dvc repro`` of the tiny config filled through ``moalign.tracking``
(the session fixture ``tiny_pipeline`` in tests/conftest.py, shared with tests/test_e2e.py), not
runs made by hand: ``mlflow ui`` serves it on a free local port and Chromium opens the ``moalign``
experiment's run list, where each stage's run and one ``train@<strategy>`` run per strategy must
show. Should runs be nested (the Prefect flow nests them under a pipeline run; MLflow 3 collapses
nested runs under their parent), the test expands parent rows; if that fails it searches the runs
table with the stage tag. A screenshot is written to the test's tmp dir either way. Without
Chromium or Playwright the module is skipped before the pipeline runs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    # checked at collection, so a missing browser skips before the session's `dvc repro` starts
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent: `make browser` installs Debian's chromium "
                       "(sudo apt-get update && sudo apt-get install -y chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright (python) is not installed"),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STRATEGIES = ("fixed", "hypervolume", "gradient")  # tests/tiny.py: train.strategies
UI_START_S = 120  # bound on waiting for `mlflow ui` to answer /health
PAGE_S = 90  # bound on finding the runs once the page is open


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop(proc: subprocess.Popen[Any], grace_s: float = 20.0) -> None:
    """Stop the `mlflow ui` process group we started (uvicorn workers, job consumers included).

    SIGTERM first; whatever of the group is still alive after ``grace_s`` gets SIGKILL.
    """
    pgid = proc.pid  # start_new_session=True: the server leads its own group
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.time() + grace_s
    while time.time() < deadline and _group_alive(pgid):
        proc.poll()  # reap our child so a zombie does not keep the group "alive"
        time.sleep(0.5)
    if _group_alive(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)


@pytest.fixture
def sync_api() -> Any:
    """playwright.sync_api (the module's skip marks have checked that Chromium and Playwright exist)."""
    return pytest.importorskip("playwright.sync_api", reason="playwright (python) is not importable")


@pytest.fixture
def mlflow_ui(tiny_pipeline: tuple[Path, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Yield (base url, experiment id) of a live `mlflow ui` on the tiny pipeline's store; always stopped."""
    pytest.importorskip("mlflow", reason="mlflow is not installed")
    from mlflow.tracking import MlflowClient

    repo, _ = tiny_pipeline
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name("moalign")
    assert exp is not None, f"the pipeline logged no experiment 'moalign' to {uri}"
    port = _free_port()
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    if mlflow_bin is None:
        pytest.skip("the `mlflow` command is not on PATH")
    log = open(tmp_path / "mlflow_ui.log", "wb")
    proc = subprocess.Popen([mlflow_bin, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + UI_START_S
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"mlflow ui exited early (rc={proc.returncode}); see {tmp_path / 'mlflow_ui.log'}")
            if time.time() > deadline:
                pytest.fail(f"mlflow ui did not answer /health within {UI_START_S} s; see {tmp_path / 'mlflow_ui.log'}")
            time.sleep(1)
        yield url, exp.experiment_id
    finally:
        _stop(proc)
        log.close()


def _found(page: Any) -> set[str]:
    text = page.inner_text("body")
    return {s for s in STRATEGIES if f"train@{s}" in text}


def _expand_parents(page: Any, generic: bool = False) -> int:
    """Click the expand toggles of collapsed parent runs once; return how many were clicked.

    MLflow 3 puts a "+" button before a parent's name in the Run Name cell; ``generic``
    tries broader selectors for other UI versions.
    """
    sels = ["[role=row] [col-id*='Run Name'] button"]
    if generic:
        sels = ["[aria-label*='xpand' i]", "[data-testid*='expand' i]", "button[title*='xpand' i]"]
    clicked = 0
    for sel in sels:
        for el in page.query_selector_all(sel):
            try:
                el.click(timeout=2000)
                clicked += 1
            except Exception:  # noqa: BLE001 - a hidden or stale toggle is fine to skip
                pass
    return clicked


def _search(page: Any, query: str) -> None:
    """Type ``query`` into the runs search box and submit (fallback when rows stay collapsed)."""
    box = page.query_selector("input[placeholder*='metrics.' i], input[placeholder*='search' i]")
    if box is not None:
        box.fill(query)
        box.press("Enter")


def test_strategy_runs_visible_in_mlflow_ui(sync_api: Any, mlflow_ui: tuple[str, str], tmp_path: Path) -> None:
    """Chromium opens the experiment's run list and sees the pipeline's train@fixed/hypervolume/gradient runs."""
    url, exp_id = mlflow_ui
    shot = tmp_path / "mlflow_ui.png"
    found: set[str] = set()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{url}/#/experiments/{exp_id}/runs", wait_until="domcontentloaded", timeout=60_000)
            try:  # the run list has rendered once a strategy run's name shows
                page.wait_for_selector("text=train@", timeout=60_000)
            except Exception:  # noqa: BLE001 - keep going: the loop below has its own bound
                pass
            # each fallback gets a third of the time: the name-cell toggle, generic toggles, search
            fallbacks = [lambda: _expand_parents(page), lambda: _expand_parents(page, generic=True),
                         lambda: _search(page, "tags.`moalign.stage` = 'train'")]
            deadline, next_try = time.time() + PAGE_S, 0.0
            while time.time() < deadline:
                found = _found(page)
                if found == set(STRATEGIES):
                    break
                if fallbacks and time.time() >= next_try:
                    fallbacks.pop(0)()
                    next_try = time.time() + PAGE_S / 3
                time.sleep(1)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert found == set(STRATEGIES), f"the run list shows only {sorted(found)}; see {shot}"
