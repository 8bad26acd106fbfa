"""derivanim.steps: a textbook derivation, line by line, that is right at every line."""

import cmath
import re
import shutil

import pytest
import sympy

from derivanim.grammar import parse_function, symbol
from derivanim.steps import Step, derivation_steps

FUNCTIONS = [
    # constants, polynomials and powers
    "7", "x", "2x+1", "x^2", "-x^4", "3x^2+2x+1", "x^5 - 4x^3 + x", "(x^2+1)^3", "pi*x^2",
    "1/x", "x^(1/3)", "sqrt(x)", "sqrt(x^2+1)", "sqrt(sin(x))",
    # products and quotients
    "x^3*sin(x)", "x*sin(x)*cos(x)", "x^2*e^x", "x*ln(x)", "x*e^(-x)", "(x+1)*(x-1)*x^2", "x^2*e^x*sin(x)",
    "sin(x)/x", "(x^2+1)/(x^3+1)", "e^x/x", "x/(x+1)^2", "sin(x)/cos(x)", "1/(x-1)", "3/(x^2+1)", "sqrt(x)/(x+1)",
    # exponentials and logarithms
    "e^x", "e^(-x^2)", "2^x", "2^(x^2)", "e^(e^(e^x))", "ln(x)", "ln(x^2+1)", "log10(x)", "log2(x^2+1)", "3*log10(x)",
    # trigonometric, inverse trigonometric, hyperbolic
    "sin(x^2)", "cos(3x)", "-cos(x)", "tan(x)^2", "sec(x)+csc(x)+cot(x)", "sin(x)^2 + cos(x)^2",
    "asin(x)", "acos(x^2)", "atan(2x)",
    "sinh(2x)", "cosh(x)^2", "tanh(x)", "asinh(x)", "acosh(x)", "atanh(x/2)",
    # absolute value and u^v
    "abs(x)", "abs(x^2-1)", "x^x", "sin(x)^cos(x)", "x^sin(x)",
    # a longer one
    "x^3*sin(x) + ln(x^2+1) - e^(2x)/x",
]
POINTS = [0.3, 0.45, 0.7, 1.3, 1.7, 2.6]  # away from 0 and 1, inside asin's and acosh's domains in turn


def _steps(text: str, max_steps: int = 12) -> tuple[list[Step], sympy.Symbol]:
    parsed = parse_function(text)
    return derivation_steps(parsed.expr, parsed.variable, max_steps), parsed.variable


def _value(expr: sympy.Expr, var: sympy.Symbol, point: float) -> complex | None:
    """expr at var = point, or None where it is undefined or not real."""
    value = expr.evalf(20, subs={var: point})
    if not value.is_number or value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return None
    value = complex(value)
    return value if cmath.isfinite(value) and abs(value.imag) < 1e-12 else None


def _rules(text: str) -> list[str]:
    return [step.rule for step in _steps(text, max_steps=50)[0]]


def test_there_are_enough_functions():
    assert len(FUNCTIONS) >= 40


@pytest.mark.parametrize("text", FUNCTIONS)
def test_every_line_is_right(text):
    steps, var = _steps(text, max_steps=50)
    for step in steps:
        truth = sympy.diff(step.expression, var)
        pairs = [(_value(step.derivative, var, p), _value(truth, var, p)) for p in POINTS]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        assert len(pairs) >= 2, f"{step.latex}: too few points where it is defined"
        for shown, expected in pairs:
            assert shown == pytest.approx(expected, rel=1e-9, abs=1e-9), step.latex


@pytest.mark.parametrize("text", FUNCTIONS)
def test_the_shape_of_the_derivation(text):
    parsed = parse_function(text)
    steps = derivation_steps(parsed.expr, parsed.variable)
    assert steps[0].expression == parsed.expr and steps[0].depth == 0
    assert all(step.depth >= 1 for step in steps[1:])
    assert all(later.depth <= earlier.depth + 1 for earlier, later in zip(steps, steps[1:]))
    assert all(step.expression.has(parsed.variable) for step in steps[1:])


