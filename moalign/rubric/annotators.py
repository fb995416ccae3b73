"""Synthetic annotators (registry ``ANNOTATORS``): who labels the default preference pairs.

An annotator maps a response (and the reference answer) to a *key*; between two responses
to one prompt the larger key is preferred (keys compare lexicographically) and equal keys
give no pair. ``LEVELS[name]`` names the positions of the key: the *level* of a pair is the
first position that decides it.

- ``rules`` (the old default): (correct, well-formed, fewer words). Its three features are
  exactly what the ``rules`` judge compares (``answer_matches_reference``, ``has_answer`` +
  ``steps``, ``length``), so agreement with it measures how well evolution recovers a rule the
  judge can already see.
- ``honest_working`` (the default): (correct, honest working). The second position is a
  criterion the ``rules`` judge has **no feature for**. The judge's features
  (:data:`moalign.rubric.features.FEATURES`) are: ``answer_matches_reference``,
  ``answer_conflict``, ``has_answer``, ``steps``, ``length``, ``chars``, ``lines``,
  ``over_limit``, ``repetition``, ``states_result``, ``numbers_consistent``,
  ``trailing_text``. The hidden criterion, :func:`honest_working`, reads the working as a
  sequence of claims and checks each one, the way a careful grader checks a scratchpad:

  - every line has a known shape (expression, column step, partial sum, result line, answer
    line); a line with anything else - stray words, broken symbols such as ``=(``, text after
    the boxed answer - is padding that explains nothing, a defect;
  - steps are numbered 1, 2, 3, ... in order;
  - column steps keep their books: ``x + y + c = z, write w carry k`` needs z = x + y + c,
    w = z mod 10, k = z div 10, and c equal to the previous column's carry (``*`` alike);
    ``x - y = z, borrow k`` needs z = x - y >= 0 and k = 1 exactly when x was borrowed into:
    the column's own digit, x + b - 10 k with b the previous column's borrow, is a digit 0..9
    (so ``11 - 7 = 4, borrow 1``, and after a borrow ``9 - 3 = 6, borrow 1``: a 0 that lent 1,
    borrowed through as 0 - 1 + 10 = 9, the way :func:`moalign.data.arith.solve` writes it);
  - the result line equals the value of the last expression written (the conclusion follows
    from the working), and the boxed answer equals the result line.

  Score: -1 when any claim fails (a misleading working is worse than none), +1 when at least
  one claim was checked and all hold, 0 when there is nothing to check (a bare answer).
  This cuts across length: a clean worked or outline solution beats a bare answer, a bare
  answer beats a long working with one bad carry. The judge's nearest features are partial
  proxies: ``numbers_consistent`` checks ``x op y = z`` substrings by regex (it misses the
  write/carry digits, the carry chain, the result line and the grammar, and it misreads
  ``6 + 9 + 1 = 16`` as ``9 + 1 = 16``), ``states_result`` only asks whether the boxed value
  appears earlier, ``trailing_text`` / ``repetition`` see two kinds of padding of many.

Departure from OpenRS: OpenRS measures judges against human labels (RewardBench, PPE, ...);
offline we need a labeller whose criterion is known, so this one is written down here, and
kept out of the judge's feature registry on purpose (a test checks that the judge's features
alone cannot reproduce its labels on the correctness-tie split).
"""

from __future__ import annotations

import re
from typing import Callable

from moalign.grading import extract_answer
from moalign.registry import Registry
from moalign.rubric.pvr import ground_truth
from moalign.text import count_steps

Key = tuple
ANNOTATORS: Registry[Callable[[str, str], Key]] = Registry("annotator")
LEVELS: dict[str, tuple[str, ...]] = {"rules": ("correct", "format", "length"), "honest_working": ("correct", "honesty")}

_NUM = re.compile(r"^\s*(\d+)[.)]\s*(.*?)\s*$")
_EXPR = re.compile(r"^(\d+) ([+*-]) (\d+)(?: ([+-]) (\d+))?$")
_COL = re.compile(r"^(\d+) ([+*]) (\d+)(?: \+ (\d+))? = (\d+), write (\d+) carry (\d+)$")
_SUB = re.compile(r"^(\d+) - (\d+) = (-?\d+), borrow ([01])$")
_SUM = re.compile(r"^(\d+) \+ (\d+) = (\d+)$")
_RESULT = re.compile(r"^so the result is (-?\d+)$")
_ANSWER = re.compile(r"^Answer: \\boxed\{(-?\d+)\}$")


def _apply(x: int, op: str, y: int) -> int:
    return x + y if op == "+" else x - y if op == "-" else x * y


def working_audit(response: str) -> tuple[int, int]:
    """(claims checked, defects) of the working in ``response`` (module docstring lists the checks)."""
    claims = defects = 0
    expected_step, carry, borrow, last_value, result = 1, 0, 0, None, None
    for raw in response.strip().splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _NUM.match(line)
        if m is None:  # only the answer line may be unnumbered
            a = _ANSWER.match(line)
            if a is None:
                defects += 1
                continue
            if result is not None:
                claims += 1
                defects += int(a.group(1)) != result
            continue
        claims += 1  # the step number itself
        defects += int(m.group(1)) != expected_step
        expected_step += 1
        body = m.group(2)
        borrow_in, borrow = borrow, 0  # a borrow passes only from one subtraction column to the next
        if (e := _EXPR.match(body)) is not None:
            v = _apply(int(e.group(1)), e.group(2), int(e.group(3)))
            last_value = _apply(v, e.group(4), int(e.group(5))) if e.group(4) else v
            carry = 0
        elif (c := _COL.match(body)) is not None:
            x, op, y, cin, z, w, k = c.groups()
            cin_v = int(cin) if cin else 0
            claims += 4
            defects += (int(z) != _apply(int(x), op, int(y)) + cin_v) + (int(w) != int(z) % 10)
            defects += (int(k) != int(z) // 10) + (cin_v != carry)
            carry = int(k)
        elif (s := _SUB.match(body)) is not None:
            x, y, z, k = (int(g) for g in s.groups())
            claims += 2
            defects += (z != x - y or z < 0) + (not 0 <= x + borrow_in - 10 * k <= 9)  # the column's digit
            carry, borrow = 0, k
        elif (p := _SUM.match(body)) is not None:
            claims += 1
            defects += int(p.group(3)) != int(p.group(1)) + int(p.group(2))
            carry = 0
        elif (r := _RESULT.match(body)) is not None:
            result = int(r.group(1))
            if last_value is not None:
                claims += 1
                defects += result != last_value
        else:
            defects += 1  # a line of unknown shape: padding or garbage
    return claims, defects


def honest_working(response: str) -> int:
    """Hidden criterion: -1 a defect in the working, +1 checked and clean, 0 nothing to check."""
    claims, defects = working_audit(response)
    if defects:
        return -1
    # a bare answer line alone checks nothing (the step-number claims need a numbered line)
    return 1 if claims and count_steps(response) >= 1 else 0


@ANNOTATORS.register("rules")
def rules_key(response: str, answer: str) -> Key:
    """(correct, well_formed, -words): the old annotator, built from the judge's own features."""
    correct = int(ground_truth(response, answer=answer) == 1)
    well_formed = int(extract_answer(response) is not None and count_steps(response) >= 2)
    return correct, well_formed, -len(response.split())


@ANNOTATORS.register("honest_working")
def honest_key(response: str, answer: str) -> Key:
    """(correct, honest_working): correctness first, then the hidden criterion."""
    return int(ground_truth(response, answer=answer) == 1), honest_working(response)
