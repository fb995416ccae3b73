"""Shared command-line edge of every stage: ``--params`` parsing, logging, clean errors.

Expected failures end with exit code 2 and ONE line ``moalign <stage>: error: <what>. Fix: ...``:

- :class:`moalign.errors.StageError` and its kin raised at the source (``ParamsError``,
  ``JudgeError``, ``ServiceError``, ``DiskFullError``);
- missing files (``FileNotFoundError``), ``KeyError``/``ValueError`` (bad data or names),
  ``PermissionError``, a full disk (``OSError`` ENOSPC), MLflow's ``MlflowException``;
- any exception whose message carries the project's ``Fix:`` convention (an authored message).

Anything else is a bug: a one-line summary, then the traceback, exit code 1. ``--debug`` or
``MOALIGN_DEBUG=1`` prints the traceback of expected failures too.

Kills: SIGTERM and SIGINT (Ctrl-C) are handled the same way, with or without MLflow tracking.
For the whole stage the handler is :func:`moalign.io.on_signal`: it raises
:class:`moalign.io.Interrupted`, so every ``finally`` runs (temporary folders of the atomic
writes are removed; a rename in progress completes first), an active MLflow run ends as
``KILLED``, and the stage prints ONE line and exits with ``128 + signal``, the shell's
convention (143 for SIGTERM, 130 for SIGINT), so ``dvc repro`` and Prefect see a failure and
``$?`` names the signal::

    moalign train: interrupted by SIGTERM; resume with the same command (last checkpoint: checkpoints/train/fixed/step-0000020)

(``rerun the same command (no checkpoint: the stage starts over)`` for a stage that had not
saved one; ``; MLflow run <id> ended as KILLED`` when tracking was on).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import threading
import traceback
from typing import Callable, Sequence

import numpy as np

from moalign.config import Params, load_params
from moalign.errors import StageError, is_disk_full
from moalign.io import Interrupted, on_signal

DEBUG_ENV = "MOALIGN_DEBUG"
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "urllib3")


THREADS_ENV = "MOALIGN_THREADS"


def seed_everything(seed: int, threads: int = 0) -> None:
    """The one seeding block: python, numpy and torch from ``base.seed``; torch CPU threads.

    ``$MOALIGN_THREADS`` (set by ``flows.pipeline run --parallel N`` to share the cores between
    N concurrent stages) overrides ``base.threads``: it is not a param, so ``dvc.lock`` does not record
    it and a stage run with it is not out of date.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    env = os.environ.get(THREADS_ENV, "").strip()
    threads = int(env) if env.isdigit() and int(env) > 0 else threads
    if threads:
        torch.set_num_threads(threads)


def one_line(text: str) -> str:
    """Collapse a multi-line message (e.g. several bad params) into one line."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return ""
    head, rest = lines[0], lines[1:]
    return head + (" " + "; ".join(rest) if rest else "")


def _resume_hint() -> str:
    """How to go on after a kill: the checkpoint this process saved or resumed from, if any."""
    ckpt = sys.modules.get("moalign.checkpoint")  # never imported: the stage has no checkpoints
    last = ckpt.last_checkpoint() if ckpt is not None else None
    if last is not None and last.exists():
        return f"resume with the same command (last checkpoint: {last})"
    return "rerun the same command (no checkpoint: the stage starts over)"


def interrupted_line(name: str, err: BaseException) -> str:
    """The one line printed for a kill (SIGTERM / SIGINT)."""
    what = f"interrupted by {err.signame}" if isinstance(err, Interrupted) else "interrupted by SIGINT"
    run = getattr(err, "mlflow_run_id", None)
    return f"moalign {name}: {what}; {_resume_hint()}" + (f"; MLflow run {run} ended as KILLED" if run else "")


def clean_message(err: BaseException) -> str | None:
    """The one-line message of an expected failure, or None when ``err`` looks like a bug."""
    if isinstance(err, StageError):
        return one_line(str(err))
    if isinstance(err, OSError) and is_disk_full(err):
        where = f"at {err.filename}" if err.filename else "while writing an output (--debug shows where)"
        return f"no space left on device {where}. Fix: free disk space or write to a larger disk, then rerun"
    if isinstance(err, FileNotFoundError):
        name = err.filename
        msg = str(err) if name is None or "Fix:" in str(err) else f"file or folder {str(name)!r} not found"
        if "Fix:" not in msg:
            msg += ". Fix: check the path, or run the stage that writes it first (`dvc repro`)"
        return one_line(msg)
    if isinstance(err, PermissionError):
        return f"permission denied: {err.filename!r}. Fix: make it writable (or readable) for this user"
    if isinstance(err, KeyError):
        return one_line(str(err.args[0]) if err.args else repr(err))
    if isinstance(err, ValueError):
        return one_line(str(err))
    if type(err).__name__ == "MlflowException":
        return one_line(f"MLflow: {str(err)[:300]}. Fix: check base.tracking.uri, "
                        "or set base.tracking.enabled: false")
    if "Fix:" in str(err):
        return one_line(str(err))
    return None


def debug_enabled(flag: bool = False) -> bool:
    """``--debug`` or ``MOALIGN_DEBUG`` set to anything but '', 0, false, no."""
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def stage_main(
    name: str,
    run: Callable[..., object],
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse ``--params`` (and stage extras), call ``run(params, **extras)``.

    Returns 0 on success, 2 after printing one line for an expected failure (or the test
    hook's stop), ``128 + signum`` after one line for SIGTERM / SIGINT; a bug prints a summary
    line and the traceback, then returns 1.
    """
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=f"moalign {name} stage")
    parser.add_argument("--params", default=os.environ.get("MOALIGN_PARAMS", "params.yaml"))
    parser.add_argument("--debug", action="store_true", help=f"full tracebacks (also: {DEBUG_ENV}=1)")
    if extra:
        extra(parser)
    args = vars(parser.parse_args(argv))
    debug = debug_enabled(args.pop("debug"))
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(levelname)s %(message)s")
    for quiet in QUIET_LOGGERS:
        logging.getLogger(quiet).setLevel(logging.WARNING)
    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        params: Params = load_params(args.pop("params"))
        run(params, **args)
    except (Interrupted, KeyboardInterrupt) as e:
        if debug:
            traceback.print_exc()
        print(interrupted_line(name, e), file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    except Exception as e:  # noqa: BLE001 - sorted below into expected failures and bugs
        msg = clean_message(e)
        if msg is None:
            print(f"moalign {name}: unexpected error (a bug?): {type(e).__name__}: {one_line(str(e))[:300]}",
                  file=sys.stderr)
            traceback.print_exc()
            return 1
        if debug:
            traceback.print_exc()
        print(f"moalign {name}: error: {msg}", file=sys.stderr)
        return 2
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 0
