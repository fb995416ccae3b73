"""LLM judge backends: ``openai`` (any OpenAI-compatible endpoint) and ``hf`` (local transformers).

One prompt and one parser serve both. The prompt follows OpenRS's pairwise template in
structure (intent analysis first, then query-specific criteria written from the meta-rubric
and conditioned on how A and B differ, then a criterion-by-criterion comparison, with the
position- and length-bias warnings) but is English and carries the meta-rubric as YAML.
The reply is JSON ``{"question_analysis": {...}, "rubric_compares": [{name, tier, chosen,
score, reason}]}``; ``criteria`` is accepted for ``rubric_compares``, ``S`` for ``tie``.

Robustness: code fences and prose around the JSON are stripped (the first ``{...}`` or
``[...]`` is parsed); the reply's schema is validated strictly (:func:`parse_reply`); an
unusable reply or a network error is retried with exponential
backoff (``backoff * 2**attempt`` seconds, capped at ``max_backoff``; ``retries`` extra
attempts), then :class:`JudgeError` says what failed. The API key is passed to the client
only: it is never logged, stored on the judge, or put in an error message.

Environment of ``openai``: ``MOALIGN_JUDGE_BASE_URL`` (e.g. ``http://localhost:8000/v1``
for vLLM), ``MOALIGN_JUDGE_MODEL``, ``MOALIGN_JUDGE_API_KEY`` (or ``OPENAI_API_KEY``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

from moalign.rubric.aggregate import CriterionResult
from moalign.rubric.judges import JUDGES, TIER_ORDER, JudgeError
from moalign.rubric.schema import MetaRubric, dump_meta_rubric

log = logging.getLogger("moalign.rubric")

PROMPT = """You are an impartial judge. Follow this meta-rubric (YAML: principles, weight tiers, rules for
writing criteria, candidate criteria and domain layers):
{rubric}
Procedure:
1. Analyse the question's intent (primary need, implicit constraints) BEFORE reading the responses.
2. Write {lo}-{hi} criteria specific to this question, conditioned on how the two responses differ.
   Each criterion must be measurable, and together they must be necessary and sufficient.
   Tier each one: fatal (a veto-level error), core, important or highlight.
3. Compare the responses criterion by criterion. chosen is "A", "B" or "tie"; score is an
   integer in -2..2, positive when A is better, 0 when there is no clear difference.
Position does not matter; a longer response is not better for being longer.

Question:
{query}
{gt}
Response A:
{a}

Response B:
{b}

Reply with JSON only:
{{"question_analysis": {{"primary_need": "...", "constraints": "..."}},
 "rubric_compares": [{{"name": "...", "tier": "fatal|core|important|highlight", "chosen": "A|B|tie",
   "score": 0, "reason": "..."}}]}}"""


def build_prompt(query: str, a: str, b: str, rubric: MetaRubric, ground_truth: str | None = None) -> str:
    """The judge prompt for the ordered pair (A, B)."""
    e = rubric.enforcement
    gt = f"Reference answer (verified): {ground_truth}\n" if ground_truth not in (None, "") else ""
    return PROMPT.format(rubric=dump_meta_rubric(rubric), lo=e.min_criteria, hi=e.max_criteria,
                         query=query, gt=gt, a=a, b=b)


def extract_json(text: str) -> Any:
    """Parse the first JSON object or array in ``text`` (code fences and prose stripped)."""
    t = re.sub(r"```(?:json)?", "", text)
    starts = [i for i in (t.find("{"), t.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON object in the reply")
    start = min(starts)
    obj, _ = json.JSONDecoder().raw_decode(t[start:])
    return obj


_TOP_KEYS = {"question_analysis", "rubric_compares", "criteria"}
_ITEM_KEYS = {"name", "rubric_name", "tier", "type", "chosen", "score", "reason"}
_CHOSEN = {"a": "A", "b": "B", "tie": "tie", "s": "tie"}


def _one_of(it: dict[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` present in ``it``; ValueError naming them when none is."""
    for k in keys:
        if k in it:
            return it[k]
    raise ValueError(f"a criterion has no {' / '.join(keys)} field")


def _score(v: Any) -> int:
    """A criterion's score: an integer in -2..2 (``2.0`` and ``"2"`` are accepted, ``1.5`` and ``99`` are not)."""
    if isinstance(v, bool):
        raise ValueError(f"score {v!r} is not a number")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"score {v!r} is not a number") from None
    if f != int(f) or not -2 <= f <= 2:
        raise ValueError(f"score {v!r} is not an integer in -2..2")
    return int(f)


