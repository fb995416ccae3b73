"""MLflow edge: one run per stage, nested under a pipeline run when the environment names one.

- The tracking URI is set explicitly from ``base.tracking.uri`` (default ``sqlite:///mlflow.db``).
- ``MOALIGN_PARENT_RUN_ID`` (set by the Prefect flow) makes the stage a nested run.
- Runs are tagged ``moalign.stage``, ``moalign.git_commit`` and, for train, ``moalign.strategy``.
- ``tracking.enabled: false`` turns every call into a no-op; an unreachable store warns and
  turns tracking off unless ``tracking.required: true``. Values whose key looks like a
  secret (``*key*``, ``*token*``, ``*secret*``, ``*password*``) are never logged.
- An http(s) tracking server is probed first with a bounded request (``CHECK_TIMEOUT``
  seconds) instead of MLflow's minutes of retries; unreachable + ``required: false`` warns
  once and runs untracked, ``required: true`` is a :class:`ServiceError` naming the uri.
- While a run is active, SIGTERM and SIGINT end it as ``KILLED`` (the handler is
  :func:`moalign.io.on_signal`, the one ``stages._edge`` installs for the whole stage; it raises
  :class:`Killed`, i.e. :class:`moalign.io.Interrupted`). The stage edge prints the one line
  and exits with 128 + signal (143 for SIGTERM); checkpoints are written atomically, so a
  rerun resumes.
- :meth:`Tracker.log_policy` logs a policy as an MLflow model (the ``transformers`` flavour;
  a PEFT adapter is logged alone with its base referenced by local path, MLflow's
  ``base_model_path``), registers it under one name with an alias (the strategy), a
  ``moalign.strategy`` tag and its metrics (``models:/<name>@<alias>`` loads it back).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from moalign.errors import ServiceError
from moalign.io import Interrupted, on_signal

log = logging.getLogger("moalign.tracking")
PARENT_ENV = "MOALIGN_PARENT_RUN_ID"
CHECK_TIMEOUT = 3.0
_SECRET_WORDS = ("key", "token", "secret", "password")
_warned: set[str] = set()


Killed = Interrupted  # raised by the signal handler of an active run: exits with ``128 + signum``


def check_server(uri: str, timeout: float = CHECK_TIMEOUT) -> str | None:
    """None when the http(s) tracking server at ``uri`` answers within ``timeout`` s, else why not.

    Any HTTP answer (even an error status) counts as reachable; other URIs (sqlite, file)
    are not probed.
    """
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return f"{type(reason).__name__}: {reason}" if not isinstance(reason, str) else reason


@contextmanager
def _end_on_signal(mlflow_mod: Any) -> Iterator[None]:
    """While active: SIGTERM/SIGINT end the MLflow run as KILLED, then exit 128 + signum."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def git_commit() -> str:
    """The checkout's commit ("unknown" outside git): moalign/provenance.py ``git_state``."""
    from moalign.provenance import git_state

    return git_state()[0]


