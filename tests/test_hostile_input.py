"""Hostile and awkward input: nothing runs, nothing crashes, the limits hold, and only SymPy writes the code.

Text from people and from a model goes through the grammar and verify only. These tests feed both
injection attempts and mathematically awkward functions through the CLI, fill() and verify(), and check
that the answer is always a verified animation or the project's InvalidInput (exit code 2, one line).
"""

import ast
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import sympy

import derivanim.api
from derivanim import InvalidInput, fill
from derivanim.grammar import MAX_LENGTH, SUPPORTED_FUNCTIONS, parse_function
from derivanim.slots import Slots
from derivanim.verify import verify

from fake_model import model_answering

SENTINEL = "pwned"  # what the injection attempts below would create if any of them ran
SECONDS = 10.0  # "within a few seconds", with room for a loaded two-core machine
CLI_SECONDS = 20.0  # the same, plus Python's and SymPy's start-up with three processes sharing the cores

HOSTILE = {
    "python import": "__import__('os').system('touch pwned')",
    "attribute": "x.__class__",
    "dunder chain": "x.__class__.__base__.__subclasses__()",
    "lambda": "lambda: 1",
    "exec": "exec('1')",
    "eval": "eval('open(\"pwned\",\"w\")')",
    "open": "open('/etc/passwd')",
    "open for writing": "open('pwned', 'w').write('x')",
    "semicolon": "x; import os",
    "f-string": "f'{__import__(\"os\")}'",
    "latex input": r"\input{/etc/passwd}",
    "latex write18": r"}\write18{touch pwned}",
    "latex in a name": r"\sin(x)",
    "latex closing math": r"x$ \immediate\write18{touch pwned} $",
    "triple quotes": '"""',
    "docstring escape": 'x"""; import os; os.system("touch pwned"); """',
    "jinja": "{{ 7*7 }}",
    "jinja block": "{% for a in b %}x{% endfor %}",
    "backslash": "\\",
    "backslashes": "x\\\\n",
    "newline": "x\n+1",
    "newline code": "x\nimport os\nos.system('touch pwned')",
    "carriage return": "x\r+1",
    "tab": "x\t\t+1",
    "unicode line separator": "x\u2028+1",
    "right-to-left override": "x\u202e+1",
    "very long": "x+" * 2000 + "x",
    "just too long": "x" * (MAX_LENGTH + 1),
    "deep nesting": "(" * 200 + "x" + ")" * 200,
    "deep nesting within length": "(" * 40 + "x" + ")" * 40,
    "deep calls": "sin(" * 30 + "x" + ")" * 30,
    "huge exponent": "x^99999999",
    "tower": "10^(10^10)",
    "power tower": "9^9^9^9",
    "power of a power": "(x^50)^50",
    "exponent of a call": "sin(x)^(10^10)",
    "exp tower": "x + exp(exp(exp(exp(5))))",  # once hung in SymPy's evalf while printing the Add
    "exp tower as a constant": "exp(exp(exp(exp(5))))",
    "sinh of a huge number": "sinh(1000) + x",
    "complex exponent": "x^(sqrt(-1))",  # once a lark VisitError (complex to float), not InvalidInput
    "complex exponent of a number": "2^((-1)^(1/2))",
    "factorial": "x!",
    "factorial name": "factorial(x)",
    "gamma": "gamma(x)",
    "huge literal": "9" * 150,
    "long decimal": "1." + "0" * 40 + "1",
    "division by zero": "x/0",
    "zero to a negative power": "0^(-1)",
    "empty": "",
    "blank": "   ",
    "unbalanced": "sin(x",
    "two variables": "x*y",
    "unknown function": "floor(x)",
    "emoji code": "x:thumbs_up:",
    "rich markup": "[bold red]x[/]",
}
# argv cannot carry NUL, so these go through fill() only.
NOT_FOR_ARGV = {"NUL": "x\x00", "NUL code": "x\x00__import__('os')"}
# A process costs ~1.5 s of start-up, so the CLI gets one of each kind; fill() gets them all.
THROUGH_CLI = [
    "python import", "attribute", "lambda", "exec", "open", "open for writing", "latex input", "latex write18",
    "triple quotes", "docstring escape", "jinja", "backslash", "newline code", "very long", "deep nesting",
    "huge exponent", "tower", "power tower", "exp tower", "complex exponent", "factorial", "huge literal", "emoji code", "rich markup",
]