def parse_reply(text: str) -> list[CriterionResult]:
    """Judge reply -> criterion results; ValueError when it cannot be used.

    The schema is strict: unknown or missing fields, a ``chosen`` other than A/B/tie (``S``
    = tie; case-insensitive), a score that is not an integer in -2..2, or an unknown tier
    make the reply unusable (it is then retried like garbage text).
    """
    data = extract_json(text)
    if isinstance(data, dict):
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise ValueError(f"reply has unknown field(s) {unknown}")
        if "question_analysis" in data and not isinstance(data["question_analysis"], dict):
            raise ValueError("question_analysis is not an object")
        items = data.get("rubric_compares", data.get("criteria"))
    else:
        items = data
    if not isinstance(items, list) or not items:
        raise ValueError("reply has no rubric_compares list")
    out = []
    for it in items:
        if not isinstance(it, dict):
            raise ValueError("a criterion is not an object")
        unknown = sorted(set(it) - _ITEM_KEYS)
        if unknown:
            raise ValueError(f"a criterion has unknown field(s) {unknown}")
        tier = str(_one_of(it, "tier", "type")).strip().lower()
        if tier not in TIER_ORDER:
            raise ValueError(f"unknown tier {tier!r}")
        raw_chosen = _one_of(it, "chosen")
        chosen = _CHOSEN.get(str(raw_chosen).strip().lower()) if isinstance(raw_chosen, str) else None
        if chosen is None:
            raise ValueError(f"chosen {raw_chosen!r} is not one of A, B, tie")
        score = _score(_one_of(it, "score"))
        if chosen == "tie":
            score = 0  # a tie carries no magnitude, whatever the judge wrote
        name = str(_one_of(it, "name", "rubric_name"))
        out.append(CriterionResult(name, tier, chosen, score, str(it.get("reason", ""))[:500]))
    return out


