"""Atomic writes: every output goes to a temporary sibling first, then is renamed into place.

A killed stage therefore leaves either the old output or the new one, never half a file.

- :func:`atomic_path`: one file or one folder.
- :func:`atomic_outputs`: several files or folders of one stage (possibly in different
  folders) that must appear together or not at all: all are written into temporary folders
  next to their targets, and only when every write succeeded are they renamed into place.
- A write that fails because the disk is full raises :class:`moalign.errors.DiskFullError`
  naming the target; an unreadable JSON input raises :class:`moalign.errors.StageError`.
- Kills: :func:`on_signal` is the SIGTERM/SIGINT handler of every stage (installed by
  ``stages._edge.stage_main`` and by ``moalign.tracking``); it raises :class:`Interrupted`, so
  the ``finally`` blocks here remove the temporary folders. While a rename or a cleanup is in
  progress (:func:`hold_signals`) the signal waits until it is done, so a kill never leaves a
  half-swapped folder, a partial set of :func:`atomic_outputs`, or a ``.tmp`` folder behind.
  (SIGKILL cannot be caught: then the old outputs stay intact and a hidden ``.<name>.*.tmp``
  folder may remain.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

from moalign.errors import DiskFullError, StageError, is_disk_full

_held = 0  # depth of hold_signals() blocks
_pending: int | None = None  # a signal that arrived while held


class Interrupted(SystemExit):
    """A stage stopped by SIGTERM or SIGINT; exits with ``128 + signum`` (143, 130) if nothing catches it."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    @property
    def signame(self) -> str:
        return signal.Signals(self.signum).name


def on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
    """SIGTERM/SIGINT handler: raise :class:`Interrupted` now, or when the held rename/cleanup ends."""
    global _pending
    if _held:
        _pending = signum
        return
    raise Interrupted(signum)


@contextmanager
def hold_signals() -> Iterator[None]:
    """Defer :func:`on_signal` until the block ends (renames and cleanups that must not be cut).

    Only the main thread counts: Python runs signal handlers there, so another thread's rename
    cannot be cut, and the deferred signal must not surface in (and end) another thread.
    """
    global _held, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


def _replace(target: Path, dest: Path) -> None:
    """Move ``target`` onto ``dest`` (a folder is swapped: the old one is removed afterwards)."""
    with hold_signals():
        if dest.is_dir() and not dest.is_symlink():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(target, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, dest)


@contextmanager
def _staged(path: str | os.PathLike[str]) -> Iterator[tuple[Path, Path]]:
    """Yield ``(temp path, dest)`` with the temp path in a fresh hidden folder beside ``dest``.

    The folder is removed on exit; a write that failed for lack of space becomes DiskFullError.
    """
    dest, tmp = Path(path), None
    try:
        with hold_signals():  # a kill right after mkdtemp must still reach the cleanup below
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        yield tmp / dest.name, dest
    except (OSError, RuntimeError) as e:
        if is_disk_full(e, dest.parent):
            raise DiskFullError(dest) from e
        raise
    finally:
        if tmp is not None:
            with hold_signals():
                shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it onto ``path`` (file or directory)."""
    with _staged(path) as (target, dest):
        yield target
        _replace(target, dest)


@contextmanager
def atomic_outputs(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Yield one temp path per target; when the block succeeds all are renamed into place, else none.

    Each temp path sits in a hidden folder next to its target (same filesystem, so the final
    renames are cheap and atomic one by one). Nothing is renamed until every target was
    written: a failure or a kill inside the block leaves every old output untouched. A target
    the block did not create is an error (a stage must write its whole set).
    """
    if len({Path(p).resolve() for p in paths}) != len(paths):
        raise ValueError(f"atomic_outputs: the same target is listed twice in {[str(p) for p in paths]}")
    with ExitStack() as stack:
        staged = [stack.enter_context(_staged(p)) for p in paths]
        yield [t for t, _ in staged]
        missing = [str(d) for t, d in staged if not t.exists() and not t.is_symlink()]
        if missing:
            raise StageError(f"outputs {missing} were not written; no output was replaced. "
                             "Fix: write every listed output inside the block")
        with hold_signals():  # all renamed, or (killed before this line) none
            for target, dest in staged:
                _replace(target, dest)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse the JSON file ``path``; a corrupt file is a StageError naming it."""
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise StageError(f"{path}: not valid JSON ({e}). Fix: rerun the stage that writes it "
                         "(e.g. `dvc repro --force <stage>`)") from None
