"""The classic-function suite is what it says: at least 100 textbook functions across the categories, each one
readable by the project's grammar, and every feature it notes (a maximum at x=2, a pole at x=1) true of it."""

import numpy as np
import pytest
import sympy

from classic import FEATURE_KINDS, load_suite
from derivanim.grammar import parse_function

SUITE = load_suite()
CATEGORIES = {"polynomial", "rational", "removable", "root", "exp_log", "trig", "inverse_trig", "hyperbolic",
              "composite", "corner", "oscillation"}
# Every function issue #11 names, as the issue writes it.
NAMED_IN_ISSUE = ["sin(x)/x", "x ln(x)", "sin(1/x)", "x^2*e^(-x)", "x^x", "x^3-3x", "x^4-2x^2", "x*e^(-x)",
                  "x^5-5x^3", "x^3*sin(x)", "x/(x^2+1)", "x-ln(x)", "x^2", "x^3", "2x^2+3x+1",
                  "(x^2+1)/(x-1)", "1/x", "abs(x)", "tan(x)", "x*sin(1/x)", "sqrt(x)"]
STEP = sympy.Rational(1, 1000)  # how far either side of a feature f is looked at


def test_the_suite_has_over_100_functions_in_every_category():
    assert len(SUITE) >= 100
    by_category = {c: sum(f.category == c for f in SUITE) for c in CATEGORIES}
    assert {f.category for f in SUITE} == CATEGORIES
    assert min(by_category.values()) >= 5, by_category


def test_every_function_parses_and_none_repeats():
    parsed = {}
    for function in SUITE:
        expr = parse_function(function.text).expr
        assert expr not in parsed, f"{function.text!r} is {parsed.get(expr)!r} again"
        parsed[expr] = function.text


def test_every_function_named_in_the_issue_is_in_the_suite():
    texts = {f.text for f in SUITE}
    assert [name for name in NAMED_IN_ISSUE if name not in texts] == []


def _value(expr, x, at) -> float | None:
    """f(at) as a real number, or None where f is undefined, infinite or not real there."""
    value = sympy.N(expr.subs(x, at), 30)
    real, imaginary = value.as_real_imag()
    if not (real.is_number and imaginary.is_number and real.is_finite) or abs(imaginary) > 1e-20:
        return None
    return float(real)


def _limits(expr, x, at) -> tuple:
    return tuple(sympy.limit(expr, x, at, side) for side in "-+")


def _slopes(expr, x, at, step) -> list[float]:
    """The one-sided difference quotients at `at` (left, right), on the sides where f is real."""
    here = _value(expr, x, at)
    near = [(_value(expr, x, at - step), -step), (_value(expr, x, at + step), step)]
    return [(value - here) / float(h) for value, h in near if value is not None]


def _has(kind: str, expr, x, at) -> bool:
    left, here, right = (_value(expr, x, at + k * STEP) for k in (-1, 0, 1))
    if kind in ("max", "min"):
        sign = 1 if kind == "max" else -1
        return None not in (left, here, right) and sign * (here - left) > 0 and sign * (here - right) > 0
    if kind == "inflection":
        second = sympy.diff(expr, x, 2)
        before, after = _value(second, x, at - STEP), _value(second, x, at + STEP)
        return None not in (before, after) and before * after < 0
    if kind == "pole":
        return any(limit in (sympy.oo, -sympy.oo) for limit in _limits(expr, x, at))
    if kind in ("hole", "jump"):
        below, above = _limits(expr, x, at)
        finite = below.is_real and above.is_real and below.is_finite and above.is_finite
        return here is None and finite and (below == above) == (kind == "hole")
    if kind == "edge":
        return (left is None) != (right is None)
    if kind == "corner":
        slopes = _slopes(expr, x, at, STEP)
        return here is not None and len(slopes) == 2 and abs(slopes[1] - slopes[0]) > 0.1 * (1 + sum(map(abs, slopes)))
    if kind == "vertical":  # the slope keeps growing as the step shrinks
        near, nearer = _slopes(expr, x, at, STEP), _slopes(expr, x, at, STEP / 100)
        return here is not None and bool(near) and any(abs(b) > 3 * abs(a) for a, b in zip(near, nearer))
    if kind == "oscillates":
        offsets = np.geomspace(1e-4, 1e-1, 300)
        signs = [np.sign(v) for t in offsets if (v := _value(expr, x, at + sympy.Float(t, 30))) is not None]
        return np.count_nonzero(np.diff(signs)) >= 10
    raise AssertionError(f"unknown feature kind {kind}")


@pytest.mark.parametrize("function", [f for f in SUITE if f.features], ids=lambda f: f.text)
def test_every_noted_feature_is_true(function):
    parsed = parse_function(function.text)
    wrong = [f"{kind} at x={x}" for kind, xs in function.features.items() for x in xs
             if not _has(kind, parsed.expr, parsed.variable, parse_function(x).expr)]
    assert wrong == []


@pytest.mark.parametrize("kind, text, x", [
    ("max", "x^3-3x", "1"), ("min", "x^2", "1"), ("inflection", "x^2", "0"), ("pole", "sin(x)/x", "0"),
    ("hole", "1/x", "0"), ("jump", "sin(x)/x", "0"), ("edge", "x^2", "0"), ("corner", "x^2", "0"),
    ("vertical", "abs(x)", "0"), ("oscillates", "sin(10x)", "0"),
])
def test_a_false_feature_is_caught(kind, text, x):
    """Each kind's check fails on a function that lacks the feature, so the suite's notes cannot be wrong silently."""
    assert kind in FEATURE_KINDS
    parsed = parse_function(text)
    assert not _has(kind, parsed.expr, parsed.variable, parse_function(x).expr)
