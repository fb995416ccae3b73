"""Typed-config base: strict pydantic models and errors that name the key and the fix.

Every section of ``params.yaml`` is a :class:`StrictModel`; unknown keys are errors, and values
are strict: a string is not a number (``label_noise: '0.2'`` is refused, where pydantic's lax
mode would read 0.2) and a boolean is not a count; an integer is still a valid float (YAML
``lr: 1``). ``dvc exp run -S key=value`` writes typed YAML values, so overrides pass.
:func:`format_validation_error` turns pydantic's error list into one message per
bad key, written as a dotted path from the top of ``params.yaml``
(``train.group_size = 1: ...``), so the user knows what to edit; :func:`section_errors` gives
those lines without raising, so a caller can report every bad key of every section at once.
"""

from __future__ import annotations

import copy
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from moalign.errors import StageError


class ParamsError(StageError, ValueError):
    """A value in params.yaml is unknown, has the wrong type, or is impossible."""


def _bool_mismatch(annotation: Any, value: Any) -> str | None:
    """Why ``value`` is a bool where a number is expected (or vice versa), else None.

    YAML's ``true`` is not a count and ``1`` is not a switch: pydantic's lax mode would take
    ``max_steps: true`` as 1 and ``enabled: 1`` as True, so both are refused here. Unions
    (``int | None``), lists and dict values are checked element-wise.
    """
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        opts = [a for a in get_args(annotation) if a is not type(None)]
        if value is None or any(a is Any for a in opts):
            return None
        why = [_bool_mismatch(a, value) for a in opts]
        return why[0] if all(why) else None
    if origin in (list, tuple, set) and isinstance(value, (list, tuple, set)):
        inner = [a for a in get_args(annotation) if a is not Ellipsis][:1]
        return next((w for v in value for a in inner if (w := _bool_mismatch(a, v))), None)
    if origin is dict and isinstance(value, dict) and len(get_args(annotation)) == 2:
        inner = get_args(annotation)[1]
        return next((f"at {k!r}: {w}" for k, v in value.items() if (w := _bool_mismatch(inner, v))), None)
    if annotation in (int, float) and isinstance(value, bool):
        return f"a number is expected, not the boolean {value}. Fix: write a number (e.g. 1)"
    if annotation is bool and not isinstance(value, bool):
        return f"a boolean is expected, not {value!r}. Fix: write true or false"
    return None


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors; values are validated on assignment.

    Values are strict (no string -> number coercion); booleans and numbers are not
    interchangeable (see :func:`_bool_mismatch`).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_bools(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        why = _bool_mismatch(field.annotation, value) if field is not None else None
        if why:
            raise ValueError(why)
        return value


def _dotted(loc: tuple[Any, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    for p in loc:
        if isinstance(p, int):
            parts[-1 if parts else 0:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        elif isinstance(p, str) and not p.startswith("function-") and p not in ("tagged-union",):
            parts.append(p)
    return ".".join(parts)


_FIX_TYPE = {"float_type": "a number", "int_type": "a whole number", "bool_type": "true or false",
             "string_type": "a string", "list_type": "a list", "dict_type": "a mapping"}


def error_lines(err: ValidationError, prefix: str = "") -> list[str]:
    """One line ``key = value: problem. Fix: ...`` per error of ``err``."""
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
            if kind in _FIX_TYPE and "Fix" not in msg:
                quoted = " without quotes" if isinstance(val, str) and kind in ("float_type", "int_type") else ""
                msg += f". Fix: write {_FIX_TYPE[kind]}{quoted}"
            lines.append(f"{key} = {shown}: {msg}")
    return lines


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """Render a pydantic ``ValidationError`` as lines ``key = value: problem. Fix: ...``."""
    return "invalid params:\n  " + "\n  ".join(error_lines(err, prefix))


def section_errors(model: type[StrictModel], data: Any, prefix: str) -> tuple[Any, list[str]]:
    """``(validated model, [])``, or ``(None, lines)`` naming every bad ``prefix.key`` of ``data``."""
    try:
        return model.model_validate(data if data is not None else {}), []
    except ValidationError as err:
        return None, error_lines(err, prefix)


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``: nested dicts merge key by key, anything else replaces (copied)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def check(cond: bool, key: str, value: Any, problem: str, fix: str) -> None:
    """Raise a ParamsError naming ``key`` unless ``cond`` holds (for cross-field checks)."""
    if not cond:
        raise ValueError(f"{problem} (got {key}={value!r}). Fix: {fix}")
