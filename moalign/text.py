"""The one text format shared by prepare, sft, train, rubric and evaluate.

Every policy prompt and SFT target is rendered here (:func:`format_prompt`,
:func:`format_target`), in one of two formats chosen by the tokenizer:

- **raw** (a tokenizer without a chat template, e.g. the tiny default's): the prompt is
  ``"Question: {question}\\nSolution:"``, the target ``" {solution}\\nAnswer: \\boxed{N}"`` and
  the SFT loss adds EOS. Byte-identical to the format before chat templates existed (tested).
- **chat** (a tokenizer with a chat template, e.g. SmolLM2-Instruct's): the prompt is the
  template applied to one user turn, ``question + "\\n" + INSTRUCTION``, with the generation
  prompt (``<|im_start|>assistant\\n``); the target is the assistant turn's content
  (``{solution}\\nAnswer: \\boxed{N}``) followed by what the template writes after it, up to and
  including the end-of-turn token, which is the tokenizer's EOS (so generation stops there).
  The template's own system prompt, if any, is kept: the model was tuned with it.

Which one applies is decided once, by ``prepare.model.chat_template`` (``auto``: the model's
template if it has one; ``off``: prepare saves the tokenizer without it), and travels with the
tokenizer that prepare saves to ``data/prepared/model`` and sft to ``models/sft``: every later
stage loads that tokenizer, so sft, rubric, train and evaluate render the same prompts.

A completion is a worked solution whose lines are numbered steps (``"1. ..."``) and whose
last line carries the final answer as ``\\boxed{...}`` (the marker the dynamic-reward-weighting
paper grades). Answers are parsed and graded in :mod:`moalign.grading` (one grader for
reward, rubric, SFT validation and evaluation); this module only renders text and counts steps.

Step counting follows the authors' format reward (``math_format.py`` of the
dynamic-reward-weighting code): a response is step-by-step when it has >= 2 enumerated
lines OR >= 2 ordinal words, each test on its own. Departures, and why:

- enumerators are counted only at the start of a line (``1.``, ``2)``, ``-``, ``*``, ``•``);
  the authors' pattern also matches any ``5.`` or ``a)`` after a space, so a sentence such
  as "the total is 5." counted as a step there;
- "finally" is an ordinal word here as well (the authors' list is first..tenth, next, then):
  it marks a step in the same way, and this module counted it before the fix.
"""

from __future__ import annotations

import re

PROMPT_TEMPLATE = "Question: {question}\nSolution:"
INSTRUCTION = "Solve step by step and put the final answer in \\boxed{}."  # chat format's user turn ends with it
STEP_RE = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+\S")
WORD_STEP_RE = re.compile(
    r"(?i)\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|next|then|finally)\b")


def uses_chat(tok) -> bool:
    """True when prompts for ``tok`` are chat-templated (the tokenizer carries a chat template)."""
    return bool(getattr(tok, "chat_template", None))


def user_turn(question: str) -> str:
    """The chat format's user message: the question, then the answer-format instruction."""
    return f"{question.strip()}\n{INSTRUCTION}"


def format_prompt(question: str, tok=None) -> str:
    """Render the prompt the policy sees for ``question`` (chat format when ``tok`` has a template)."""
    if not uses_chat(tok):
        return PROMPT_TEMPLATE.format(question=question.strip())
    return tok.apply_chat_template([{"role": "user", "content": user_turn(question)}], tokenize=False,
                                   add_generation_prompt=True)


def format_completion(solution: str, answer: str) -> str:
    """Render the raw-format SFT target: the worked ``solution`` then the boxed ``answer``."""
    body = solution.strip()
    return (" " + body + "\n" if body else " ") + f"Answer: \\boxed{{{answer.strip()}}}"


def format_target(question: str, solution: str, answer: str, tok=None) -> str:
    """The text the SFT loss is taken on, after :func:`format_prompt` (EOS not included in raw format).

    Chat format: the assistant turn as the template renders it after the generation prompt -
    the content (the raw target without its leading space) and the end-of-turn text
    (``<|im_end|>\\n`` for SmolLM2); :func:`moalign.sft.encode_rows` cuts it after the EOS token.
    """
    if not uses_chat(tok):
        return format_completion(solution, answer)
    content = format_completion(solution, answer)[1:]
    prompt = format_prompt(question, tok)
    full = tok.apply_chat_template([{"role": "user", "content": user_turn(question)},
                                    {"role": "assistant", "content": content}], tokenize=False)
    if not full.startswith(prompt) or content not in full[len(prompt):]:
        raise ValueError("the tokenizer's chat template does not render the assistant turn after its generation "
                         "prompt, so SFT targets cannot be cut from it. Fix: set prepare.model.chat_template: off")
    return full[len(prompt):]


def enumerated_lines(text: str) -> int:
    """Lines that start with an enumerator (``1.``, ``2)``) or a bullet (``-``, ``*``, ``•``)."""
    return len(STEP_RE.findall(text))


def ordinal_words(text: str) -> int:
    """Occurrences of ordinal / sequencing words (first, second, ..., next, then, finally)."""
    return len(WORD_STEP_RE.findall(text))


def count_steps(text: str) -> int:
    """Step markers: the larger of :func:`enumerated_lines` and :func:`ordinal_words`.

    So ``count_steps(t) >= k`` holds exactly when either count alone reaches ``k`` (the
    authors' "enumerated >= 2 OR ordinals >= 2"); the two kinds are never added up.
    """
    return max(enumerated_lines(text), ordinal_words(text))
