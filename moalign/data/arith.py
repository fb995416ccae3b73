"""Seeded generator of arithmetic word problems in several surface "languages".

Each row has ``question``, ``answer`` (the reference integer as a string), ``domain``
(the surface language), ``style`` and ``solution`` (the SFT target text). Domain
sizes are long-tailed by construction (the
defaults are 10000/2000/400/100 train rows, a 100x imbalance), which is what the
balance stage is about. Problems are unique across splits: a problem key
(operation and operands) is drawn once and assigned to exactly one split.

Response styles (the RL trade-off; ``prepare.generator.styles`` sets their shares in SFT data).
The default world gives the paper's three objectives something to trade, so that reward
weighting has room to act (issue: "objectives in real tension"):

- ``worked``: the expression, then digit-by-digit column arithmetic with carries/borrows, one
  numbered line each (~40-90 tokens). The scratchpad makes the answer reliable for a small
  model: accuracy high, clarity 1 (>= 2 numbered steps), conciseness low.
- ``outline``: two numbered lines, the expression and the result, no column work (~15-25
  tokens). Clarity 1 at a small length cost, but the model must compute the result in one go,
  so accuracy is low.
- ``terse``: no steps, only ``Answer: \\boxed{..}`` (~8-12 tokens). Shortest, clarity 0,
  accuracy as low as ``outline``.

Domains (``prepare.generator.numerals``, default ``words``). Every domain shares the core skill
(digits, column arithmetic, ``\\boxed{N}``: graders and RL rewards work unchanged everywhere) but
``es``/``fr``/``de`` questions write their operands in the language's own number words
(:mod:`moalign.data.numerals`: Spanish "cuarenta y dos", French vigesimal "quatre-vingt-dix-neuf",
German units-first "zweiundvierzig"), so the first solution line (the expression in digits), and
any terse answer, needs a reading only that domain's rows teach; ``en`` keeps digits and is
bit-identical to ``numerals: digits`` for a given seed (spelling draws no random numbers).
Departure from the earlier world (``numerals: digits``, all domains with digits), and why: there
the four languages differed only in template words, so what ``en`` taught transferred almost fully
and the 100x long tail did not hurt the smallest domain; the balance question ("Upsample or
Upweight?") had nothing to bite on. Number words keep the 100x tail meaningful: a domain with 100
rows sees each of its number words only a few times.

So conciseness pulls toward terse/outline, accuracy toward worked, clarity away from terse;
length is a choice the policy makes at its first line, not a by-product of correctness. No
style dominates another on all three objectives, so the fixed presets end at different points
and the front has width. (Earlier defaults had worked solutions plus 15% one-line answers;
clarity then saturated after SFT and conciseness hardly moved.)
"""

from __future__ import annotations

import random
from typing import Iterable

from moalign.data.numerals import spell

# surface templates per domain: {a} {b} {c} are operands; one template per operation
TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "add": "Tom has {a} apples and buys {b} more. How many apples does he have?",
        "sub": "Tom has {a} apples and gives away {b}. How many apples are left?",
        "mul": "There are {a} boxes with {b} pens each. How many pens are there?",
        "two": "Tom has {a} apples, buys {b} more, then gives away {c}. How many are left?",
    },
    "es": {
        "add": "Ana tiene {a} peras y compra {b} mas. Cuantas peras tiene?",
        "sub": "Ana tiene {a} peras y regala {b}. Cuantas peras quedan?",
        "mul": "Hay {a} cajas con {b} lapices cada una. Cuantos lapices hay?",
        "two": "Ana tiene {a} peras, compra {b} mas y regala {c}. Cuantas quedan?",
    },
    "fr": {
        "add": "Paul a {a} billes et en gagne {b}. Combien de billes a-t-il?",
        "sub": "Paul a {a} billes et en perd {b}. Combien lui en reste-t-il?",
        "mul": "Il y a {a} sacs de {b} billes. Combien de billes en tout?",
        "two": "Paul a {a} billes, en gagne {b} puis en perd {c}. Combien en reste-t-il?",
    },
    "de": {
        "add": "Lena hat {a} Kekse und backt {b} dazu. Wie viele Kekse hat sie?",
        "sub": "Lena hat {a} Kekse und isst {b}. Wie viele Kekse bleiben?",
        "mul": "Es gibt {a} Dosen mit je {b} Keksen. Wie viele Kekse sind es?",
        "two": "Lena hat {a} Kekse, backt {b} dazu und isst {c}. Wie viele bleiben?",
    },
    "sym": {
        "add": "{a} + {b} = ?",
        "sub": "{a} - {b} = ?",
        "mul": "{a} * {b} = ?",
        "two": "{a} + {b} - {c} = ?",
    },
}

OPS = ("add", "sub", "mul", "two")


def _add_steps(a: int, b: int) -> tuple[list[str], int]:
    """Column addition, one numbered line per digit, carries written out."""
    steps, carry, digits = [], 0, []
    da, db = str(a)[::-1], str(b)[::-1]
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        c_txt = f" + {carry}" if carry else ""
        steps.append(f"{x} + {y}{c_txt} = {s}, write {s % 10} carry {s // 10}")
        digits.append(s % 10)
        carry = s // 10
    if carry:
        digits.append(carry)
    return steps, a + b


def _sub_steps(a: int, b: int) -> tuple[list[str], int]:
    """Column subtraction (a >= b), borrows written out."""
    steps, borrow = [], 0
    da, db = str(a)[::-1], str(b)[::-1]
    for i in range(len(da)):
        x = int(da[i]) - borrow
        y = int(db[i]) if i < len(db) else 0
        if x < y:
            steps.append(f"{x + 10} - {y} = {x + 10 - y}, borrow 1")
            borrow = 1
        else:
            steps.append(f"{x} - {y} = {x - y}, borrow 0")
            borrow = 0
    return steps, a - b


