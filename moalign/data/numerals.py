"""Number words of the surface languages, the part of a question only a domain's own rows teach.

``spell(n, lang)`` writes 0 <= n < 10**6 the way the language does (ASCII, accents dropped like
the templates): Spanish is tens-then-units with ``y`` ("cuarenta y dos"), French has its
vigesimal 70-99 ("soixante-dix", "quatre-vingt-dix-neuf"), German writes units *before* tens in
one word ("zweiundvierzig": the digit order is reversed). ``en`` and ``sym`` keep digits. The
words of one language share nothing with another's, so reading a question's operands must be
learnt from that domain's own examples, while the solution (digits, column arithmetic,
``\\boxed{N}``) is the same skill in every domain.
"""

from __future__ import annotations

import re

_ES_UNITS = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez",
             "once", "doce", "trece", "catorce", "quince", "dieciseis", "diecisiete", "dieciocho", "diecinueve",
             "veinte", "veintiuno", "veintidos", "veintitres", "veinticuatro", "veinticinco", "veintiseis",
             "veintisiete", "veintiocho", "veintinueve"]
_ES_TENS = {3: "treinta", 4: "cuarenta", 5: "cincuenta", 6: "sesenta", 7: "setenta", 8: "ochenta", 9: "noventa"}
_ES_HUNDREDS = {1: "ciento", 2: "doscientos", 3: "trescientos", 4: "cuatrocientos", 5: "quinientos",
                6: "seiscientos", 7: "setecientos", 8: "ochocientos", 9: "novecientos"}

_FR_UNITS = ["zero", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze",
             "douze", "treize", "quatorze", "quinze", "seize"]
_FR_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}

_DE_UNITS = ["null", "eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht", "neun", "zehn", "elf",
             "zwoelf", "dreizehn", "vierzehn", "fuenfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn"]
_DE_TENS = {2: "zwanzig", 3: "dreissig", 4: "vierzig", 5: "fuenfzig", 6: "sechzig", 7: "siebzig", 8: "achtzig",
            9: "neunzig"}


def _es(n: int) -> str:
    if n < 30:
        return _ES_UNITS[n]
    if n < 100:
        t, u = divmod(n, 10)
        return _ES_TENS[t] + (f" y {_ES_UNITS[u]}" if u else "")
    if n < 1000:
        h, r = divmod(n, 100)
        if n == 100:
            return "cien"
        return _ES_HUNDREDS[h] + (f" {_es(r)}" if r else "")
    k, r = divmod(n, 1000)
    head = "mil" if k == 1 else re.sub(r"uno$", "un", _es(k)) + " mil"  # veintiun mil
    return head + (f" {_es(r)}" if r else "")


def _fr(n: int) -> str:
    if n <= 16:
        return _FR_UNITS[n]
    if n < 20:
        return f"dix-{_FR_UNITS[n - 10]}"
    if n < 70:
        t, u = divmod(n, 10)
        return _FR_TENS[t] + ("" if not u else " et un" if u == 1 else f"-{_FR_UNITS[u]}")
    if n < 80:
        return "soixante et onze" if n == 71 else f"soixante-{_fr(n - 60)}"
    if n < 100:
        return "quatre-vingts" if n == 80 else f"quatre-vingt-{_fr(n - 80)}"
    if n < 1000:
        h, r = divmod(n, 100)
        head = "cent" if h == 1 else f"{_FR_UNITS[h]} cent" + ("s" if not r else "")
        return head + (f" {_fr(r)}" if r else "")
    k, r = divmod(n, 1000)
    head = "mille" if k == 1 else f"{_fr(k)} mille"
    return head + (f" {_fr(r)}" if r else "")


def _de(n: int, alone: bool = True) -> str:
    if n < 20:
        return "ein" if n == 1 and not alone else _DE_UNITS[n]
    if n < 100:
        t, u = divmod(n, 10)
        return (f"{_de(u, False)}und" if u else "") + _DE_TENS[t]
    if n < 1000:
        h, r = divmod(n, 100)
        return f"{_de(h, False)}hundert" + (_de(r) if r else "")
    k, r = divmod(n, 1000)
    return f"{_de(k, False)}tausend" + (_de(r) if r else "")


SPELLERS = {"es": _es, "fr": _fr, "de": _de}


def spell(n: int, lang: str) -> str:
    """``n`` in the number words of ``lang`` (es, fr, de); digits for any other domain."""
    if not 0 <= n < 10**6:
        raise ValueError(f"spell: {n} is outside 0..999999")
    f = SPELLERS.get(lang)
    return f(n) if f else str(n)
