"""derivanim.grammar: what people type and the corpus contains parses to the right SymPy expression; anything
else is rejected with a one-line message that says what and where."""

import json
from pathlib import Path

import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from derivanim.errors import InvalidInput
from derivanim.grammar import MAX_LENGTH, notation, parse_function

CORPUS = Path(__file__).parents[1] / ".." / "shared" / "reference" / "derivanimator-525"

x, t, u = (sympy.Symbol(letter, real=True) for letter in "xtu")
half = sympy.Rational(1, 2)

ACCEPTED = [
    # powers: ^ and **, right-associative, signed exponents
    ("x^2", x**2),
    ("x**2", x**2),
    ("x^-1", 1 / x),
    ("2^x^2", 2 ** (x**2)),
    ("-x^2", -(x**2)),
    ("x^(1/3)", x ** sympy.Rational(1, 3)),
    ("(x^2+1)^3", (x**2 + 1) ** 3),
    # implicit multiplication
    ("3x^2", 3 * x**2),
    ("2cos(x)", 2 * sympy.cos(x)),
    ("x sin(x)", x * sympy.sin(x)),
    ("xsin(x)", x * sympy.sin(x)),
    ("(x+1)(x-1)", (x + 1) * (x - 1)),
    ("2(x+1)", 2 * (x + 1)),
    ("3x^2 + 2x + 1", 3 * x**2 + 2 * x + 1),
    ("2pi x", 2 * sympy.pi * x),
    # exponentials and logarithms
    ("e^x", sympy.exp(x)),
    ("e^-x", sympy.exp(-x)),
    ("e^(-x^2)", sympy.exp(-(x**2))),
    ("exp(2x)", sympy.exp(2 * x)),
    ("ln(x)", sympy.log(x)),
    ("log(x)", sympy.log(x)),
    ("log10(x)", sympy.log(x, 10)),
    ("log2(x^2+1)", sympy.log(x**2 + 1, 2)),
    ("2^x", 2**x),
    # roots
    ("sqrt(x)", sympy.sqrt(x)),
    ("sqrt(x^2+1)", sympy.sqrt(x**2 + 1)),
    # trigonometric and reciprocal trigonometric
    ("sin(x)", sympy.sin(x)),
    ("cos(3x)", sympy.cos(3 * x)),
    ("tan(x)", sympy.tan(x)),
    ("sec(x)", sympy.sec(x)),
    ("csc(x)", sympy.csc(x)),
    ("cot(x)", sympy.cot(x)),
    ("sec(x)+csc(x)+cot(x)", sympy.sec(x) + sympy.csc(x) + sympy.cot(x)),
    ("sin(x)^2", sympy.sin(x) ** 2),
    ("sin^2(x)", sympy.sin(x) ** 2),
    ("cos^3(2x)", sympy.cos(2 * x) ** 3),
    # inverse trigonometric, both spellings
    ("asin(x)", sympy.asin(x)),
    ("arcsin(x)", sympy.asin(x)),
    ("acos(x)", sympy.acos(x)),
    ("arccos(x)", sympy.acos(x)),
    ("atan(2x)", sympy.atan(2 * x)),
    ("arctan(x)", sympy.atan(x)),
    # hyperbolic and their inverses
    ("sinh(x)", sympy.sinh(x)),
    ("cosh(x)", sympy.cosh(x)),
    ("tanh(x)", sympy.tanh(x)),
    ("asinh(x)", sympy.asinh(x)),
    ("arcsinh(x)", sympy.asinh(x)),
    ("acosh(x)", sympy.acosh(x)),
    ("atanh(x/2)", sympy.atanh(x / 2)),
    # absolute value, constants, decimals
    ("abs(x)", sympy.Abs(x)),
    ("abs(x^2-1)", sympy.Abs(x**2 - 1)),
    ("pi*x", sympy.pi * x),
    ("π x", sympy.pi * x),
    ("e", sympy.E),
    ("7", sympy.Integer(7)),
    ("2.5x", sympy.Rational(5, 2) * x),
    ("0.1x^2", sympy.Rational(1, 10) * x**2),
    (".5x", half * x),
    ("1.25", sympy.Rational(5, 4)),
    # typographic operators people paste
    ("x−1", x - 1),
    ("3·x", 3 * x),
    ("2×x", 2 * x),
    # quotients and a longer one
    ("sin(x)/x", sympy.sin(x) / x),
    ("1/(x-1)", 1 / (x - 1)),
    ("x^3*sin(x) + ln(x^2+1) - e^(2x)/x", x**3 * sympy.sin(x) + sympy.log(x**2 + 1) - sympy.exp(2 * x) / x),
    ("x^x", x**x),
]


