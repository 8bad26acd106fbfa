"""Functions said in words, as teachers say them: 'the natural log of cosine x', 'e to the x squared', 'x times
sine x', 'one over x', 'the square root of x plus one'.

The slots adapter learns to turn such requests into the function (issue 12): `wordings` reads a function's SymPy
tree and says it several ways, so the corpus can pair each wording with the function's text.

Words are ambiguous where symbols are not, so the wordings follow the conventions people read them by:
- "F of ...", "... over ..." and "... to the ..." reach to the end of the phrase: 'the square root of x plus one' is
  sqrt(x + 1), 'x over x squared plus one' is x/(x^2 + 1), 'e to the x squared' is e^(x^2). Such an open phrase is
  only ever said last in a sum or product ('one plus the square root of x', never 'the square root of x plus one'
  for sqrt(x) + 1); two of them side by side are not said.
- "sine x", "root x", "e to the x", "x squared" are closed: 'sine x plus one' is sin(x) + 1; 'sine of x' is open.
  An exponent with an operator in it is a quantity: 'e to the quantity x plus one' (e to the x plus one is e^x + 1).
- A sum that is a base, numerator or denominator is "the quantity ...": 'the quantity x plus one, squared'.
A function these conventions cannot say plainly gets no wordings (an empty list), and the corpus skips it; where
only some choices of words can say it, only those are used.
"""

import random
import re
from dataclasses import dataclass

import sympy

SMALL_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
POWER_WORDS = {2: ("squared",), 3: ("cubed",)}
FRACTION_WORDS = {2: ("half", "halves"), 3: ("third", "thirds"), 4: ("quarter", "quarters")}  # one, several
OPERATOR = re.compile(r"\S (plus|minus|times|multiplied by|over|divided by) ")  # after a word: not a leading sign
# SymPy's function -> how it is said before its argument (the first is the most common)
FUNCTION_WORDS = {
    sympy.sin: ("sine", "sin"),
    sympy.cos: ("cosine", "cos"),
    sympy.tan: ("tangent", "tan"),
    sympy.sec: ("secant", "sec"),
    sympy.csc: ("cosecant",),
    sympy.cot: ("cotangent",),
    sympy.asin: ("arcsine", "inverse sine"),
    sympy.acos: ("arccosine", "inverse cosine"),
    sympy.atan: ("arctangent", "inverse tangent", "arctan"),
    sympy.sinh: ("hyperbolic sine",),
    sympy.cosh: ("hyperbolic cosine",),
    sympy.tanh: ("hyperbolic tangent",),
    sympy.log: ("the natural log", "ln", "the log"),
    sympy.Abs: ("the absolute value",),
}
SPOKEN_NAMES = {"sine", "cosine", "tangent", "secant", "cosecant", "cotangent", "arcsine", "arccosine", "arctangent",
                "inverse sine", "inverse cosine", "inverse tangent", "hyperbolic sine", "hyperbolic cosine",
                "hyperbolic tangent"}  # said with or without 'the' ('the sine of x'); abbreviations never
MAX_WORDS = 24  # longer wordings are hard to follow even for a person


@dataclass(frozen=True)
class Phrase:
    text: str
    open: bool  # ends in "of ..." or "to the ...", which reaches to the end of the phrase


class Unsayable(Exception):
    """The function has a part these conventions do not say plainly."""


def number(value: sympy.Expr, rng: random.Random) -> str:
    if value.is_Integer and 0 <= value < len(SMALL_NUMBERS):
        return rng.choice((SMALL_NUMBERS[int(value)], str(value)))
    if value.is_Integer:
        return str(value)
    if value.is_Rational and value.q in (2, 3, 4) and abs(value.p) < 10:
        if value.p == 1:
            return f"one {FRACTION_WORDS[value.q][0]}"
        return f"{SMALL_NUMBERS[value.p]} {FRACTION_WORDS[value.q][1]}"
    if value == sympy.pi:
        return "pi"
    if value == sympy.E:
        return "e"
    raise Unsayable(f"the number {value}")


def say(expr: sympy.Expr, rng: random.Random) -> Phrase:
    """One wording of `expr`."""
    if expr.is_Symbol:
        return Phrase(str(expr), False)
    if expr.is_Number or expr in (sympy.pi, sympy.E):
        if expr.is_negative:
            return Phrase(f"{rng.choice(('minus', 'negative'))} {number(-expr, rng)}", False)
        return Phrase(number(expr, rng), False)
    if expr.is_Add:
        return _sum(expr, rng)
    if expr.is_Mul:
        return _product(expr, rng)
    if expr.is_Pow:
        return _power(expr, rng)
    if isinstance(expr, sympy.exp):
        return _power(sympy.Pow(sympy.E, expr.args[0], evaluate=False), rng)
    if type(expr) in FUNCTION_WORDS:
        return _call(FUNCTION_WORDS[type(expr)], expr.args[0], rng)
    raise Unsayable(type(expr).__name__)


def _call(names: tuple[str, ...], argument: sympy.Expr, rng: random.Random) -> Phrase:
    name = rng.choice(names)
    if argument.is_Symbol and not name.startswith("the ") and rng.random() < 0.6:
        return Phrase(f"{name} {argument}", False)  # 'sine x'
    inner = say(argument, rng)
    article = "the " if name in SPOKEN_NAMES and rng.random() < 0.4 else ""
    return Phrase(f"{article}{name} of {inner.text}", True)


def _closed(expr: sympy.Expr, rng: random.Random) -> str:
    """A part that must not reach further than itself (a base, a numerator): a sum becomes 'the quantity ...,'."""
    phrase = say(expr, rng)
    if expr.is_Add:
        return f"the quantity {phrase.text},"
    if phrase.open:
        raise Unsayable("an open phrase where a closed one is needed")
    return phrase.text


