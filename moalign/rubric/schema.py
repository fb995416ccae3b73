"""The meta-rubric as data: principles, weight tiers, enforcement rules, criteria, domain layers.

A meta-rubric (OpenRS's "constitution") is a YAML file validated on load; errors name the
file, the key path and its line. ``criteria`` are the candidate dimensions the judge
instantiates per pair; a criterion with a ``check`` names a programmatic feature
(:data:`moalign.rubric.features.FEATURES`) that the offline ``rules`` judge evaluates, with
``direction`` (+1: more is better, -1: less is better) and ``margin`` (a difference within it is a tie).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from moalign.io import write_text
from moalign.schema import StrictModel

Tier = Literal["fatal", "core", "important", "highlight"]


class RubricError(ValueError):
    """A rubric file is malformed or invalid."""


class Criterion(StrictModel):
    name: str = Field(..., min_length=1, description="Unique id of the criterion.")
    description: str = Field("", description="What the judge checks, in words (shown to LLM judges).")
    tier: Tier = Field("important", description="fatal (veto) | core (5) | important (2) | highlight (1).")
    check: str | None = Field(None, description="Programmatic feature for the rules judge (FEATURES name).")
    direction: Literal[1, -1] = Field(1, description="+1: larger feature is better; -1: smaller is better.")
    margin: float = Field(0.0, ge=0, description="Feature differences within the margin are ties.")

    @model_validator(mode="after")
    def _check(self) -> "Criterion":
        from moalign.rubric.features import FEATURES

        if self.check is not None and self.check not in FEATURES:
            raise ValueError(f"unknown check {self.check!r}; valid names: {', '.join(FEATURES.names())}")
        return self


class Enforcement(StrictModel):
    min_criteria: int = Field(5, ge=1, description="Fewest criteria a judge should write per query.")
    max_criteria: int = Field(15, ge=1, description="Most criteria per query; extra ones are dropped by tier.")
    intent_first: bool = Field(True, description="Analyse the query's intent before reading the answers.")
    rules: list[str] = Field(default_factory=list, description="Rules for writing query-specific criteria.")


class MetaRubric(StrictModel):
    version: str = Field("1", description="Version label of the rubric.")
    principles: list[str] = Field(default_factory=list, description="General principles of a good answer.")
    tier_weights: dict[str, float] = Field(
        default_factory=lambda: {"core": 5.0, "important": 2.0, "highlight": 1.0},
        description="Weights of the non-fatal tiers (fatal criteria veto).",
    )
    enforcement: Enforcement = Field(default_factory=Enforcement)
    criteria: list[Criterion] = Field(default_factory=list)
    domain_layers: dict[str, list[Criterion]] = Field(default_factory=dict, description="Extra criteria per query type.")

    @model_validator(mode="after")
    def _unique(self) -> "MetaRubric":
        names = [c.name for c in self.criteria]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate criterion names {dup}. Fix: give each criterion a unique name")
        bad = set(self.tier_weights) - {"core", "important", "highlight"}
        if bad:
            raise ValueError(f"tier_weights has unknown tiers {sorted(bad)}; fatal is a veto and takes no weight")
        return self

    def candidates(self, query_type: str | None = None) -> list[Criterion]:
        """Domain-layer dimensions not yet active (for the query type, or all types)."""
        layers = [self.domain_layers.get(query_type, [])] if query_type else list(self.domain_layers.values())
        names = {c.name for c in self.criteria}
        return [c for layer in layers for c in layer if c.name not in names]

    def weight(self, tier: str) -> float:
        return float("inf") if tier == "fatal" else float(self.tier_weights.get(tier, 0.0))


def _line_of(node: Any, loc: tuple) -> int | None:
    """Line (1-based) of the deepest key of ``loc`` found in a ruamel round-trip tree."""
    line = None
    for part in loc:
        try:
            if hasattr(node, "lc"):
                if isinstance(part, int) and isinstance(node, list) and part < len(node):
                    line = node.lc.item(part)[0] + 1
                elif part in node:
                    line = node.lc.key(part)[0] + 1
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    return line


def parse_rubric_text(text: str, source: str = "<rubric>") -> MetaRubric:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError

    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise RubricError(f"{source}: line {mark.line + 1}: malformed YAML ({e.problem})") from None
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise RubricError(f"{source}: a meta-rubric must be a mapping (principles, criteria, ...)")
    try:
        return MetaRubric.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = tuple(e["loc"])
            key = ".".join(str(p) for p in loc) or "<root>"
            ln = _line_of(tree, loc)
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: line {ln or '?'}: {key}: {msg}")
        raise RubricError("\n".join(lines)) from None


def _layers(path: str | Path) -> dict[str, list[Criterion]]:
    extra = yaml.safe_load(Path(path).read_text()) or {}
    text = yaml.safe_dump({"domain_layers": extra.get("domain_layers") or {}})
    return parse_rubric_text(text, str(path)).domain_layers


def load_meta_rubric(path: str | Path, domain_layer: str | Path | None = None,
                     accepted: str | Path | None = None) -> MetaRubric:
    """Load the meta-rubric, merging a domain layer file and human-accepted domain principles."""
    p = Path(path)
    if not p.exists():
        raise RubricError(f"rubric file {str(p)!r} not found. Fix: point rubric.meta at an existing YAML file")
    rubric = parse_rubric_text(p.read_text(), str(p))
    if domain_layer and Path(domain_layer).exists():  # candidate dimensions (ADD pool, review proposals)
        for qt, crits in _layers(domain_layer).items():
            have = {c.name for c in rubric.domain_layers.get(qt, [])}
            rubric.domain_layers.setdefault(qt, []).extend(c for c in crits if c.name not in have)
    if accepted and Path(accepted).exists():  # human-accepted principles: active criteria
        have = {c.name for c in rubric.criteria}
        for crits in _layers(accepted).values():
            rubric.criteria.extend(c for c in crits if c.name not in have)
    return rubric


def dump_meta_rubric(rubric: MetaRubric, path: str | Path | None = None) -> str:
    text = yaml.safe_dump(rubric.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    if path is not None:
        write_text(path, text)
    return text
