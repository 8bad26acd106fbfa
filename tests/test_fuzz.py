"""Property-based fuzzing of fill(): a verified animation whose plotted f' is SymPy's, or InvalidInput.

Two sources of text: random strings over an alphabet of grammar pieces and junk, and random SymPy
expression trees printed in the grammar's syntax. The CI profile runs 60 examples of each; a longer run:

    DERIVANIM_FUZZ_PROFILE=long .venv/bin/pytest tests/test_fuzz.py     # 2000 each
    .venv/bin/python scripts/fuzz.py --cases 2000                          # counts, and reports/fuzz.json
"""

import math
import operator
import os

import numpy
import sympy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from derivanim import InvalidInput, fill
from derivanim.grammar import parse_function, symbol

settings.register_profile("derivanim-ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("derivanim-long", settings.get_profile("derivanim-ci"), max_examples=2000)
PROFILE = settings.get_profile({"long": "derivanim-long"}.get(os.environ.get("DERIVANIM_FUZZ_PROFILE", ""), "derivanim-ci"))

# --- random strings -------------------------------------------------------------------------------------------

GRAMMAR_PIECES = [
    "x", "t", "e", "pi", "π", "2", "3", "0", "1.5", ".5", "10", "(", ")", "+", "-", "−", "*", "·", "×", "/", "^", "**",
    " ", "sin(", "cos(", "tan(", "exp(", "ln(", "log(", "log10(", "sqrt(", "abs(", "asin(", "cosh(", "sinh(", "sin^2(", "(-1)", "sqrt(-1)",
    "f(x) = ", "y = ", "=",
]
JUNK = ["!", "@", "#", "$", "%", "&", "_", "'", '"', "\\", "{", "}", "[", "]", ":", ";", ",", "<", ">", "?", "|", "~",
        "`", "\n", "\t", "\x00", "é", "∞", "√", "ⁿ", "²", "ｘ", "\u202e", "__import__", "os", "floor", "lambda"]


def random_texts() -> st.SearchStrategy[str]:
    """Mostly grammar pieces with a little junk, plain unicode noise, or a valid function with one typo."""
    pieces = st.lists(st.one_of(st.sampled_from(GRAMMAR_PIECES), st.sampled_from(GRAMMAR_PIECES),
                                st.sampled_from(GRAMMAR_PIECES), st.sampled_from(JUNK)), max_size=25)
    return st.one_of(pieces.map("".join), st.text(max_size=40), st.deferred(tree_texts).flatmap(_with_a_typo))


def _with_a_typo(text: str) -> st.SearchStrategy[str]:
    """Insert a piece, delete a character or replace one: the near misses a person (or a model) types."""
    def edit(at: int, how: str, piece: str) -> str:
        return {"insert": text[:at] + piece + text[at:], "delete": text[:at] + text[at + 1:],
                "replace": text[:at] + piece + text[at + 1:]}[how]

    return st.builds(edit, st.integers(0, len(text)), st.sampled_from(["insert", "delete", "replace"]),
                     st.sampled_from(GRAMMAR_PIECES + JUNK))


# --- random expression trees ------------------------------------------------------------------------------------

UNARY = {sympy.sin: "sin", sympy.cos: "cos", sympy.exp: "exp", sympy.log: "ln", sympy.Abs: "abs"}


class Unprintable(Exception):
    """A SymPy object the grammar has no spelling for (I, zoo, nan, ...)."""


def _safe_power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    # SymPy evaluates number^number exactly: keep those small so building a tree never hangs.
    if base.is_number and exponent.is_number:
        try:
            if abs(complex(exponent)) > 8 or abs(complex(base)) > 1e6:
                return base * exponent
        except (TypeError, ValueError):  # zoo, nan: the printer turns the tree down anyway
            return base * exponent
    return base**exponent


def expressions(variables: str = "xt") -> st.SearchStrategy[sympy.Expr]:
    """SymPy trees over one variable, small integers, pi and e, + - * / ^, sin cos exp ln sqrt abs."""
    def trees(var: sympy.Symbol) -> st.SearchStrategy[sympy.Expr]:
        leaves = st.one_of(st.just(var), st.just(var), st.integers(0, 9).map(sympy.Integer),
                           st.sampled_from([sympy.pi, sympy.E, sympy.Rational(1, 2)]))

        def extend(children):
            binary = st.sampled_from([operator.add, operator.sub, operator.mul, operator.truediv, _safe_power])
            return st.one_of(
                st.builds(lambda op, a, b: op(a, b), binary, children, children),
                st.builds(lambda a, n: _safe_power(a, sympy.Integer(n)), children, st.integers(-3, 4)),
                st.builds(lambda f, a: f(a), st.sampled_from([*UNARY, sympy.sqrt]), children),
            )

        return st.recursive(leaves, extend, max_leaves=10)

    return st.sampled_from(variables).map(symbol).flatmap(trees)


def _wrapped(expr: sympy.Expr) -> str:
    """An operand: atoms as they are, anything else in parentheses."""
    text = grammar_text(expr)
    simple = expr.is_Symbol or (expr.is_Integer and expr >= 0) or expr in (sympy.pi, sympy.E) or isinstance(expr, sympy.Function)
    return text if simple else f"({text})"


def grammar_text(expr: sympy.Expr) -> str:
    """expr in the grammar's syntax: '^' for powers, '*' written out, ln for log."""
    if expr.has(sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise Unprintable(expr)
    if expr.is_Symbol:
        return expr.name
    if expr == sympy.pi:
        return "pi"
    if expr == sympy.E:
        return "e"
    if expr.is_Integer:
        return str(expr) if expr >= 0 else f"-{-expr}"
    if expr.is_Rational:
        return f"{expr.p}/{expr.q}" if expr > 0 else f"-{-expr.p}/{expr.q}"
    if expr.is_Add:
        return " + ".join(_wrapped(term) if term.is_Add else grammar_text(term) for term in expr.args)
    if expr.is_Mul:
        return "*".join(_wrapped(factor) for factor in expr.args)
    if expr.is_Pow:
        base, exponent = expr.args
        if exponent == sympy.S.Half:
            return f"sqrt({grammar_text(base)})"
        return f"{_wrapped(base)}^{_wrapped(exponent)}"
    if expr.func in UNARY:
        return f"{UNARY[expr.func]}({grammar_text(expr.args[0])})"
    raise Unprintable(expr)


def tree_texts() -> st.SearchStrategy[str]:
    def printable(expr):
        try:
            return grammar_text(expr)
        except Unprintable:
            return None

    return expressions().map(printable).filter(lambda text: text is not None)


# --- the property ------------------------------------------------------------------------------------------------

def check_fill(text: str) -> str:
    """'accepted' or 'invalid'; any other exception, or a plotted f' that disagrees with SymPy, propagates."""
    try:
        animation = fill(text, filler="rules")
    except InvalidInput:
        return "invalid"
    check_plotted_derivative(animation)
    return "accepted"


def check_plotted_derivative(animation) -> None:
    """The scene's df() (our SymPy-printed numpy source, run here as the scene runs it) against sympy.diff of
    the function parsed afresh, on the window, wherever both are finite; and f'(x0) as the scene shows it."""
    slots, plan = animation.slots, animation.plan
    assert math.isfinite(slots.x_min) and math.isfinite(slots.x_max) and slots.x_min < slots.x0 < slots.x_max
    parsed = parse_function(slots.function)
    var = parsed.variable
    reference = sympy.lambdify(var, sympy.diff(parsed.expr, var), modules="numpy")
    xs = numpy.linspace(slots.x_min, slots.x_max, 97)
    with numpy.errstate(all="ignore"):
        plotted = numpy.broadcast_to(eval(plan.df_source, {"numpy": numpy, plan.variable: xs}), xs.shape)  # noqa: S307
        expected = numpy.broadcast_to(numpy.asarray(reference(xs)), xs.shape)
    plotted, expected = _real(plotted), _real(expected)
    both = numpy.isfinite(plotted) & numpy.isfinite(expected)
    scale = max(1.0, float(numpy.median(numpy.abs(expected[both])))) if both.any() else 1.0
    bad = both & ~numpy.isclose(plotted, expected, rtol=1e-6, atol=1e-9 * scale)
    assert not bad.any(), (slots.function, plan.df_source, xs[bad][:5], plotted[bad][:5], expected[bad][:5])
    at_x0 = complex(sympy.diff(parsed.expr, var).evalf(30, subs={var: slots.x0}))
    assert math.isclose(plan.df_x0, at_x0.real, rel_tol=1e-6, abs_tol=1e-9), (slots.function, plan.df_x0, at_x0)


def _real(values) -> numpy.ndarray:
    values = numpy.asarray(values)
    if numpy.iscomplexobj(values):
        values = numpy.where(numpy.abs(values.imag) < 1e-12, values.real, numpy.nan)
    return values.astype(float)


@PROFILE
@given(random_texts())
@example("x + exp(exp(exp(exp(5))))")  # once hung in evalf
@example("x^(sqrt(-1))")  # once a VisitError
def test_random_text_is_an_animation_or_invalid_input(text):
    check_fill(text)


@PROFILE
@given(tree_texts())
@example("x*(abs(x)^(-1))")  # simplify() once gave Piecewise((zoo, Eq(x, 0)), (0, True)), which numpy cannot print
@example("abs(x)^(4*ln(8^x))")
def test_random_expression_trees_are_an_animation_or_invalid_input(text):
    check_fill(text)


def test_the_printer_round_trips_through_the_grammar():
    x = symbol("x")
    for expr in (x**2 * sympy.sin(x), sympy.exp(-x) / (x + 1), sympy.sqrt(sympy.Abs(x - 3)), (x + 1) ** -2 - sympy.pi,
                 sympy.log(x) ** x, -x / 3, sympy.cos(sympy.E * x) ** sympy.Rational(1, 2)):
        assert sympy.simplify(parse_function(grammar_text(expr)).expr - expr) == 0, grammar_text(expr)