class LLMJudge:
    """Shared prompt / retry / parse loop; subclasses implement :meth:`complete`."""

    backend = "llm"

    def __init__(self, retries: int = 3, backoff: float = 1.0, max_backoff: float = 30.0) -> None:
        if retries < 0 or backoff < 0:
            raise JudgeError("judge retries and backoff must be >= 0")
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.calls = 0

    def complete(self, prompt: str) -> str:  # pragma: no cover - each backend overrides
        raise NotImplementedError

    def where(self) -> str:
        return self.backend

    def ask(self, prompt: str, parse: Any = parse_reply) -> Any:
        """Send ``prompt``, parse the reply with ``parse``; retry with backoff; JudgeError when exhausted."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                self.calls += 1
                return parse(self.complete(prompt))
            except JudgeError:
                raise
            except Exception as err:  # noqa: BLE001 - network errors and garbage replies are retried
                last = err
                log.warning("%s judge: attempt %d/%d failed: %s", self.backend, attempt + 1, self.retries + 1,
                            type(err).__name__)
                if attempt < self.retries:
                    time.sleep(min(self.backoff * 2**attempt, self.max_backoff))
        raise JudgeError(f"{self.where()}: judge failed after {self.retries + 1} attempts; last error: "
                         f"{type(last).__name__}: {str(last)[:300]}. Fix: check the endpoint / model, "
                         "or use rubric.judge: rules")

    def judge(self, query: str, a: str, b: str, rubric: MetaRubric,
              ground_truth: str | None = None) -> list[CriterionResult]:
        return self.ask(build_prompt(query, a, b, rubric, ground_truth))


@JUDGES.register("openai")
class OpenAIJudge(LLMJudge):
    """Any OpenAI-compatible chat endpoint (vLLM, Ollama, TGI, hosted APIs)."""

    backend = "openai"

    def __init__(self, model: str | None = None, base_url: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 1.0, max_backoff: float = 30.0, temperature: float = 0.0,
                 **_: Any) -> None:
        super().__init__(retries, backoff, max_backoff)
        self.model = model or os.environ.get("MOALIGN_JUDGE_MODEL")
        self.base_url = base_url or os.environ.get("MOALIGN_JUDGE_BASE_URL")
        if not self.model or not self.base_url:
            raise JudgeError("the openai judge needs MOALIGN_JUDGE_BASE_URL and MOALIGN_JUDGE_MODEL "
                             "(e.g. http://localhost:8000/v1 for vLLM). Fix: export both, or use rubric.judge: rules")
        from openai import OpenAI

        key = os.environ.get("MOALIGN_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.temperature = temperature
        self._client = OpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=0)
        http = type(getattr(self._client, "_client", None)).__module__.split(".")[0]
        for quiet in {"openai", "httpx", "httpx2", "httpcore", http}:  # no per-request INFO lines
            logging.getLogger(quiet).setLevel(logging.WARNING)

    def where(self) -> str:
        return f"openai judge ({self.model} at {self.base_url})"

    def __repr__(self) -> str:  # no key in reprs
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r})"

    def complete(self, prompt: str) -> str:
        r = self._client.chat.completions.create(model=self.model, temperature=self.temperature,
                                                 messages=[{"role": "user", "content": prompt}])
        return r.choices[0].message.content or ""


@JUDGES.register("hf")
class HFJudge(LLMJudge):
    """A local chat model via transformers (chat template when the tokenizer has one); greedy decoding.

    ``model`` is a folder, a hub name or ``packaged:<name>`` (moalign/packaged.py, e.g.
    ``packaged:smollm2-135m-instruct``). The chat template is applied with ``return_dict=True``: in
    transformers 5 ``apply_chat_template(..., return_tensors="pt")`` returns a BatchEncoding, not a
    tensor, so ``input_ids`` and ``attention_mask`` are passed to ``generate`` by name. A reply that
    does not parse is retried like any other (``retries``).

    Fallback (``choice_fallback``, on by default): small local models rarely write the JSON (SmolLM2-135M
    echoes the template, e.g. ``"chosen": "A|B|tie"``). When every attempt fails, the verdict is read
    from the model instead of raising: the reply is prefilled with ``CHOICE_PREFIX`` (one ``overall``
    criterion of tier ``core``) and the next token is the likeliest of ``A`` / ``B`` / ``tie``
    (score +1 / -1 / 0). ``fallbacks`` counts them; with ``choice_fallback=False`` the failure is a
    :class:`JudgeError` as for the other backends.
    """

    CHOICE_PREFIX = '{"rubric_compares": [{"name": "overall", "tier": "core", "chosen": "'


    backend = "hf"

    def __init__(self, model: str | None = None, retries: int = 1, max_new_tokens: int = 768,
                 device: str | None = None, choice_fallback: bool = True, **_: Any) -> None:
        super().__init__(retries, 0.0, 0.0)
        self.choice_fallback, self.fallbacks = choice_fallback, 0
        if not model:
            raise JudgeError("the hf judge needs rubric.judge_model (a local chat model name or path)")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from moalign.packaged import resolve

        try:
            path = resolve(model)
            self.tok = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise JudgeError(f"rubric.judge_model = {model!r} could not be loaded ({type(e).__name__}: "
                             f"{str(e)[:200]}). Fix: give a local path or a cached hub name") from None
        if device:
            self.model.to(device)
        self.model.eval()
        self.name, self.max_new_tokens = model, max_new_tokens

    def where(self) -> str:
        return f"hf judge ({self.name})"

    def encode(self, prompt: str, prefill: str = "") -> dict:
        """``input_ids`` and ``attention_mask`` (1, P) of ``prompt`` as one user turn (or raw text),
        followed by ``prefill`` (the start of the reply)."""
        if getattr(self.tok, "chat_template", None):
            enc = self.tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                               return_dict=True, return_tensors="pt")
        else:
            enc = self.tok(prompt, return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if prefill:
            import torch

            extra = self.tok(prefill, add_special_tokens=False, return_tensors="pt")["input_ids"]
            ids, mask = torch.cat([ids, extra], 1), torch.cat([mask, torch.ones_like(extra)], 1)
        return {"input_ids": ids.to(self.model.device), "attention_mask": mask.to(self.model.device)}

    def choose(self, prompt: str) -> CriterionResult:
        """The fallback verdict: the likeliest of A / B / tie right after :attr:`CHOICE_PREFIX`."""
        import torch

        options = {"A": 1, "B": -1, "tie": 0}
        first = {o: self.tok(o, add_special_tokens=False)["input_ids"][0] for o in options}
        with torch.no_grad():
            logits = self.model(**self.encode(prompt, self.CHOICE_PREFIX)).logits[0, -1].float()
        logp = torch.log_softmax(logits[list(first.values())], -1)
        pick = list(options)[int(logp.argmax())]
        probs = ", ".join(f"{o} {p:.2f}" for o, p in zip(options, logp.exp().tolist()))
        return CriterionResult("overall", "core", pick, options[pick],
                               f"hf judge fallback: next-token choice after a fixed JSON prefix ({probs})")

    def judge(self, query: str, a: str, b: str, rubric: MetaRubric,
              ground_truth: str | None = None) -> list[CriterionResult]:
        prompt = build_prompt(query, a, b, rubric, ground_truth)
        try:
            return self.ask(prompt)
        except JudgeError as e:
            if not self.choice_fallback:
                raise
            self.fallbacks += 1
            if self.fallbacks == 1 or self.fallbacks % 100 == 0:
                why = str(e).removeprefix(f"{self.where()}: ").split(". Fix:")[0]  # the cause, once, whole
                log.warning("%s: no usable reply (%s); verdict from the A/B/tie choice fallback (%d so far)",
                            self.where(), why, self.fallbacks)
            return [self.choose(prompt)]

    def complete(self, prompt: str) -> str:
        import torch

        enc = self.encode(prompt)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        return self.tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