@pytest.mark.parametrize("text, expected", ACCEPTED, ids=[text for text, _ in ACCEPTED])
def test_accepts(text, expected):
    parsed = parse_function(text)
    assert parsed.expr == expected
    assert parsed.variable == x and parsed.variable.is_real
    assert parsed.name == "f"


@pytest.mark.parametrize(
    "text, expected, variable, name",
    [
        ("g(t) = t^3", t**3, t, "g"),
        ("g(t) = t^3 - 2t", t**3 - 2 * t, t, "g"),
        ("y = x sin(x)", x * sympy.sin(x), x, "y"),
        ("y = 3", sympy.Integer(3), x, "y"),
        ("f(x) = x^2", x**2, x, "f"),
        ("h(u) = e^(-u)", sympy.exp(-u), u, "h"),
        ("t^2 + 1", t**2 + 1, t, "f"),  # no header: the letter used is the variable
    ],
)
def test_name_and_variable(text, expected, variable, name):
    parsed = parse_function(text)
    assert (parsed.expr, parsed.variable, parsed.name) == (expected, variable, name)


def test_slots_may_name_the_variable_and_function():
    parsed = parse_function("t^2", variable="t", name="g")
    assert (parsed.expr, parsed.variable, parsed.name) == (t**2, t, "g")


REJECTED = [
    # (text, words the message must contain)
    ("sin(x", ["column 6", "'('"]),
    ("x)", ["')'", "column 2"]),
    ("x + * 2", ["'*'", "column 5"]),
    ("sin x", ["'sin'", "parentheses", "column 1"]),
    ("x^2 + log10 x", ["'log10'", "parentheses", "column 7"]),
    ("x cos", ["'cos'", "parentheses", "column 3"]),
    ("((x+1)", ["column 7", "'('"]),
    ("floor(x)", ["'floor'", "supported", "sin", "sqrt", "ln", "asin", "abs"]),
    ("x + y", ["more than one variable", "(x, y)"]),
    ("f(t) = x^2", ["ambiguous", "t vs x"]),
    ("f(x) = x + t", ["more than one variable"]),
    ("", ["empty"]),
    ("   ", ["empty"]),
    ("x+" * 100 + "x", [str(MAX_LENGTH)]),
    ("(" * 13 + "x" + ")" * 13, ["nested"]),
    ("sin(" * 13 + "x" + ")" * 13, ["nested"]),
    ("x^99999999", ["too large"]),
    ("10^(10^10)", ["too large"]),
    ("(x^50)^50", ["too large"]),
    ("12345678901*x", ["10 digits", "column 1"]),
    ("1/0", ["division by zero", "column 2"]),
    ("x/(2-2)", ["division by zero"]),
    ("0^-1", ["undefined"]),
    ("sqrt(-1)", ["not real"]),
    ("sin(x)\nx", ["control character"]),
    ("x..2", ["'.'", "column 2"]),
    ("__import__('os')", ["column"]),
    ("x^2 = y", ["left side"]),
    ("x = 2", ["also its variable"]),
]


@pytest.mark.parametrize("text, words", REJECTED, ids=[repr(text)[:30] for text, _ in REJECTED])
def test_rejects_with_a_one_line_message(text, words):
    with pytest.raises(InvalidInput) as caught:
        parse_function(text)
    message = str(caught.value)
    assert message and "\n" not in message
    for word in words:
        assert word in message


def test_slots_that_disagree_with_the_header_are_rejected():
    with pytest.raises(InvalidInput, match="ambiguous"):
        parse_function("g(t) = t^3", name="h")
    with pytest.raises(InvalidInput, match="ambiguous"):
        parse_function("t^3", variable="x")


def test_every_corpus_function_parses():
    if not CORPUS.is_dir():
        pytest.skip(f"the reference corpus is not at {CORPUS}")
    functions = [
        json.loads(line)["function"]
        for split in ("train", "val", "test")
        for line in (CORPUS / f"{split}.jsonl").read_text().splitlines()
        if line.strip()
    ]
    assert len(functions) >= 500
    failures = {}
    for text in functions:
        try:
            parse_function(text)
        except InvalidInput as error:
            failures[text] = str(error)
    assert not failures


# --- the grammar's notation: what derivanim prints, people can type back ---------------------------------------

