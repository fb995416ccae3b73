"""Typed-config base: strict pydantic models and errors that name the key and the fix.

Every section of ``params.yaml`` is a :class:`StrictModel`; unknown keys are errors.
:func:`format_validation_error` turns pydantic's error list into one message per
bad key, written as a dotted path from the top of ``params.yaml``
(``train.group_size = 1: ...``), so the user knows what to edit.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class ParamsError(ValueError):
    """A value in params.yaml is unknown, has the wrong type, or is impossible."""


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors; values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _dotted(loc: tuple[Any, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    for p in loc:
        if isinstance(p, int):
            parts[-1 if parts else 0:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        elif isinstance(p, str) and not p.startswith("function-") and p not in ("tagged-union",):
            parts.append(p)
    return ".".join(parts)


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """Render a pydantic ``ValidationError`` as lines ``key = value: problem. Fix: ...``."""
    lines = []
    for e in err.errors():
        key = _dotted(tuple(e["loc"]), prefix) or prefix or "<root>"
        kind = e["type"]
        val = e.get("input")
        if kind == "extra_forbidden":
            lines.append(
                f"{key}: unknown key. Fix: remove it or correct its spelling "
                f"(see params.yaml and the README for the valid keys)."
            )
        elif kind == "missing":
            lines.append(f"{key}: required key is missing. Fix: add it to params.yaml.")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            shown = repr(val) if not isinstance(val, dict) else "{...}"
            lines.append(f"{key} = {shown}: {msg}")
    return "invalid params:\n  " + "\n  ".join(lines)


def validate_section(model: type[StrictModel], data: Any, prefix: str) -> Any:
    """Validate ``data`` as ``model``; raise :class:`ParamsError` naming ``prefix.key`` on failure."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as err:
        raise ParamsError(format_validation_error(err, prefix)) from None


def check(cond: bool, key: str, value: Any, problem: str, fix: str) -> None:
    """Raise a ParamsError naming ``key`` unless ``cond`` holds (for cross-field checks)."""
    if not cond:
        raise ValueError(f"{problem} (got {key}={value!r}). Fix: {fix}")
