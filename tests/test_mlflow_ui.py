"""A real browser (headless Debian Chromium via Playwright) finds the strategy runs in ``mlflow ui``.

The store is built the way the pipeline builds it (experiment ``moalign``, a parent run, one
nested ``train@<strategy>`` run per strategy, ``moalign.*`` tags), then ``mlflow ui`` serves it
on a free local port and Chromium opens the experiment's run list. MLflow 3 collapses nested
runs under their parent, so the test expands the parent rows; if that fails it searches the
runs table with the strategy tag. A screenshot is written to the test's tmp dir either way.
"""

from __future__ import annotations

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

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STRATEGIES = ("fixed", "hypervolume", "gradient")
UI_START_S = 120  # bound on waiting for `mlflow ui` to answer /health
PAGE_S = 90  # bound on finding the runs once the page is open


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _populate(uri: str) -> str:
    """Create experiment ``moalign`` with a parent run and nested strategy runs; return its id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("moalign")
    parent = client.create_run(exp_id, run_name="pipeline", tags={"moalign.stage": "pipeline"})
    for i, s in enumerate(STRATEGIES):
        run = client.create_run(exp_id, run_name=f"train@{s}", tags={
            "moalign.stage": "train", "moalign.strategy": s, "mlflow.parentRunId": parent.info.run_id})
        client.log_metric(run.info.run_id, "pareto/hypervolume", 0.1 * (i + 1), step=0)
        client.set_terminated(run.info.run_id)
    client.set_terminated(parent.info.run_id)
    return exp_id


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
    """playwright.sync_api, or a skip naming what is missing (checked before the server starts)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)")
    return pytest.importorskip("playwright.sync_api", reason="playwright (python) is not importable")


@pytest.fixture
def mlflow_ui(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Yield (base url, experiment id) of a live `mlflow ui`; the server is always stopped."""
    pytest.importorskip("mlflow", reason="mlflow is not installed")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp_id = _populate(uri)
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
        yield url, exp_id
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
    """Chromium opens the experiment's run list and sees train@fixed/hypervolume/gradient."""
    url, exp_id = mlflow_ui
    shot = tmp_path / "mlflow_ui.png"
    found: set[str] = set()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{url}/#/experiments/{exp_id}/runs", wait_until="domcontentloaded", timeout=60_000)
            try:  # the run list has rendered once the parent run's name shows
                page.wait_for_selector("text=pipeline", timeout=60_000)
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
