"""Pairwise adaptive judges (registry ``JUDGES``) and :func:`judge_pair`.

Every backend answers ``judge(query, a, b, rubric, ground_truth) -> list[CriterionResult]``:
it instantiates criteria from the meta-rubric conditioned on how A and B differ and compares
them criterion by criterion. The verdict is aggregated outside the judge
(:mod:`moalign.rubric.aggregate`), in both orders, after the PVR gate.

- ``rules``: offline and deterministic. An active criterion with a ``check`` is instantiated only when
  its feature differs between A and B by more than its margin (how A and B differ), then
  scored +-1, or +-2 past twice the margin; at most ``enforcement.max_criteria`` are kept,
  highest tiers first. Departure from OpenRS: no language model writes the criteria; the
  rubric's tiers, directions and margins fully decide, which is what evolution optimises.
- ``openai``: any OpenAI-compatible endpoint (vLLM, Ollama, hosted): ``MOALIGN_JUDGE_BASE_URL``,
  ``MOALIGN_JUDGE_MODEL``, ``MOALIGN_JUDGE_API_KEY`` (or ``OPENAI_API_KEY``). Bounded retries
  with exponential backoff; the JSON reply is repaired (code fences, surrounding prose) or
  retried, then a :class:`JudgeError`. The key is never logged.
- ``hf``: a local chat model via transformers, same prompt and parser.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from functools import lru_cache
from typing import Any

from moalign.registry import Registry
from moalign.rubric.aggregate import CriterionResult, aggregate, verdict_both_orders
from moalign.rubric.features import FEATURES, pvr_gate
from moalign.rubric.schema import MetaRubric, dump_meta_rubric

JUDGES: Registry = Registry("judge backend")
log = logging.getLogger("moalign.rubric")
TIER_ORDER = {"fatal": 0, "core": 1, "important": 2, "highlight": 3}


class JudgeError(RuntimeError):
    """The judge could not produce a usable verdict."""


@lru_cache(maxsize=200_000)
def _feature(check: str, response: str, answer: str | None) -> float:
    return float(FEATURES.get(check)(response, answer=answer))


@JUDGES.register("rules")
class RulesJudge:
    def __init__(self, **_: Any) -> None:
        pass

    def judge(self, query: str, a: str, b: str, rubric: MetaRubric, ground_truth: str | None = None,
              query_type: str | None = None) -> list[CriterionResult]:
        out = []
        for c in rubric.criteria:
            if c.check is None:
                continue
            d = c.direction * (_feature(c.check, a, ground_truth) - _feature(c.check, b, ground_truth))
            if abs(d) <= c.margin:
                continue
            mag = 2 if abs(d) > 2 * c.margin and c.margin > 0 else 1
            out.append(CriterionResult(c.name, c.tier, "A" if d > 0 else "B", mag if d > 0 else -mag))
        out.sort(key=lambda r: TIER_ORDER[r.tier])
        return out[: rubric.enforcement.max_criteria]


PROMPT = """You are a judge following this meta-rubric (YAML):
{rubric}
First analyse the query's intent. Then write {lo}-{hi} criteria specific to this query, conditioned on
how the two responses differ, each with a tier (fatal, core, important, highlight), and compare the
responses criterion by criterion.
Query: {query}
{gt}Response A:
{a}
Response B:
{b}
Reply with JSON only: {{"criteria": [{{"name": str, "tier": str, "chosen": "A"|"B"|"tie", "score": int in -2..2 (positive favours A)}}]}}"""


def parse_reply(text: str) -> list[CriterionResult]:
    """Parse (and repair) a judge's JSON reply; raise ValueError when it cannot be used."""
    t = re.sub(r"^```(?:json)?|```$", "", text.strip(), flags=re.M).strip()
    m = re.search(r"\{.*\}|\[.*\]", t, flags=re.S)
    if not m:
        raise ValueError("no JSON object in the reply")
    data = json.loads(m.group(0))
    items = data.get("criteria", []) if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ValueError("reply has no criteria list")
    out = []
    for it in items:
        tier = str(it.get("tier", "important")).lower()
        if tier not in TIER_ORDER:
            raise ValueError(f"unknown tier {tier!r}")
        chosen = str(it.get("chosen", "tie")).upper().replace("TIE", "tie")
        score = max(-2, min(2, int(it.get("score", 0))))
        if chosen == "B" and score > 0 or chosen == "A" and score < 0:
            score = -score  # the sign convention wins over a contradictory 'chosen'
        out.append(CriterionResult(str(it.get("name", "criterion")), tier, chosen, score))
    return out


