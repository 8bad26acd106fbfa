"""Functions said in words, read back (derivanim.spoken): the inverse of derivanim.verbalise."""

import statistics
import time
from pathlib import Path

import pytest
import sympy

from derivanim.evaluate import same_function
from derivanim.grammar import parse_function
from derivanim.spoken import spoken_functions
from derivanim.verbalise import FUNCTION_WORDS, wordings

DATA = Path(__file__).resolve().parent.parent / "data"


def catalog() -> list[str]:
    return [line for path in sorted((DATA / "functions").glob("*.txt"))
            for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]


def held_out_words() -> list[tuple[str, str]]:
    lines = (DATA / "requests" / "words.tsv").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines if line and not line.startswith("#")]


def reads_as(candidate: str, function: str) -> bool:
    return same_function(parse_function(candidate), parse_function(function))


def first_reading(words: str) -> str:
    found = spoken_functions(f"Animate the derivative of {words}")
    assert found, words
    return found[0]


def round_trip_misses(functions: list[str]) -> tuple[int, list[tuple[str, str, tuple]]]:
    """How many wordings verbalise gives these functions, and those whose first reading is another function."""
    said, misses = 0, []
    for function in functions:
        for words in wordings(parse_function(function).expr, 4, function):
            said += 1
            found = spoken_functions(f"Animate the derivative of {words}")
            if not (found and reads_as(found[0], function)):
                misses.append((function, words, found))
    return said, misses


def test_every_wording_of_a_sample_of_the_catalog_reads_back_first():
    said, misses = round_trip_misses(catalog()[::9])
    assert said > 150 and misses == [], f"{len(misses)} of {said} read otherwise: {misses[:5]}"


@pytest.mark.slow
def test_every_wording_of_the_whole_catalog_reads_back_first():
    said, misses = round_trip_misses(catalog())
    assert said > 1500 and misses == [], f"{len(misses)} of {said} read otherwise: {misses[:5]}"


def test_the_held_out_requests_read_as_the_function_meant():
    rows = held_out_words()
    found = [spoken_functions(request) for request, _ in rows]
    first = sum(bool(candidates) and reads_as(candidates[0], function) for candidates, (_, function) in zip(found, rows))
    anywhere = sum(any(reads_as(c, function) for c in candidates) for candidates, (_, function) in zip(found, rows))
    assert anywhere == len(rows), [(request, c) for c, (request, _) in zip(found, rows)]
    assert first >= 0.9 * len(rows), f"first candidate right for {first} of {len(rows)}"


@pytest.mark.parametrize("words, meant", [
    ("the square root of x plus one", "sqrt(x + 1)"),  # "F of ..." reaches to the end
    ("one plus the square root of x", "1 + sqrt(x)"),
    ("sine x plus one", "sin(x) + 1"),  # "sine x" is closed
    ("sine of x squared", "sin(x^2)"),
    ("sine squared of x", "sin(x)^2"),
    ("e to the x squared", "e^(x^2)"),
    ("e to the x plus one", "e^x + 1"),  # "e to the x" is closed ...
    ("e to the quantity x plus one", "e^(x + 1)"),  # ... so an exponent with an operator is a quantity
    ("e to the minus x", "e^(-x)"),
    ("the quantity x plus one, squared", "(x + 1)^2"),
    ("the quantity x plus 1, to the power of three halves times e to the x", "(x + 1)^(3/2)*e^x"),
    ("the quotient of x and x squared plus one", "x/(x^2 + 1)"),
    ("x over x squared plus one", "x/(x^2 + 1)"),  # "over" reaches to the end
    ("one divided by the quantity x minus one, times the quantity x plus 2", "1/((x - 1)*(x + 2))"),
    ("x to the fourth minus two x squared", "x^4 - 2*x^2"),
    ("minus three x to the 5th plus 4 x cubed", "-3*x^5 + 4*x^3"),
    ("negative the tangent of 2 x", "-tan(2*x)"),
    ("one half x", "x/2"),
    ("cosine two x", "cos(2*x)"),
    ("x e to the x", "x*e^x"),
    ("three sine x cosine x", "3*sin(x)*cos(x)"),
    ("the natural log of cosine x", "ln(cos(x))"),
    ("the cube root of x", "x^(1/3)"),
    ("t squared minus t", "t^2 - t"),
    ("e raised to the x", "e^x"),
    ("x to the 3rd power", "x^3"),
    ("the square of sine x", "sin(x)^2"),
    ("the reciprocal of x", "1/x"),
    ("x plus one all squared", "(x + 1)^2"),
    ("two e to the three x", "2*e^(3*x)"),  # not 2e^3 x: "to the" takes the three x
])
def test_the_conventions_decide_the_first_reading(words, meant):
    assert reads_as(first_reading(words), meant)


@pytest.mark.parametrize("words, also", [
    ("sine of x divided by x", "sin(x)/x"),  # read strictly, sin(x/x) is a constant: not a function
    ("x plus one over x minus one", "(x + 1)/(x - 1)"),
    ("e to the x plus one", "e^(x + 1)"),
    ("the square root of x plus one", "sqrt(x) + 1"),
])
def test_other_plausible_readings_follow(words, also):
    assert any(reads_as(candidate, also) for candidate in spoken_functions(f"Animate the derivative of {words}"))


def test_every_name_of_every_function_is_read():
    x = sympy.Symbol("x", real=True)
    for function, names in FUNCTION_WORDS.items():
        for name in names:
            found = spoken_functions(f"the derivative of {name} of x")
            assert found and parse_function(found[0]).expr == function(x), (name, found)


def test_each_function_a_request_says_is_found_once_in_order():
    assert spoken_functions("compare x squared and sine x, then x squared again") == ("x^2", "sin(x)")
    assert spoken_functions("Teach the product rule with x*sin(x) and the natural log of x") == ("ln(x)",)


@pytest.mark.parametrize("request_text", [
    "Explain the power rule", "What is the boiling point of water?", "one two three", "at x = 3",
    "derivative of x^2 please", "sin(x)", "Solve 2x + 5 = 11 for x", "x^2 plus sine x", "the sine of",
    "__import__('os').system('x squared')", "t times x", "one over zero times x", "", "x" * 500,
])
def test_no_function_said_in_words_gives_nothing(request_text):
    assert spoken_functions(request_text) == ()


def test_the_words_are_never_evaluated(monkeypatch):
    """No text reaches SymPy's string parsers: the reading is built with SymPy's constructors."""
    import sympy.parsing.sympy_parser

    sympify = sympy.sympify

    def objects_only(value, *args, **kwargs):
        assert not isinstance(value, str), f"sympify({value!r})"
        return sympify(value, *args, **kwargs)

    def no_text(text, *args, **kwargs):
        raise AssertionError(f"parse_expr({text!r})")

    monkeypatch.setattr(sympy, "sympify", objects_only)
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", no_text)
    spoken_functions.cache_clear()
    assert reads_as(spoken_functions("the derivative of the quotient of x squared and e to the x")[0], "x^2/e^x")


def test_reading_a_request_is_fast():
    requests = [request for request, _ in held_out_words()]
    spoken_functions(requests[0])
    seconds = []
    for request in requests:
        spoken_functions.cache_clear()
        started = time.process_time()  # CPU time: other processes on a busy machine do not stretch it
        spoken_functions(request)
        seconds.append(time.process_time() - started)
    assert statistics.median(seconds) < 0.1  # ~10 ms
