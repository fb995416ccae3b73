"""The multi-domain world: es/fr/de questions in their own number words, en unchanged, 100x tail kept."""

import hashlib
import json
import re

import pytest

from moalign.data.arith import generate
from moalign.data.config import GeneratorConfig
from moalign.data.numerals import spell
from moalign.grading import grade
from moalign.text import format_completion

OPS = {"add": 1.0, "sub": 1.0, "mul": 1.0, "two": 0.5}
STYLES = {"worked": 0.5, "outline": 0.25, "terse": 0.25}
SIZES = {"en": 40, "es": 12, "fr": 6, "de": 3}


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("n,es,fr,de", [
    (7, "siete", "sept", "sieben"),
    (21, "veintiuno", "vingt et un", "einundzwanzig"),
    (42, "cuarenta y dos", "quarante-deux", "zweiundvierzig"),
    (71, "setenta y uno", "soixante et onze", "einundsiebzig"),
    (80, "ochenta", "quatre-vingts", "achtzig"),
    (99, "noventa y nueve", "quatre-vingt-dix-neuf", "neunundneunzig"),
    (100, "cien", "cent", "einhundert"),
    (171, "ciento setenta y uno", "cent soixante et onze", "einhunderteinundsiebzig"),
    (21000, "veintiun mil", "vingt et un mille", "einundzwanzigtausend"),
])
def test_spell_known_values(n, es, fr, de):
    assert (spell(n, "es"), spell(n, "fr"), spell(n, "de")) == (es, fr, de)
    assert spell(n, "en") == str(n)


def test_spell_rejects_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        spell(10**6, "de")


def test_number_words_are_distinct_per_language():
    """Nothing learnt from one language's number words reads another's: the vocabularies are disjoint."""
    words = {lang: {w for n in range(10, 200) for w in re.split(r"[ -]", spell(n, lang))} for lang in ("es", "fr", "de")}
    assert not (words["es"] & words["fr"]) and not (words["es"] & words["de"]) and not (words["fr"] & words["de"])


def test_en_is_bit_identical_to_the_previous_generator():
    """Frozen hashes from the generator before numerals existed (same seed and sizes)."""
    words = generate(SIZES, 3, 2, OPS, 7, STYLES, "words")
    en = {s: [r for r in v if r["domain"] == "en"] for s, v in words.items()}
    assert _sha(en) == "5664204bd05e3f8e7758ab1b6b0aa130456627def7a328ba4244d0e54b43595a"
    assert _sha(generate(SIZES, 3, 2, OPS, 7, STYLES, "digits")) == (
        "54a1d0df6b21a29eabde23fe7bea8eb0c877a919c5278e986e75f9c68f0f8e53")


def test_words_change_only_the_questions_of_the_other_domains():
    words = generate(SIZES, 3, 2, OPS, 0, STYLES, "words")
    digits = generate(SIZES, 3, 2, OPS, 0, STYLES, "digits")
    for split in words:
        for w, d in zip(words[split], digits[split]):
            assert {k: v for k, v in w.items() if k != "question"} == {k: v for k, v in d.items() if k != "question"}
            if w["domain"] == "en":
                assert w["question"] == d["question"]
            else:  # operands spelt out: the question has no digit left, the solution/answer still has them
                assert w["question"] != d["question"] and not re.search(r"\d", w["question"])
                nums = [int(x) for x in re.findall(r"\d+", d["question"])]
                assert all(spell(n, w["domain"]) in w["question"] for n in nums)
            assert grade(format_completion(w["solution"], w["answer"]), w["answer"])  # boxed digits everywhere


def test_sizes_keep_the_long_tail():
    sizes = {"en": 1000, "es": 200, "fr": 40, "de": 10}
    rows = generate(sizes, 5, 2, OPS, 1, STYLES)
    for d, n in sizes.items():
        assert sum(r["domain"] == d for r in rows["train"]) == n
        assert sum(r["domain"] == d for r in rows["val"]) == 5 == sum(r["domain"] == d for r in rows["test"])


def test_default_is_words_and_unknown_value_fails():
    assert GeneratorConfig().numerals == "words"
    with pytest.raises(ValueError, match="numerals"):
        GeneratorConfig(numerals="roman")
    with pytest.raises(ValueError, match="valid: words, digits"):
        generate({"en": 2}, 1, 2, OPS, 0, numerals="roman")