def _balanced(line: str) -> bool:
    depth = 0
    for token in re.findall(r"\\[{}]|[{}]", line):
        if token in "{}":
            depth += 1 if token == "{" else -1
            if depth < 0:
                return False
    return depth == 0 and line.count(r"\left") == line.count(r"\right")


@pytest.mark.parametrize("text", FUNCTIONS)
def test_every_line_is_one_balanced_mathtex_line(text):
    for step in _steps(text, max_steps=50)[0]:
        assert step.latex.startswith(r"\frac{d}{dx}\left[")
        assert "\n" not in step.latex and _balanced(step.latex), step.latex
        assert not re.search(r"(^|\s)\{\{", step.latex), "MathTex would split the line at {{"
        assert "**" not in step.latex and "log" not in step.latex  # printed by SymPy, in textbook notation


def test_product_rule_then_its_parts():
    steps, _ = _steps("x^3*sin(x)")
    assert [s.rule for s in steps] == ["product rule", "power rule", "trigonometric rule"]
    assert [s.depth for s in steps] == [0, 1, 1]
    assert steps[0].latex == (
        r"\frac{d}{dx}\left[x^{3} \sin{\left(x \right)}\right] = "
        r"3 x^{2} \sin{\left(x \right)} + x^{3} \cos{\left(x \right)}"
    )


def test_three_factors_use_the_general_product_rule():
    steps, _ = _steps("x*sin(x)*cos(x)")
    assert steps[0].rule == "product rule"
    assert len(sympy.Add.make_args(steps[0].derivative)) == 3


def test_quotient_rule_shows_u_prime_v_minus_u_v_prime_over_v_squared():
    steps, _ = _steps("sin(x)/x")
    assert steps[0].rule == "quotient rule"
    assert steps[0].latex.endswith(r"= \frac{x \cos{\left(x \right)} - \sin{\left(x \right)}}{x^{2}}")


def test_the_quotient_rule_lists_u_prime_and_v_prime_even_when_one_is_a_number():
    steps, _ = _steps("(x^2+1)/(x-1)")
    assert [s.latex for s in steps[1:]] == [r"\frac{d}{dx}\left[x^{2} + 1\right] = 2 x",
                                             r"\frac{d}{dx}\left[x - 1\right] = 1"]
    assert [s.rule for s in _steps("(2x+1)*e^x")[0]] == ["product rule", "sum rule", "exponential rule"]


@pytest.mark.parametrize("text", ["1/(x-1)", "3/(x^2+1)", "x*e^(-x)"])
def test_a_constant_over_g_or_a_negative_exponent_is_not_a_quotient(text):
    assert "quotient rule" not in _rules(text)


def test_chain_rule_shows_outer_prime_of_inner_times_inner_prime():
    steps, _ = _steps("sin(x^2)")
    assert [s.rule for s in steps] == ["chain rule", "power rule"]
    assert steps[0].latex.endswith(r"= \cos{\left(x^{2} \right)} \cdot 2 x")
    assert "trigonometric rule" in steps[0].note


@pytest.mark.parametrize(("text", "rule"), [
    ("7", "constant rule"), ("x", "identity rule"), ("2x+1", "sum rule"), ("3x^2", "constant multiple rule"),
    ("x^3", "power rule"), ("sqrt(x)", "square root rule"), ("e^x", "exponential rule"), ("2^x", "exponential rule"),
    ("ln(x)", "logarithm rule"), ("log10(x)", "logarithm rule"), ("sec(x)", "trigonometric rule"),
    ("atan(x)", "inverse trigonometric rule"), ("tanh(x)", "hyperbolic rule"), ("abs(x)", "absolute value rule"),
    ("x^x", "logarithmic differentiation"), ("sin(x)^cos(x)", "logarithmic differentiation"),
    ("sinh(2x)", "chain rule"), ("e^(e^(e^x))", "chain rule"),
])
def test_the_outermost_rule(text, rule):
    assert _rules(text)[0] == rule