def run_cli(text: str, cwd: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    # Options first and `--` before the text, so that a text starting with '-' is not read as an option.
    command = [sys.executable, "-m", "derivanim.cli", "make", "--filler", "rules", "--no-render", "-o", str(out),
               "--", text]
    started = time.monotonic()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    return result, time.monotonic() - started


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Every hostile text through the CLI, a few processes at a time: {label: (cwd, out, result, seconds)}."""
    def one(label):
        cwd = tmp_path_factory.mktemp("cwd")
        out = cwd / "out"
        result, seconds = run_cli(HOSTILE[label], cwd, out)
        return label, (cwd, out, result, seconds)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(one, THROUGH_CLI))


@pytest.mark.parametrize("label", THROUGH_CLI)
def test_cli_rejects_hostile_text_with_one_line_and_exit_code_2(label, cli_results):
    cwd, out, result, seconds = cli_results[label]
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert seconds < CLI_SECONDS
    # Nothing was written and nothing ran: no output folder, no sentinel, no file at all in the working folder.
    assert not out.exists()
    assert list(cwd.iterdir()) == []
    assert not (Path.cwd() / SENTINEL).exists()
    assert "root:" not in result.stderr  # /etc/passwd was not read


@pytest.mark.parametrize("text", list(HOSTILE.values()) + list(NOT_FOR_ARGV.values()),
                         ids=list(HOSTILE) + list(NOT_FOR_ARGV))
def test_fill_rejects_hostile_text(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(InvalidInput) as error:
        fill(text, filler="rules")
    assert time.monotonic() - started < SECONDS
    message = str(error.value)
    assert message and "\n" not in message and len(message) < 2 * MAX_LENGTH + 200
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, says", [
    ("x" * 5000, "at most"),
    ("(" * 40 + "x" + ")" * 40, "nested"),
    ("x^99999999", "too large"),
    ("10^(10^10)", "too large"),
    ("9^9^9^9", "too large"),
    ("(x^50)^50", "too large"),
    ("exp(exp(exp(exp(5))))", "too large"),
    ("cosh(cosh(cosh(5))) + x", "too large"),
    ("9" * 150, "digits"),
    ("x!", "'!'"),
    ("floor(x)", "supported"),
    ("x\n+1", "control character"),
])
def test_limits_say_what_is_wrong(text, says):
    with pytest.raises(InvalidInput, match=says):
        fill(text, filler="rules")


# --- nothing from the input reaches the code except through SymPy -------------------------------------------

def _string_constants(code: str) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


@cache
def template_strings(name: str, var: str) -> set[str]:
    """String constants that belong to the template: those shared by the scenes of two unrelated functions."""
    first, second = (fill(f"{name}({var}) = {body}", filler="rules").code for body in (f"{var}^2", f"sin(3{var})"))
    return set(_string_constants(first)) & set(_string_constants(second))


@pytest.mark.parametrize("text", ["−x·2", "π x", "  3x  ×  sin( x )  ", "y = −π·x^2", "g(t)=t ** 2 − 1", "2cos(x)  + x·e^x"])
def test_odd_spelling_reaches_the_code_only_as_sympy_output(text):
    animation = fill(text, filler="rules")
    plan = animation.plan
    parsed = parse_function(text)
    name, var = plan.name, plan.variable
    from_sympy = {plan.f_latex, plan.df_latex, name, var, f"{name}({var})"}
    for page in plan.derivation_pages:
        for line in page:
            from_sympy |= {line.latex, line.rule + (f" ({line.note})" if line.note else "")}
    docstring = ast.parse(animation.code).body[0].value.value
    assert docstring.startswith(f"The derivative of {name}({var}) = {parsed.expr},")  # SymPy's str(), not the text
    for constant in _string_constants(animation.code):
        assert constant in template_strings(name, var) or constant in from_sympy or constant == docstring, constant
    # The text as typed (its unicode operators, its spacing) appears nowhere in the code.
    for typed in {"−", "·", "×", "π", text.strip()}:
        if typed in text:
            assert typed not in animation.code
    # And the code's own numbers agree with SymPy's.
    assert sympy.latex(parsed.expr, ln_notation=True, inv_trig_style="full") == plan.f_latex


# --- awkward functions: a verified animation or a clear InvalidInput, never anything else -------------------

def _check_verified(animation) -> None:
    slots, plan = animation.slots, animation.plan
    assert math.isfinite(slots.x_min) and math.isfinite(slots.x_max) and slots.x_min < slots.x_max
    assert slots.x_min < slots.x0 < slots.x_max
    assert math.isfinite(plan.f_x0) and math.isfinite(plan.df_x0)
    ast.parse(animation.code)
    # The plotted f'(x0) is SymPy's derivative there.
    parsed = parse_function(slots.function)
    expected = float(sympy.diff(parsed.expr, parsed.variable).evalf(30, subs={parsed.variable: slots.x0}))
    assert plan.df_x0 == pytest.approx(expected, rel=1e-6, abs=1e-9)


AWKWARD_OK = ["5", "-3.5", "pi", "sin(1/x)", "x^x", "abs(x)", "e^(e^(e^x))", "1/(x^2-1)", "tan(x)^2", "x^(1/3)",
              "ln(ln(x))", "sqrt(x)", "1/x", "x^-100", "x sin(1/x)", "sin(x)^2 + cos(x)^2", "abs(x^2-1)",
              "asin(x+10)", "e^(-1/x^2)", "x/abs(x)"]


@pytest.mark.parametrize("text", AWKWARD_OK)
def test_awkward_functions_give_a_verified_animation(text):
    started = time.monotonic()
    animation = fill(text, filler="rules")
    assert time.monotonic() - started < SECONDS
    _check_verified(animation)


def test_a_constant_has_derivative_zero():
    animation = fill("5", filler="rules")
    assert animation.derivative == "0"
    assert animation.plan.df_x0 == 0


def test_abs_says_where_it_is_not_differentiable_and_keeps_x0_away():
    animation = fill("abs(x)", filler="rules")
    notes = [line.note for page in animation.plan.derivation_pages for line in page]
    assert any("not differentiable" in note and "x = 0" in note for note in notes), notes
    width = animation.slots.x_max - animation.slots.x_min
    assert abs(animation.slots.x0) > 0.05 * width
    assert "not differentiable" in animation.code  # the note reaches the scene's derivation phase


def test_two_poles_are_two_breaks():
    plan = fill("1/(x^2-1)", filler="rules").plan
    assert len(plan.f_breaks) == 2
    assert sorted(plan.f_breaks) == pytest.approx([-1, 1], abs=0.02)
    assert all(abs(plan.x0 - pole) > 0.1 for pole in (-1, 1))


def test_x_to_the_x_lives_on_the_positive_axis():
    animation = fill("x^x", filler="rules")
    assert animation.slots.x_min >= 0 and animation.slots.x0 > 0


def test_no_real_values_is_a_clear_error():
    with pytest.raises(InvalidInput, match="no real values"):
        fill("sqrt(-1-x^2)", filler="rules")


@pytest.mark.parametrize("text", ["floor(x)", "gamma(x)", "max(x, 1)", "sign(x)"])
def test_unsupported_names_list_the_supported_ones(text):
    with pytest.raises(InvalidInput) as error:
        fill(text, filler="rules")
    assert SUPPORTED_FUNCTIONS in str(error.value) or "supported" in str(error.value)


# --- model output is input too --------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
MODEL_SLOTS = {  # label: (slots as a model might emit them, what verify must do: a word in the repair, or None to reject)
    "window reversed": (dict(function="x^2", x_min=3, x_max=-3, x0=1), "reversed"),
    "window NaN": (dict(function="x^2", x_min=NAN, x_max=3, x0=1), "not finite"),
    "window infinite": (dict(function="x^2", x_min=-INF, x_max=INF, x0=1), "not finite"),
    "x0 infinite": (dict(function="x^2", x_min=-3, x_max=3, x0=INF), "not a number"),
    "x0 at a pole": (dict(function="1/(x-1)", x_min=-3, x_max=3, x0=1), "discontinuity"),
    "x0 at tan's pole": (dict(function="tan(x)", x_min=-3, x_max=3, x0=math.pi / 2), "discontinuity"),
    "x0 at abs's corner": (dict(function="abs(x)", x_min=-3, x_max=3, x0=0), "not differentiable"),
    "x0 outside the window": (dict(function="x^2", x_min=-3, x_max=3, x0=50), "outside"),
    "x0 outside the domain": (dict(function="ln(x)", x_min=-3, x_max=3, x0=-2), "x0"),
    "window outside the domain": (dict(function="ln(x)", x_min=-3, x_max=-1, x0=-2), "real and finite"),
    "variable not in the function": (dict(function="sin(x)", variable="t", x_min=-3, x_max=3, x0=1), "variable"),
    "name against the header": (dict(function="g(t) = t^2", name="f", x_min=-3, x_max=3, x0=1), "name"),
    "window of width 0": (dict(function="x^2", x_min=1, x_max=1, x0=1), "narrower"),
    "window 1e9 wide": (dict(function="x^2", x_min=-5e8, x_max=5e8, x0=1), "beyond"),
    "window of 1e300": (dict(function="x^2", x_min=-1e300, x_max=1e300, x0=1e300), "beyond"),
    "python in the function": (dict(function="os.system('x')", x_min=-3, x_max=3, x0=1), None),
    "import in the function": (dict(function="__import__('os')", x_min=-3, x_max=3, x0=1), None),
    "latex in the function": (dict(function=r"\input{/etc/passwd}", x_min=-3, x_max=3, x0=1), None),
    "newline in the function": (dict(function="x\nimport os", x_min=-3, x_max=3, x0=1), None),
    "two variables": (dict(function="x*y", x_min=-3, x_max=3, x0=1), None),
    "no real values": (dict(function="sqrt(-1-x^2)", x_min=-3, x_max=3, x0=0), None),
    "unsupported function": (dict(function="floor(x)", x_min=-3, x_max=3, x0=1), None),
}


def _check_repaired_slots(slots: Slots) -> None:
    assert all(math.isfinite(v) for v in (slots.x_min, slots.x_max, slots.x0))
    assert slots.x_min < slots.x0 < slots.x_max
    assert slots.x_max - slots.x_min <= 2000


@pytest.mark.parametrize("label", MODEL_SLOTS)
def test_verify_repairs_or_rejects_model_slots(label):
    emitted, repair = MODEL_SLOTS[label]
    slots = Slots(**emitted)
    if repair is None:
        with pytest.raises(InvalidInput):
            verify(slots)
        return
    verified = verify(slots)
    assert verified.requested == slots
    assert any(repair in text for text in verified.repairs), verified.repairs
    _check_repaired_slots(verified.slots)
    parsed = parse_function(verified.slots.function)
    assert str(parsed.variable) == verified.slots.variable and parsed.name == verified.slots.name


@pytest.mark.parametrize("label", MODEL_SLOTS)
def test_fill_with_a_fake_model_shows_the_repairs(label, monkeypatch):
    emitted, repair = MODEL_SLOTS[label]
    slots = Slots(**emitted)
    monkeypatch.setattr(derivanim.api, "model_slots", model_answering(slots))
    if repair is None:
        with pytest.raises(InvalidInput):
            fill("Teach the derivative of something", filler="model")
        return
    animation = fill("Teach the derivative of something", filler="model")
    assert animation.filler == "model"
    assert animation.requested_slots == slots
    assert any(repair in text for text in animation.repairs), animation.repairs
    assert animation.to_dict()["repairs"] == list(animation.repairs)
    _check_verified(animation)


def test_auto_filler_sends_words_to_the_model_and_keeps_its_repairs(monkeypatch):
    slots = Slots(function="x*sin(x)", x_min=4, x_max=-4, x0=INF)
    monkeypatch.setattr(derivanim.api, "model_slots", model_answering(slots))
    animation = fill("Teach the product rule with x*sin(x)")
    assert animation.filler == "model"
    assert len(animation.repairs) == 2
    _check_verified(animation)


def test_a_function_the_model_did_not_copy_from_the_request_gets_a_caution(tmp_path, monkeypatch, capsys):
    from derivanim.api import written_in
    from derivanim.cli import main

    assert written_in("x^2*e^(-x)", "Animate f'(x) for f(x) = x^2 * e^(-x)")  # spaces and '*' aside
    assert written_in("2x - 3", "why the slope of x^2-3x is 2*x - 3?")
    assert not written_in("x^3+sin(x)", "Animate very slowly x^3")
    made_up = Slots(function="x^3+sin(x)", x_min=-3, x_max=3, x0=1)  # what the shipped adapter wrote for that
    monkeypatch.setattr(derivanim.api, "model_slots", model_answering(made_up))
    animation = fill("Animate very slowly x^3")
    assert animation.filler == "model" and len(animation.cautions) == 1 and "x^3+sin(x)" in animation.cautions[0]
    assert animation.to_dict()["cautions"] == list(animation.cautions)
    assert fill("Animate very slowly x^3 + sin(x)").cautions == ()
    assert fill("x^3+sin(x)", filler="rules").cautions == ()
    assert main(["make", "--no-render", "-o", str(tmp_path), "Animate very slowly x^3"]) == 0
    assert "caution: the model's function x^3+sin(x) is not written in the request" in capsys.readouterr().err


def test_a_model_function_is_parsed_never_evaluated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for function in ("__import__('os').system('touch pwned')", "open('pwned','w')"):
        slots = Slots(function=function, x_min=-3, x_max=3, x0=1)
        monkeypatch.setattr(derivanim.api, "model_slots", model_answering(slots))
        with pytest.raises(InvalidInput):
            fill("Teach the chain rule please", filler="model")
    assert not (tmp_path / SENTINEL).exists()


def test_plotted_values_are_finite_numbers():
    """The numbers the template writes are plain finite floats (no NaN or inf literal can reach the code)."""
    for text in ("1/(x^2-1)", "tan(x)^2", "e^(e^(e^x))", "x^-100"):
        plan = fill(text, filler="rules").plan
        values = [plan.x_min, plan.x_max, plan.x0, plan.f_x0, plan.df_x0, plan.h0, *np.ravel(plan.sweep),
                  *np.ravel(plan.f_dots), *np.ravel(plan.df_dots),
                  *np.ravel(plan.f_segments), *np.ravel(plan.df_segments), *plan.f_breaks]
        assert all(math.isfinite(v) for v in values), text