class _LLMJudge:
    """Shared prompt / retry / parse loop of the LLM backends."""

    def __init__(self, retries: int = 3, backoff: float = 1.0, **_: Any) -> None:
        self.retries, self.backoff = retries, backoff

    def complete(self, prompt: str) -> str:  # pragma: no cover - each backend overrides
        raise JudgeError("abstract")

    def judge(self, query: str, a: str, b: str, rubric: MetaRubric, ground_truth: str | None = None,
              query_type: str | None = None) -> list[CriterionResult]:
        e = rubric.enforcement
        prompt = PROMPT.format(rubric=dump_meta_rubric(rubric), lo=e.min_criteria, hi=e.max_criteria, query=query,
                               gt=f"Reference answer: {ground_truth}\n" if ground_truth else "", a=a, b=b)
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return parse_reply(self.complete(prompt))
            except JudgeError:
                raise
            except Exception as err:  # noqa: BLE001 - network errors and garbage replies are retried
                last = err
                log.warning("judge attempt %d failed: %s", attempt + 1, type(err).__name__)
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
        raise JudgeError(f"judge failed after {self.retries + 1} attempts: {type(last).__name__}: {last}")


@JUDGES.register("openai")
class OpenAIJudge(_LLMJudge):
    def __init__(self, model: str | None = None, base_url: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 1.0, **_: Any) -> None:
        super().__init__(retries, backoff)
        from openai import OpenAI

        self.model = model or os.environ.get("MOALIGN_JUDGE_MODEL")
        url = base_url or os.environ.get("MOALIGN_JUDGE_BASE_URL")
        if not self.model or not url:
            raise JudgeError("the openai judge needs MOALIGN_JUDGE_BASE_URL and MOALIGN_JUDGE_MODEL "
                             "(e.g. http://localhost:8000/v1 for vLLM). Fix: export both, or use rubric.judge: rules")
        key = os.environ.get("MOALIGN_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.client = OpenAI(base_url=url, api_key=key, timeout=timeout, max_retries=0)

    def complete(self, prompt: str) -> str:
        r = self.client.chat.completions.create(model=self.model, temperature=0.0,
                                                messages=[{"role": "user", "content": prompt}])
        return r.choices[0].message.content or ""


@JUDGES.register("hf")
class HFJudge(_LLMJudge):
    def __init__(self, model: str | None = None, retries: int = 1, max_new_tokens: int = 512, **_: Any) -> None:
        super().__init__(retries, 0.0)
        if not model:
            raise JudgeError("the hf judge needs rubric.judge_model (a local chat model name or path)")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self.tok = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(model)
        except OSError as e:
            raise JudgeError(f"rubric.judge_model = {model!r} could not be loaded ({e})") from None
        self.max_new_tokens = max_new_tokens

    def complete(self, prompt: str) -> str:
        msgs = [{"role": "user", "content": prompt}]
        if getattr(self.tok, "chat_template", None):
            ids = self.tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
        else:
            ids = self.tok(prompt, return_tensors="pt")["input_ids"]
        out = self.model.generate(ids, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def make_judge(name: str, **opts: Any):
    return JUDGES.get(name)(**opts)


def judge_pair(judge, query: str, a: str, b: str, rubric: MetaRubric, ground_truth: str | None = None,
               query_type: str | None = None) -> dict[str, Any]:
    """PVR gate, then the judge in both orders, aggregated outside it: {'verdict', 'gate', scores, table}."""
    gate = pvr_gate(a, b, {"answer": ground_truth})
    if gate is not None:
        return {"verdict": gate, "gate": True, "score_ab": None, "score_ba": None, "criteria": []}
    ab = judge.judge(query, a, b, rubric, ground_truth, query_type)
    ba = judge.judge(query, b, a, rubric, ground_truth, query_type)
    s_ab, s_ba = aggregate(ab, rubric.tier_weights), aggregate(ba, rubric.tier_weights)
    return {"verdict": verdict_both_orders(s_ab, s_ba), "gate": False, "score_ab": s_ab, "score_ba": s_ba,
            "criteria": [r.to_dict() for r in ab]}