def _mul_steps(a: int, b: int) -> tuple[list[str], int]:
    """Multi-digit times one-digit, carries written out."""
    steps, carry = [], 0
    for ch in str(a)[::-1]:
        p = int(ch) * b + carry
        c_txt = f" + {carry}" if carry else ""
        steps.append(f"{ch} * {b}{c_txt} = {p}, write {p % 10} carry {p // 10}")
        carry = p // 10
    return steps, a * b


STYLES = ("worked", "outline", "terse")
NUMERALS = ("words", "digits")


def solve(op: str, a: int, b: int, c: int = 0, style: str = "worked") -> tuple[str, int]:
    """Solution text in ``style`` (module docstring) and the answer of one problem."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; valid: {', '.join(STYLES)}")
    if op == "add":
        body, ans = _add_steps(a, b)
        head = [f"{a} + {b}"]
    elif op == "sub":
        body, ans = _sub_steps(a, b)
        head = [f"{a} - {b}"]
    elif op == "mul":
        body, ans = _mul_steps(a, b)
        head = [f"{a} * {b}"]
    elif op == "two":
        s1, mid = _add_steps(a, b)
        s2, ans = _sub_steps(mid, c)
        body = [f"{a} + {b}"] + s1 + [f"{a} + {b} = {mid}", f"{mid} - {c}"] + s2
        head = []
    else:
        raise ValueError(f"unknown operation {op!r}")
    if style == "terse":
        return "", ans
    if style == "outline":
        expr = f"{a} + {b} - {c}" if op == "two" else f"{a} {dict(add='+', sub='-', mul='*')[op]} {b}"
        return f"1. {expr}\n2. so the result is {ans}", ans
    lines = head + body + ([f"so the result is {ans}"])
    return "\n".join(f"{i + 1}. {t}" for i, t in enumerate(lines)), ans


def _draw(op: str, rng: random.Random, max_digits: int) -> tuple[int, int, int]:
    hi = 10**max_digits - 1
    if op == "add":
        return rng.randint(10, hi), rng.randint(10, hi), 0
    if op == "sub":
        a, b = rng.randint(10, hi), rng.randint(10, hi)
        return max(a, b), min(a, b), 0
    if op == "mul":
        return rng.randint(10, hi), rng.randint(2, 9), 0
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return a, b, rng.randint(1, a + b)


def generate(
    sizes: dict[str, int],
    eval_rows: int,
    max_digits: int,
    op_weights: dict[str, float],
    seed: int,
    styles: dict[str, float] | None = None,
    numerals: str = "words",
) -> dict[str, list[dict[str, str]]]:
    """Rows for splits ``train``/``val``/``test``: ``sizes[d]`` train rows per domain and
    ``eval_rows`` val and test rows per domain, all problems distinct across splits; each
    solution's style is drawn with probabilities proportional to ``styles`` (default: all worked).

    ``numerals="words"`` writes the question's operands in the domain's own number words
    (:mod:`moalign.data.numerals`; ``en`` and ``sym`` keep digits); ``"digits"`` writes digits in
    every domain. Spelling draws no random numbers, so both give the same problems, styles,
    solutions and order, and ``en`` rows are identical."""
    if numerals not in NUMERALS:
        raise ValueError(f"prepare.generator.numerals {numerals!r} is unknown; valid: {', '.join(NUMERALS)}")
    styles = styles or {"worked": 1.0}
    bad = set(styles) - set(STYLES)
    if bad:
        raise ValueError(f"prepare.generator.styles has unknown style(s) {sorted(bad)}; valid: {', '.join(STYLES)}")
    snames = [k for k, v in styles.items() if v > 0]
    sweights = [styles[k] for k in snames]
    unknown = set(sizes) - set(TEMPLATES)
    if unknown:
        raise ValueError(
            f"prepare.generator.sizes has unknown domain(s) {sorted(unknown)}; "
            f"valid domains: {sorted(TEMPLATES)}"
        )
    rng = random.Random(seed)
    ops = [o for o in OPS if op_weights.get(o, 0) > 0]
    weights = [op_weights[o] for o in ops]
    seen: set[tuple] = set()
    out: dict[str, list[dict[str, str]]] = {"train": [], "val": [], "test": []}
    for domain in sorted(sizes):
        for split, n in (("test", eval_rows), ("val", eval_rows), ("train", sizes[domain])):
            made = 0
            while made < n:
                op = rng.choices(ops, weights)[0]
                a, b, c = _draw(op, rng, max_digits)
                key = (domain, op, a, b, c)
                if key in seen:
                    continue
                seen.add(key)
                style = rng.choices(snames, sweights)[0]
                solution, ans = solve(op, a, b, c, style=style)
                if numerals == "words":
                    q = TEMPLATES[domain][op].format(a=spell(a, domain), b=spell(b, domain), c=spell(c, domain))
                else:
                    q = TEMPLATES[domain][op].format(a=a, b=b, c=c)
                out[split].append({"question": q, "answer": str(ans), "domain": domain, "style": style,
                                   "solution": solution})
                made += 1
    for rows in out.values():
        rng.shuffle(rows)
    return out


def corpus(rows: Iterable[dict[str, str]]) -> Iterable[str]:
    """Texts to train the tokenizer on: prompts and SFT targets, rendered as the model sees them."""
    from moalign.text import format_completion, format_prompt

    for r in rows:
        yield format_prompt(r["question"]) + format_completion(r.get("solution") or "", r["answer"])
