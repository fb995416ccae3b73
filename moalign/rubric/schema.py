"""The meta-rubric as data: principles, weight tiers, enforcement rules, criteria, domain layers.

A meta-rubric (OpenRS's "constitution") is a YAML file validated on load; every error names
the file, the key path and its line (ruamel's round-trip loader keeps the line of each key).
``criteria`` are the candidate dimensions the judge instantiates per pair. A criterion with a
``check`` names a programmatic feature (:data:`moalign.rubric.features.FEATURES`) that the
offline ``rules`` judge compares between A and B, with ``direction`` (+1: more is better, -1:
less is better), ``margin`` (differences within it are ties), ``relative`` (compare the
difference relative to the larger value, i.e. a length *ratio*) and ``params`` (keyword
arguments of the feature, e.g. a word limit).

Departures from OpenRS: OpenRS writes its constitution as prose (Chinese markdown); here it
is typed data, so evolution can edit it and the edits diff cleanly. ``domain_layers`` hold
*candidate* dimensions per query type (the pool for ADD edits and human review); they become
active only when evolution or a reviewer adds them to ``criteria``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from moalign.io import write_text
from moalign.schema import StrictModel

Tier = Literal["fatal", "core", "important", "highlight"]
TIERS: tuple[str, ...] = ("fatal", "core", "important", "highlight")
DEFAULT_TIER_WEIGHTS: dict[str, Any] = {"fatal": "veto", "core": 5.0, "important": 2.0, "highlight": 1.0}


class RubricError(ValueError):
    """A rubric file is missing, malformed or invalid (the message names file, key and line)."""


class Criterion(StrictModel):
    """One dimension of a good answer, as the judge instantiates it for a pair."""

    name: str = Field(..., min_length=1, description="Unique id of the criterion.")
    description: str = Field("", description="What the judge checks, in words (shown to LLM judges).")
    tier: Tier = Field("important", description="fatal (veto) | core (5) | important (2) | highlight (1).")
    check: str | None = Field(None, description="Programmatic feature the rules judge compares (FEATURES name).")
    params: dict[str, Union[float, int, str, bool, list[str]]] = Field(
        default_factory=dict, description="Keyword arguments of the check (e.g. {max_words: 120}).")
    direction: Literal[1, -1] = Field(1, description="+1: larger feature value is better; -1: smaller is better.")
    margin: float = Field(0.0, ge=0, description="Feature differences within the margin are ties (not instantiated).")
    relative: bool = Field(False, description="Compare (a - b) / max(|a|, |b|) instead of a - b (a ratio).")

    @model_validator(mode="after")
    def _known_check(self) -> "Criterion":
        from moalign.rubric.features import FEATURES

        if self.check is not None and self.check not in FEATURES:
            raise ValueError(f"unknown check {self.check!r}; valid names: {', '.join(FEATURES.names())}")
        return self


class Enforcement(StrictModel):
    """OpenRS's rules for writing query-specific criteria."""

    min_criteria: int = Field(5, ge=1, description="Fewest criteria an LLM judge should write per pair.")
    max_criteria: int = Field(15, ge=1, description="Most criteria per pair; extra ones are dropped, lowest tier first.")
    intent_first: bool = Field(True, description="Analyse the query's intent before reading the responses.")
    rules: list[str] = Field(default_factory=list, description="Rules for writing criteria (shown to LLM judges).")

    @model_validator(mode="after")
    def _range(self) -> "Enforcement":
        if self.min_criteria > self.max_criteria:
            raise ValueError(f"min_criteria ({self.min_criteria}) > max_criteria ({self.max_criteria}). "
                             "Fix: e.g. min_criteria: 5, max_criteria: 15")
        return self