NOTATION = [
    # (SymPy expression, how the grammar's notation writes it)
    (2 * x / (x - 1) - (x**2 + 1) / (x - 1) ** 2, "2x/(x - 1) - (x^2 + 1)/(x - 1)^2"),
    ((x**2 - 2 * x - 1) / (x - 1) ** 2, "(x^2 - 2x - 1)/(x - 1)^2"),
    (x * (x + 2) * sympy.exp(x), "x(x + 2) e^x"),
    ((x - 1) * (x + 1) ** 2, "(x - 1)(x + 1)^2"),
    (x**2 * (x**2 - 3), "x^2 (x^2 - 3)"),
    (x ** (sympy.sin(x) - 1) * (x + sympy.sin(x)), "x^(sin(x) - 1) (x + sin(x))"),
    (-2 * x * sympy.exp(-x**2), "-2x e^(-x^2)"),
    (x**x * (sympy.log(x) + 1), "x^x (ln(x) + 1)"),
    (1 / (x * sympy.log(10)), "1/(x ln(10))"),
    (1 / (2 * sympy.sqrt(x)), "1/(2sqrt(x))"),
    (x ** sympy.Rational(1, 3), "x^(1/3)"),
    (3 * 2**x, "3*2^x"),  # a number after a number keeps its '*'
    (2 * sympy.pi * x, "2pi x"),
    (2 * sympy.sin(x) * sympy.cos(x), "2sin(x) cos(x)"),
    (sympy.sin(x) ** sympy.cos(x), "sin(x)^(cos(x))"),
    (sympy.asin(x) + sympy.Abs(x), "abs(x) + arcsin(x)"),
    (-x / 2, "-x/2"),
    (sympy.sech(x) ** 2, "1/cosh(x)^2"),  # the grammar has no sech: written with cosh
    (sympy.exp(x**x) ** x, "(e^(x^x))^x"),  # not e^(x^x)^x, which reads as e^((x^x)^x)
]


@pytest.mark.parametrize("expr, written", NOTATION, ids=[written for _, written in NOTATION])
def test_notation_writes_what_people_type(expr, written):
    assert notation(expr) == written
    assert "**" not in written and "log" not in written and "*" not in written.replace("3*2", "")


def test_notation_refuses_what_the_grammar_cannot_write():
    with pytest.raises(ValueError, match="gamma"):
        notation(sympy.gamma(x))


_LEAVES = st.sampled_from([x, x, sympy.Integer(2), sympy.Integer(3), sympy.Integer(7), sympy.Rational(1, 2),
                           sympy.Rational(3, 4), sympy.pi, sympy.E])
_UNARY = [sympy.sin, sympy.cos, sympy.tan, sympy.sec, sympy.csc, sympy.cot, sympy.asin, sympy.acos, sympy.atan,
          sympy.sinh, sympy.cosh, sympy.tanh, sympy.asinh, sympy.acosh, sympy.atanh, sympy.exp, sympy.log, sympy.sqrt,
          sympy.Abs, lambda u: -u, lambda u: sympy.log(u, 10)]


def _grown(parts):
    return st.one_of(
        st.builds(lambda f, u: f(u), st.sampled_from(_UNARY), parts),
        st.builds(sympy.Add, parts, parts),
        st.builds(lambda a, b: a - b, parts, parts),
        st.builds(sympy.Mul, parts, parts),
        st.builds(lambda a, b: a / b, parts, parts),
        st.builds(sympy.Pow, parts, st.sampled_from([2, 3, -1, -2, sympy.Rational(1, 3), sympy.Rational(-3, 2)])),
        st.builds(sympy.Pow, parts, parts),
    )


# The limits of the grammar (length, digits, nesting, size) may refuse what SymPy builds; nothing else may.
_LIMITS = ("characters long", "digits", "too large", "nested", "operations", "not real")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.recursive(_LEAVES, _grown, max_leaves=8))
def test_notation_reads_back_to_an_equal_expression(expr):
    assume(not expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I))
    # 7^(7^7) is a number SymPy cannot even print (over 4,300 digits); the grammar reads 10 digits at most
    assume(all(max(abs(n.p), n.q).bit_length() < 10_000 for n in expr.atoms(sympy.Rational)))
    written = notation(expr)
    try:
        back = parse_function(written, variable="x").expr
    except InvalidInput as error:
        assume(not any(limit in str(error) for limit in _LIMITS))
        raise
    # 7(x + 7)/x reads back as (7x + 49)/x: SymPy distributes a number over a sum once it stands alone.
    assert back == expr or sympy.expand(back - expr) == 0, (written, back)
