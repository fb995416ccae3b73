"""The one text format shared by prepare, sft, train, rubric and evaluate.

A prompt is ``"Question: {question}\\nSolution:"``; a completion is a worked solution
whose lines are numbered steps (``"1. ..."``) and whose last line carries the final
answer as ``\\boxed{...}`` (the marker the dynamic-reward-weighting paper grades).
Answers are parsed and graded in :mod:`moalign.grading` (one grader for reward, rubric,
SFT validation and evaluation); this module only renders text and counts steps.

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
STEP_RE = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+\S")
WORD_STEP_RE = re.compile(
    r"(?i)\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|next|then|finally)\b")


def format_prompt(question: str) -> str:
    """Render the prompt the policy sees for ``question``."""
    return PROMPT_TEMPLATE.format(question=question.strip())


def format_completion(solution: str, answer: str) -> str:
    """Render the SFT target: the worked ``solution`` then the boxed ``answer``."""
    body = solution.strip()
    return (" " + body + "\n" if body else " ") + f"Answer: \\boxed{{{answer.strip()}}}"


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