class MetaRubric(StrictModel):
    """The judge's constitution: principles, tiers, enforcement rules, criteria, domain layers."""

    version: str = Field("1", description="Version label of the rubric.")
    principles: list[str] = Field(default_factory=list, description="General principles of a good answer.")
    tier_weights: dict[str, Union[float, Literal["veto"]]] = Field(
        default_factory=lambda: dict(DEFAULT_TIER_WEIGHTS),
        description="fatal: veto; weights of core / important / highlight (OpenRS: 5 / 2 / 1).")
    enforcement: Enforcement = Field(default_factory=Enforcement)
    criteria: list[Criterion] = Field(default_factory=list, description="Active criteria (candidate dimensions).")
    domain_layers: dict[str, list[Criterion]] = Field(
        default_factory=dict, description="Extra candidate criteria per query type.")

    @field_validator("version", mode="before")
    @classmethod
    def _str_version(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v

    @model_validator(mode="after")
    def _consistent(self) -> "MetaRubric":
        names = [c.name for c in self.criteria]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate criterion names {dup}. Fix: give each criterion a unique name")
        for tier, w in self.tier_weights.items():
            if tier not in TIERS:
                raise ValueError(f"tier_weights: unknown tier {tier!r}; valid tiers: {', '.join(TIERS)}")
            if (tier == "fatal") != (w == "veto"):
                raise ValueError(f"tier_weights.{tier} = {w!r}: fatal must be 'veto' and the other tiers numbers >= 0")
            if w != "veto" and float(w) < 0:
                raise ValueError(f"tier_weights.{tier} = {w}: weights must be >= 0")
        return self

    def weights(self) -> dict[str, float]:
        """Numeric weights of the non-fatal tiers (defaults fill missing tiers)."""
        merged = {**DEFAULT_TIER_WEIGHTS, **self.tier_weights}
        return {t: float(w) for t, w in merged.items() if t != "fatal"}

    def candidates(self, query_type: str | None = None) -> list[Criterion]:
        """Domain-layer dimensions not yet active (for ``query_type``, or all types)."""
        layers = [self.domain_layers.get(query_type, [])] if query_type else list(self.domain_layers.values())
        active = {c.name for c in self.criteria}
        return [c for layer in layers for c in layer if c.name not in active]


class AcceptedPrinciple(StrictModel):
    """One entry of ``rubrics/accepted.yaml``: a domain principle a human accepted in review."""

    query_type: str = Field(..., description="Query type (domain layer) the principle came from.")
    criterion: Criterion
    fixes: int = Field(0, ge=0, description="Labelled pairs it fixed when proposed.")
    breaks: int = Field(0, ge=0, description="Labelled pairs it broke when proposed.")


def _line_of(node: Any, loc: tuple) -> int | None:
    """Line (1-based) of the deepest key of ``loc`` found in a ruamel round-trip tree."""
    line = None
    for part in loc:
        try:
            if hasattr(node, "lc"):
                if isinstance(part, int) and isinstance(node, list) and part < len(node):
                    line = node.lc.item(part)[0] + 1
                elif not isinstance(part, int) and part in node:
                    line = node.lc.key(part)[0] + 1
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    return line


def _load_tree(text: str, source: str) -> tuple[Any, Any]:
    """(ruamel round-trip tree with line info, plain python data); malformed YAML -> RubricError with line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError

    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else "?"
        raise RubricError(f"{source}: line {line}: malformed YAML ({e.problem or e.context})") from None
    return tree, yaml.safe_load(text)


def _validate(model: type[StrictModel], data: Any, tree: Any, source: str, prefix: tuple = ()) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = prefix + tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            key = ".".join(str(p) for p in loc) or "<root>"
            msg = ("unknown key. Fix: remove it or correct its spelling" if e["type"] == "extra_forbidden"
                   else e["msg"].removeprefix("Value error, "))
            lines.append(f"{source}: line {_line_of(tree, loc) or '?'}: {key}: {msg}")
        raise RubricError("\n".join(lines)) from None


def parse_rubric_text(text: str, source: str = "<rubric>") -> MetaRubric:
    """Validate YAML text as a :class:`MetaRubric`; errors name ``source``, key path and line."""
    tree, data = _load_tree(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RubricError(f"{source}: line 1: a meta-rubric must be a mapping (version, principles, criteria, ...)")
    return _validate(MetaRubric, data, tree, source)


def load_accepted(path: str | Path) -> list[AcceptedPrinciple]:
    """Entries of ``accepted.yaml`` (a YAML list; an empty file or ``[]`` is no entries)."""
    p = Path(path)
    tree, data = _load_tree(p.read_text(), str(p))
    if data is None:
        return []
    if not isinstance(data, list):
        raise RubricError(f"{p}: line 1: accepted principles must be a YAML list of "
                          "{{query_type, criterion, fixes, breaks}}. Fix: start the file with `[]`")
    return [_validate(AcceptedPrinciple, item, tree, str(p), (i,)) for i, item in enumerate(data)]


def load_meta_rubric(path: str | Path, domain_layer: str | Path | None = None,
                     accepted: str | Path | None = None) -> MetaRubric:
    """Load the meta-rubric; merge a domain-layer file (candidates) and accepted principles (active)."""
    p = Path(path)
    if not p.exists():
        raise RubricError(f"rubric file {str(p)!r} not found. Fix: point rubric.meta at an existing YAML file")
    rubric = parse_rubric_text(p.read_text(), str(p))
    if domain_layer is not None:
        d = Path(domain_layer)
        if not d.exists():
            raise RubricError(f"domain layer {str(d)!r} not found. Fix: point rubric.domain_layer at a YAML file")
        tree, data = _load_tree(d.read_text(), str(d))
        if not isinstance(data, dict) or set(data) - {"domain_layers"}:
            raise RubricError(f"{d}: line 1: a domain layer file holds one key, domain_layers: {{type: [criteria]}}")
        layers = _validate(MetaRubric, {"domain_layers": data.get("domain_layers") or {}}, tree, str(d)).domain_layers
        for qt, crits in layers.items():
            have = {c.name for c in rubric.domain_layers.get(qt, [])}
            rubric.domain_layers.setdefault(qt, []).extend(c for c in crits if c.name not in have)
    if accepted is not None and Path(accepted).exists():
        active = {c.name for c in rubric.criteria}
        rubric.criteria.extend(e.criterion for e in load_accepted(accepted) if e.criterion.name not in active)
    return rubric


def dump_meta_rubric(rubric: MetaRubric, path: str | Path | None = None) -> str:
    """YAML text of ``rubric`` (stable key order); written atomically to ``path`` when given."""
    text = yaml.safe_dump(rubric.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    if path is not None:
        write_text(path, text)
    return text
