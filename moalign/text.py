"""The one text format shared by prepare, sft, train, rubric and evaluate.

A prompt is ``"Question: {question}\\nSolution:"``; a completion is a worked solution
whose lines are numbered steps (``"1. ..."``) and whose last line carries the final
answer as ``\\boxed{...}`` (the marker the dynamic-reward-weighting paper grades).
Reward functions, the rubric judge and evaluation all parse answers with
:func:`extract_answer`, so reward and evaluation share one grader.
"""

from __future__ import annotations

import re

PROMPT_TEMPLATE = "Question: {question}\nSolution:"
BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")
STEP_RE = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+\S")
WORD_STEP_RE = re.compile(r"(?i)\b(first|second|third|next|then|finally)\b")
NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


def format_prompt(question: str) -> str:
    """Render the prompt the policy sees for ``question``."""
    return PROMPT_TEMPLATE.format(question=question.strip())


def format_completion(solution: str, answer: str) -> str:
    """Render the SFT target: the worked ``solution`` then the boxed ``answer``."""
    body = solution.strip()
    return (" " + body + "\n" if body else " ") + f"Answer: \\boxed{{{answer.strip()}}}"


def extract_answer(text: str) -> str | None:
    """The content of the last non-empty ``\\boxed{...}``, stripped; None when absent."""
    found = [m.strip() for m in BOXED_RE.findall(text) if m.strip()]
    return found[-1] if found else None


def count_steps(text: str) -> int:
    """Number of step markers: enumerated/bulleted lines, else ordinal words."""
    n = len(STEP_RE.findall(text))
    return n if n else len(WORD_STEP_RE.findall(text))


def normalize_number(s: str | None) -> str | None:
    """Canonical string of a numeric answer (``"007" -> "7"``, ``"3.50" -> "3.5"``)."""
    if s is None:
        return None
    s = s.replace(",", "").replace(" ", "").strip()
    try:
        v = float(s)
    except ValueError:
        return s
    return str(int(v)) if v == int(v) else repr(v)