def test_logarithmic_differentiation():
    steps, _ = _steps("x^x")
    assert steps[0].latex.endswith(r"= x^{x} \cdot \left(\ln{\left(x \right)} + 1\right)")
    assert "ln y" in steps[0].note


def test_absolute_value_notes_where_it_is_not_differentiable():
    assert "not differentiable where $x = 0$" in _steps("abs(x)")[0][0].note
    assert "not differentiable where $x^{2} - 1 = 0$" in _steps("abs(x^2-1)")[0][0].note


def test_nested_chain_rules_go_inward():
    steps, _ = _steps("e^(e^(e^x))")
    assert [(s.rule, s.depth) for s in steps] == [("chain rule", 0), ("chain rule", 1), ("exponential rule", 2)]


def test_lines_that_add_nothing_are_left_out():
    assert _rules("sin(2x)") == ["chain rule"]  # d/dx[2x] = 2 is read off at sight
    assert _rules("x*sin(x)") == ["product rule", "trigonometric rule"]  # no d/dx[x] = 1
    assert _rules("ln(x^2+1)") == ["chain rule", "sum rule"]  # no d/dx[x^2] = 2x right after d/dx[x^2 + 1] = 2x


def test_the_variable_name_is_used():
    steps, _ = _steps("g(t) = t^3")
    assert steps[0].latex == r"\frac{d}{dt}\left[t^{3}\right] = 3 t^{2}"
    steps = derivation_steps(sympy.sin(symbol("u") ** 2), symbol("u"))
    assert all(s.latex.startswith(r"\frac{d}{du}") for s in steps)


@pytest.mark.parametrize("text", ["x^3*sin(x) + ln(x^2+1) - e^(2x)/x", "x^2*e^x*sin(x)", "e^(e^(e^x))"])
def test_max_steps_keeps_the_shallowest_lines_in_reading_order(text):
    full, _ = _steps(text, max_steps=50)
    for limit in range(1, len(full) + 1):
        kept, _ = _steps(text, max_steps=limit)
        assert len(kept) == limit
        assert [full.index(step) for step in kept] == sorted(full.index(step) for step in kept)
        dropped = [step for step in full if step not in kept]
        assert not dropped or max(s.depth for s in kept) <= min(s.depth for s in dropped)


def test_default_max_steps_is_twelve():
    assert len(_steps("x^3*sin(x) + ln(x^2+1) - e^(2x)/x + x*sin(x)*cos(x) + sqrt(sin(x))", max_steps=50)[0]) > 12
    assert len(_steps("x^3*sin(x) + ln(x^2+1) - e^(2x)/x + x*sin(x)*cos(x) + sqrt(sin(x))")[0]) == 12


def test_max_steps_must_be_positive():
    with pytest.raises(ValueError):
        derivation_steps(symbol("x") ** 2, symbol("x"), max_steps=0)


def test_a_function_outside_the_grammar_still_gets_a_right_line():
    x = symbol("x")
    (step,) = derivation_steps(sympy.erf(x), x)
    assert step.rule == "differentiation" and sympy.simplify(step.derivative - sympy.diff(sympy.erf(x), x)) == 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("latex") is None, reason="needs a LaTeX installation")
def test_lines_compile_in_mathtex(tmp_path):
    from manim import MathTex, tempconfig

    lines = [step.latex for text in ["x^3*sin(x)", "sin(x)/x", "x^x", "abs(x)", "log10(x) + tanh(x) + acosh(x)"]
             for step in _steps(text)[0]]
    with tempconfig({"media_dir": str(tmp_path)}):
        for line in lines:
            assert len(MathTex(line).submobjects) > 0, line
