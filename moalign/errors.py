"""Project exceptions for *expected* failures: each message is one line naming what and the fix.

A stage raises :class:`StageError` (or a subclass) at the place where it knows the key, the
file or the endpoint involved; :func:`stages._edge.stage_main` prints the message as one line
and exits with code 2. Anything else that escapes a stage is treated as a bug and keeps its
traceback.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class StageError(Exception):
    """An expected failure (bad input, unreachable service, full disk...); message = what + Fix."""


class ServiceError(StageError):
    """A service the stage relies on (MLflow tracking server, LLM judge endpoint) is unreachable."""


class DiskFullError(StageError):
    """No space left on the device that holds ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        super().__init__(
            f"no space left on device at {self.path}. Fix: free disk space (e.g. delete old "
            "checkpoints/ or mlruns/) or point the outputs to a larger disk, then rerun"
        )


#: torch/C++ stream messages that mean "a write failed", which on a full disk is all torch says.
_WRITE_FAILURES = ("basic_ios::clear", "iostream error", "failed writing", "unexpected pos")
_LOW_SPACE = 16 * 2**20  # bytes; below this a failed write is blamed on the disk


def is_disk_full(err: BaseException, where: str | os.PathLike[str] | None = None) -> bool:
    """True when ``err`` is ENOSPC, or a failed write (torch's stream errors) on a nearly full disk."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(err, RuntimeError) and any(s in str(err) for s in _WRITE_FAILURES) and where is not None:
        p = Path(where)
        while not p.exists() and p != p.parent:
            p = p.parent
        try:
            return shutil.disk_usage(p).free < _LOW_SPACE
        except OSError:
            return False
    return False
