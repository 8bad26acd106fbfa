"""The generated scene: valid Python with one method per phase, called in order from construct(); the public
fill() result; user text never copied into the code."""

import ast
from functools import cache

import pytest
import sympy

from derivanim import Animation, fill
from derivanim.errors import InvalidInput
from derivanim.grammar import parse_function
from derivanim.slots import Slots

PHASES = [
    "show_title", "draw_axes_and_graph", "secant_to_tangent", "tangent_at_x0",
    "show_derivation", "show_result", "draw_derivative_graph", "sweep_tangent",
]
FUNCTIONS = [
    "sin(x^2)", "f(x) = x^2", "g(t) = t^3 - 2t", "y = x sin(x)", "ln(x)", "tan(x)", "1/(x-1)", "abs(x)",
    "x^x", "e^(-x^2)", "asin(x)", "3x^2+2cos(x)", "sinh(x)/x", "(x+1)(x-1)", "7",
    "x^3*sin(x) + ln(x^2+1) - e^(2x)/x",
]


@cache
def _filled(text: str) -> Animation:
    return fill(text)


@cache
def _scene_class(text: str) -> ast.ClassDef:
    module = ast.parse(_filled(text).code)
    classes = [node for node in module.body if isinstance(node, ast.ClassDef) and node.name == "DerivativeVisualization"]
    assert len(classes) == 1
    return classes[0]


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}


def _string_literals(code: str) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


@pytest.mark.parametrize("text", FUNCTIONS)
def test_scene_is_a_manim_scene_class(text):
    cls = _scene_class(text)
    assert [base.id for base in cls.bases if isinstance(base, ast.Name)] == ["Scene"]
    compile(_filled(text).code, "derivative.py", "exec")


@pytest.mark.parametrize("text", FUNCTIONS)
def test_construct_calls_the_eight_phases_in_order(text):
    construct = _methods(_scene_class(text))["construct"]
    calls = []
    for statement in construct.body:
        assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call), ast.unparse(statement)
        function = statement.value.func
        assert isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name)
        assert function.value.id == "self" and not statement.value.args and not statement.value.keywords
        calls.append(function.attr)
    assert calls == PHASES


@pytest.mark.parametrize("text", FUNCTIONS)
def test_each_phase_method_exists_with_a_docstring(text):
    methods = _methods(_scene_class(text))
    for phase in PHASES:
        assert phase in methods, phase
        assert ast.get_docstring(methods[phase]), phase


@pytest.mark.parametrize("text", FUNCTIONS)
def test_plots_with_axes_plot_and_moving_numbers_with_decimal_number(text):
    code = _filled(text).code
    assert ".plot(" in code
    assert "DecimalNumber(" in code
    assert "import numpy" in code and "eval(" not in code and "exec(" not in code


@pytest.mark.parametrize("text", ["f(x) = x^2", "g(t) = t^3 - 2t", "y = x sin(x)", "3x^2+2cos(x)", "sin^2(x)", "(x+1)(x-1)"])
def test_user_text_never_appears_raw(text):
    animation = _filled(text)
    body = text.partition("=")[2].strip() or text
    assert text not in animation.code and body not in animation.code
    parsed = parse_function(text)
    literals = _string_literals(animation.code)
    assert not any(text in literal or body in literal for literal in literals)
    # What does describe f comes from SymPy's printers.
    assert sympy.latex(parsed.expr) in literals  # F_TEX
    assert animation.plan.df_latex in literals  # DF_TEX
    assert parsed.name in literals and str(parsed.variable) in literals  # NAME, VAR


@pytest.mark.parametrize("text", FUNCTIONS)
def test_fill_returns_slots_derivative_and_code(text):
    animation = _filled(text)
    parsed = parse_function(text)
    assert isinstance(animation.slots, Slots)
    assert animation.slots.variable == str(parsed.variable) and animation.slots.name == parsed.name
    assert animation.filler == "rules"
    assert "class DerivativeVisualization(Scene)" in animation.code
    # .derivative_sympy is our own SymPy printer's output, so reading it back with sympify is safe.
    var = parsed.variable
    derivative = sympy.sympify(animation.derivative_sympy, locals={str(var): var})
    assert sympy.simplify(derivative - sympy.diff(parsed.expr, var)) == 0


def test_fill_of_words_with_the_rules_filler_is_invalid_input():
    with pytest.raises(InvalidInput):
        fill("Teach the product rule", filler="rules")


@pytest.mark.parametrize("text", ["sin(x", "floor(x)", "x + y", ""])
def test_fill_of_a_bad_function_is_invalid_input(text):
    with pytest.raises(InvalidInput):
        fill(text)


def test_fill_rejects_an_unknown_filler():
    with pytest.raises(ValueError, match="filler"):
        fill("sin(x)", filler="magic")
