"""Shared command-line edge of every stage: ``--params`` parsing, logging, clean errors."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from typing import Callable, Sequence

import numpy as np

from moalign.config import Params, load_params
from moalign.schema import ParamsError


def seed_everything(seed: int, threads: int = 0) -> None:
    """The one seeding block: python, numpy and torch from ``base.seed``."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


def stage_main(
    name: str,
    run: Callable[..., object],
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse ``--params`` (and stage extras), call ``run(params, **extras)``; errors exit 2 with the message."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=f"moalign {name} stage")
    parser.add_argument("--params", default=os.environ.get("MOALIGN_PARAMS", "params.yaml"))
    if extra:
        extra(parser)
    args = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        params: Params = load_params(args.pop("params"))
        run(params, **args)
    except (ParamsError, FileNotFoundError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"moalign {name}: error: {msg}", file=sys.stderr)
        return 2
    return 0
