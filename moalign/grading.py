"""The one answer grader: reward, rubric checks, SFT validation and evaluation all import it.

A low-level module (it imports nothing from ``moalign``), so ``rl``, ``rubric``, ``sft`` and
``evaluate`` can all depend on it without importing each other.

- :func:`last_boxed` / :func:`extract_answer`: the content of the LAST ``\\boxed{...}`` (or
  ``\\fbox{...}``) with brace matching, so nested braces survive (``\\boxed{\\frac{1}{2}}`` ->
  ``\\frac{1}{2}``). Same rule as the authors' ``last_boxed_only_string`` + ``remove_boxed``
  (verl's MATH scorer, used by the dynamic-reward-weighting code): the last marker decides,
  and an unclosed last marker (a truncated generation) means no answer.
- :func:`normalize_number`: canonical numeric string (``"1,000" -> "1000"``, ``"3.50" -> "3.5"``).
- :func:`answers_match`: numbers compare after normalisation; otherwise math-verify decides
  (``\\frac{1}{2}`` vs ``0.5``); any parser error counts as a wrong answer.

Departures from the authors, and why:

- an empty last box (``\\boxed{}``) or a blank one counts as no answer (None) instead of the
  empty string, so "no answer" has one representation for every caller;
- ``\\boxed 5`` (the space form verl also accepts) is read up to the end of the line or a ``$``;
- the authors grade with verl's MATH string normaliser; we use the number fast path, then
  math-verify, which accepts equivalent LaTeX forms the string normaliser would reject.
"""

from __future__ import annotations

import re
import threading

_MARKER_RE = re.compile(r"\\(?:boxed|fbox)(?=[\s{])")


def last_boxed(text: str) -> str | None:
    """Raw content of the last ``\\boxed{...}``/``\\fbox{...}`` (braces matched); None when absent or unclosed."""
    marks = list(_MARKER_RE.finditer(text))
    if not marks:
        return None
    i = marks[-1].end()
    while i < len(text) and text[i] in " \t":
        i += 1
    if i == len(text) or text[i] == "\n":
        return None
    if text[i] != "{":  # space form: "\boxed 5"
        return re.split(r"[\n$]", text[i:], maxsplit=1)[0]
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None  # unbalanced: the generation stopped inside the box


def extract_answer(text: str) -> str | None:
    """The stripped content of the last ``\\boxed{...}``; None when absent, unclosed or empty."""
    got = last_boxed(str(text))
    got = got.strip() if got is not None else None
    return got or None


def normalize_number(s: str | None) -> str | None:
    """Canonical string of a numeric answer (``"007" -> "7"``, ``"3.50" -> "3.5"``); other text as is."""
    if s is None:
        return None
    s = s.replace(",", "").replace(" ", "").strip()
    try:
        v = float(s)
    except ValueError:
        return s
    if v != v or v in (float("inf"), float("-inf")):
        return s
    return str(int(v)) if v == int(v) else repr(v)


def is_number(s: str | None) -> bool:
    """True when ``s`` parses as a float."""
    try:
        float(s)  # type: ignore[arg-type]
        return True
    except (TypeError, ValueError):
        return False


def answers_match(pred: str | None, ref: str) -> bool:
    """True when the extracted answer ``pred`` equals the reference ``ref`` (numbers, else math-verify)."""
    if pred is None:
        return False
    a, b = normalize_number(pred), normalize_number(str(ref))
    if a == b:
        return True
    if is_number(a) and is_number(b):
        return False
    main = threading.current_thread() is threading.main_thread()
    try:
        from math_verify import parse, verify

        gold = parse(f"${ref}$", parsing_timeout=5 if main else None)
        got = parse(f"${pred}$", parsing_timeout=5 if main else None)
        return bool(verify(gold, got, timeout_seconds=5 if main else None))
    except Exception:  # noqa: BLE001 - an unparsable answer is a wrong answer
        return False


def grade(completion: str, ref: str) -> bool:
    """True when the last boxed answer of ``completion`` matches ``ref`` (the accuracy reward's rule)."""
    return answers_match(extract_answer(completion), ref)