def _sum(expr: sympy.Add, rng: random.Random) -> Phrase:
    terms = sorted(expr.as_ordered_terms(), key=lambda term: say(term if not term.could_extract_minus_sign()
                                                                  else -term, random.Random(0)).open)
    phrases = []
    for i, term in enumerate(terms):
        negative = term.could_extract_minus_sign()
        phrase = say(-term if negative else term, rng)
        if phrase.open and i < len(terms) - 1:
            raise Unsayable("two open terms in one sum")
        joiner = ("minus" if negative else "plus") if i else ("minus" if negative else "")
        phrases.append(f"{joiner} {phrase.text}".strip())
    return Phrase(" ".join(phrases), say(terms[-1] if not terms[-1].could_extract_minus_sign() else -terms[-1],
                                         random.Random(0)).open)


def _product(expr: sympy.Mul, rng: random.Random) -> Phrase:
    below = [factor for factor in expr.args if factor.is_Pow and factor.exp.is_Rational and factor.exp.is_negative]
    numerator = sympy.Mul(*[factor for factor in expr.args if factor not in below])
    denominator = sympy.Mul(*[1 / factor for factor in below])
    if denominator != 1:
        if numerator.is_Add or denominator.is_Add:
            return Phrase(f"the quotient of {_closed(numerator, rng).rstrip(',')} and "
                          f"{say(denominator, rng).text}", True)
        top = say(numerator, rng)
        if top.open:
            raise Unsayable("an open numerator")
        bottom = say(denominator, rng)
        return Phrase(f"{top.text} {rng.choice(('over', 'divided by'))} {bottom.text}", True)
    coefficient, rest = expr.as_coeff_Mul()
    if coefficient < 0:
        inner = say(-expr, rng)
        return Phrase(f"{rng.choice(('minus', 'negative'))} {inner.text}", inner.open)
    if coefficient != 1:
        inner = say(rest, rng)
        if inner.open or rest.is_Add:
            return Phrase(f"{number(coefficient, rng)} times {_closed(rest, rng) if rest.is_Add else inner.text}",
                          inner.open and not rest.is_Add)
        return Phrase(f"{number(coefficient, rng)}{rng.choice((' ', ' times '))}{inner.text}", False)
    factors = sorted(expr.args, key=lambda factor: say(factor, random.Random(0)).open)
    phrases = []
    for i, factor in enumerate(factors):
        if factor.is_Add:
            phrases.append(_closed(factor, rng))
            continue
        phrase = say(factor, rng)
        if phrase.open and i < len(factors) - 1:
            raise Unsayable("two open factors in one product")
        phrases.append(phrase.text)
    joiner = rng.choice((" times ", " times ", " multiplied by "))
    return Phrase(joiner.join(phrases), say(factors[-1], random.Random(0)).open)


def _power(expr: sympy.Pow, rng: random.Random) -> Phrase:
    base, exponent = expr.args
    if exponent == sympy.Rational(1, 2):
        return _call(("the square root", "root"), base, rng) if not base.is_Symbol or rng.random() < 0.5 else \
            Phrase(f"root {base}", False)
    if exponent.is_negative and exponent.is_Rational:
        bottom = say(sympy.Pow(base, -exponent), rng)
        return Phrase(f"{rng.choice(('one over', '1 over', 'one divided by'))} {bottom.text}", True)
    if base == sympy.E:
        return Phrase(f"e to the {_exponent(exponent, rng)}", not exponent.is_Symbol)
    if exponent.is_Rational and not exponent.is_Integer:
        return Phrase(f"{_closed(base, rng)} to the power of {number(exponent, rng)}", False)
    if type(base) in FUNCTION_WORDS and exponent.is_Integer and int(exponent) in POWER_WORDS:
        name, argument = rng.choice(FUNCTION_WORDS[type(base)]), say(base.args[0], rng)
        return Phrase(f"{name} {POWER_WORDS[int(exponent)][0]} of {argument.text}", True)
    closed_base = _closed(base, rng)
    if exponent.is_Integer and int(exponent) in POWER_WORDS and rng.random() < 0.85:
        return Phrase(f"{closed_base} {POWER_WORDS[int(exponent)][0]}", False)
    if exponent.is_Integer and exponent > 0:
        ordinal = f"to the {exponent}th" if exponent > 3 and rng.random() < 0.5 else "to the power of " + number(
            exponent, rng)
        return Phrase(f"{closed_base} {ordinal}", False)
    return Phrase(f"{closed_base} to the {_exponent(exponent, rng)}", not exponent.is_Symbol)


def _exponent(exponent: sympy.Expr, rng: random.Random) -> str:
    """What follows "to the": 'e to the x plus one' is e^x + 1 ("e to the x" is closed), so an exponent with an
    operator after its first word is a quantity: 'e to the quantity x plus one'."""
    text = say(exponent, rng).text
    return f"quantity {text}" if OPERATOR.search(text) else text


def wordings(expr: sympy.Expr, count: int, seed: str) -> list[str]:
    """Up to `count` different wordings of `expr` (fewer if it has fewer; none if it cannot be said plainly)."""
    rng = random.Random(f"words-{seed}")
    found: list[str] = []
    for _ in range(8 * count):  # a choice of words may leave an open phrase before more: then another choice
        try:
            text = say(expr, rng).text.rstrip(",")
        except Unsayable:
            continue
        if text not in found and len(text.split()) <= MAX_WORDS:
            found.append(text)
        if len(found) == count:
            break
    return found