def _safe(params: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in params.items():
        leaf = k.rsplit(".", 1)[-1].lower()
        if any(w in leaf for w in _SECRET_WORDS) and not leaf.endswith(("_env", "tokens")) and "max" not in leaf:
            continue
        out[k] = str(v)[:500]
    return out


class Tracker:
    """Thin wrapper over an active MLflow run; every method is a no-op when disabled."""

    def __init__(self, mlflow_mod: Any | None) -> None:
        self._m = mlflow_mod

    @property
    def enabled(self) -> bool:
        return self._m is not None

    @property
    def run_id(self) -> str | None:
        return self._m.active_run().info.run_id if self._m else None

    def log_params(self, params: dict[str, Any]) -> None:
        if self._m:
            items = _safe(params)
            keys = sorted(items)
            for i in range(0, len(keys), 100):
                self._m.log_params({k: items[k] for k in keys[i : i + 100]})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._m:
            clean = {k.replace("@", "_"): float(v) for k, v in metrics.items() if v is not None}
            self._m.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self._m and Path(path).exists():
            if Path(path).is_dir():
                self._m.log_artifacts(str(path), artifact_path=artifact_path)
            else:
                self._m.log_artifact(str(path), artifact_path=artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self._m:
            self._m.set_tags(tags)

    def log_policy(self, model: Any, tok: Any, name: str, registered_model: str, metrics: dict[str, float],
                   base_model_path: str | None = None, description: str = "") -> str | None:
        """Log ``model`` (+ ``tok``) as MLflow model ``name``, register it as ``registered_model`` with alias
        ``name``; returns the registered version (None when tracking is off).

        ``base_model_path``: ``model`` is a PEFT model whose base lives in that folder; only the adapter
        is stored and the folder must exist when the model is loaded back.
        """
        if not self._m:
            return None
        import mlflow.transformers
        from huggingface_hub import ModelCard

        reqs = ["torch", "transformers", "accelerate"] + (["peft"] if base_model_path else [])
        info = mlflow.transformers.log_model(
            {"model": model, "tokenizer": tok}, name=name, task="text-generation",
            registered_model_name=registered_model, pip_requirements=reqs, tags={"moalign.strategy": name},
            model_card=ModelCard(f"---\ntags: [moalign]\n---\n# moalign policy `{name}`\n\n{description}\n"),
            base_model_path=base_model_path)
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}
        if clean:
            self._m.log_metrics(clean, model_id=info.model_id)
        version = str(info.registered_model_version)
        client = self._m.MlflowClient()
        client.set_registered_model_alias(registered_model, name, version)
        client.set_model_version_tag(registered_model, version, "moalign.strategy", name)
        if description:
            client.update_model_version(registered_model, version, description=description)
        return version

    def log_table(self, df: Any, artifact_file: str) -> None:
        """A pandas DataFrame as an MLflow table (shown in the run's Artifacts/Evaluation view)."""
        if self._m:
            self._m.log_table(data=df, artifact_file=artifact_file)


@contextmanager
def stage_run(
    stage: str, tracking: Any, params: dict[str, Any], run_name: str | None = None,
    tags: dict[str, str] | None = None, parent_run_id: str | None = None,
) -> Iterator[Tracker]:
    """Open the MLflow run of ``stage`` (nested under ``parent_run_id``, else ``$MOALIGN_PARENT_RUN_ID`` when set)."""
    if not tracking.enabled:
        yield Tracker(None)
        return
    why = check_server(tracking.uri)
    if why is not None:
        if tracking.required:
            raise ServiceError(
                f"base.tracking.uri = {tracking.uri!r}: the MLflow server is not reachable ({why}). "
                "Fix: start the tracking server (mlflow server ...), correct the uri, "
                "or set base.tracking.required: false"
            )
        if tracking.uri not in _warned:
            _warned.add(tracking.uri)
            log.warning("MLflow server %s is not reachable (%s); continuing without tracking", tracking.uri, why)
        yield Tracker(None)
        return
    try:
        import mlflow

        mlflow.set_tracking_uri(tracking.uri)
        mlflow.set_experiment(tracking.experiment)
        parent = parent_run_id or os.environ.get(PARENT_ENV)
        all_tags = {"moalign.stage": stage, "moalign.git_commit": git_commit(), **(tags or {})}
        mlflow.start_run(run_name=run_name or stage, tags=all_tags, parent_run_id=parent or None)
    except Exception as e:  # noqa: BLE001 - tracking store down or misconfigured
        if tracking.required:
            raise ServiceError(
                f"base.tracking.uri = {tracking.uri!r}: MLflow is not reachable ({str(e)[:300]}). "
                "Fix: start the tracking server, or set base.tracking.required: false"
            ) from e
        log.warning("MLflow not reachable at %s (%s); continuing without tracking", tracking.uri, e)
        yield Tracker(None)
        return
    status = "FAILED"
    try:
        with _end_on_signal(mlflow):
            tracker = Tracker(mlflow)
            tracker.log_params(params)
            yield tracker
        status = "FINISHED"
    except (Killed, KeyboardInterrupt) as e:
        status = "KILLED"
        run = mlflow.active_run()
        e.mlflow_run_id = run.info.run_id if run else None  # type: ignore[union-attr] # named by the stage edge
        raise
    finally:
        mlflow.end_run(status=status)
