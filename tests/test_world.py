"""The default world's solution styles: shares, the trade-off each style makes, answers always right."""

import collections

import pytest

from moalign.data.arith import STYLES, generate, solve
from moalign.grading import extract_answer
from moalign.rl.rewards import make_reward
from moalign.text import enumerated_lines, format_completion


def test_styles_trade_clarity_and_length_and_all_are_correct():
    clarity = make_reward("clarity")
    lens = {}
    for style in STYLES:
        text, ans = solve("add", 47, 38, style=style)
        comp = format_completion(text, str(ans))
        assert extract_answer(comp) == "85"  # every style's SFT target is right
        lens[style] = len(comp.split())
        assert clarity([comp]) == [1.0 if style != "terse" else 0.0]
    assert lens["terse"] < lens["outline"] < lens["worked"]
    assert enumerated_lines(solve("mul", 47, 6, style="outline")[0]) == 2
    assert solve("two", 47, 38, 50, style="terse") == ("", 35)
    with pytest.raises(ValueError, match="unknown style"):
        solve("add", 1, 2, style="verbose")


def test_style_shares_follow_params_and_default_is_worked_only():
    rows = generate({"en": 2000}, 4, 2, {"add": 1, "mul": 1}, 0, {"worked": 0.5, "outline": 0.25, "terse": 0.25})
    share = collections.Counter(r["style"] for r in rows["train"])
    assert share["worked"] / 2000 == pytest.approx(0.5, abs=0.04)
    assert share["terse"] / 2000 == pytest.approx(0.25, abs=0.04)
    assert {r["style"] for r in generate({"en": 50}, 2, 2, {"add": 1}, 0)["train"]} == {"worked"}
    with pytest.raises(ValueError, match="prepare.generator.styles"):
        generate({"en": 5}, 1, 2, {"add": 1}, 0, {"chatty": 1.0})
