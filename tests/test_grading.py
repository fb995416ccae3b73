"""The one grader: last-boxed extraction with brace matching, number normalisation, import graph."""

import subprocess
import sys
from pathlib import Path

import pytest

from moalign.grading import answers_match, extract_answer, grade, normalize_number


@pytest.mark.parametrize("text, want", [
    ("so \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces survive
    ("Answer: \\boxed{2^{10}}.", "2^{10}"),
    ("\\boxed{\\sqrt{\\frac{a}{b}}} end", "\\sqrt{\\frac{a}{b}}"),
    ("first \\boxed{1}, then \\boxed{22}, finally \\boxed{ 333 }", "333"),  # the last box wins
    ("\\boxed{\\frac{1}{2}} or rather \\boxed{3}", "3"),
    ("\\fbox{7}", "7"),
    ("\\boxed 5$ is it", "5"),  # verl's space form
    ("\\boxed {8}", "8"),
    ("\\boxed{3} and then \\boxed{}", None),  # an empty last box is no answer
    ("\\boxed{3} and then \\boxed{4", None),  # truncated inside the last box
    ("no answer here", None),
])
def test_extract_answer_last_box_brace_matched(text, want):
    assert extract_answer(text) == want


def test_normalize_and_match():
    assert normalize_number("1,000") == "1000" and normalize_number("3.50") == "3.5" and normalize_number("007") == "7"
    assert normalize_number("x+1") == "x+1" and normalize_number(None) is None
    assert answers_match("1,000", "1000") and not answers_match("1001", "1000") and not answers_match(None, "1")
    assert answers_match("\\frac{1}{2}", "0.5")  # math-verify path
    assert grade("1. half\n2. so \\boxed{\\frac{1}{2}}", "0.5")  # nested braces graded, not cut at the first }
    assert not grade("\\boxed{\\frac{1}{2}} no wait \\boxed{3}", "0.5")  # the last box is the answer


def test_grading_is_low_level_and_rubric_does_not_import_rl():
    code = ("import sys, moalign.grading, moalign.rubric.pvr, moalign.rubric.features; "
            "print(sorted(m for m in sys.modules if m.startswith('moalign.rl')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "[]"  # rubric -> grading, never rubric -> rl (the old rl -> rubric -> rl circle)
    src = open(sys.modules["moalign.grading"].__file__).read()
    assert "from moalign" not in src and "import moalign" not in src
