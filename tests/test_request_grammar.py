"""The request grammar (grammars/request.lark): the phrasings people type around a function are read without the
model and give the intended function, variable, x0 and window; sentences still go to the model, with the x0 and
window they write; fill()'s and the CLI's x0 and window win and go through verification like any slot."""

import json
import math

import pytest
import sympy

import derivanim.api
from derivanim import InvalidInput, fill
from derivanim.api import looks_like_words
from derivanim.grammar import Settings, find_settings, parse_function, read_request
from derivanim.slots import Slots

from fake_model import model_answering

x, t = (sympy.Symbol(letter, real=True) for letter in "xt")
pi = math.pi

# request: (the function as written, the variable the request names, x0, window)
PHRASINGS = {
    "derivative of x^2": ("x^2", None, None, None),
    "the derivative of sin(x)/x": ("sin(x)/x", None, None, None),
    "Derivative of x^2?": ("x^2", None, None, None),
    "What is the derivative of ln(x^2+1)?": ("ln(x^2+1)", None, None, None),
    "find the derivative of f(x) = x^3 - 3x.": ("f(x) = x^3 - 3x", None, None, None),
    "differentiate x^3": ("x^3", None, None, None),
    "Differentiate t^2 + 1 with respect to t": ("t^2 + 1", "t", None, None),
    "differentiate x^3 wrt x": ("x^3", "x", None, None),
    "d/dx x^2": ("x^2", "x", None, None),
    "d/dx (x^2+1)": ("x^2+1", "x", None, None),
    "d/dx[e^(2x)]": ("e^(2x)", "x", None, None),
    "d/dt t^3": ("t^3", "t", None, None),
    "d/dt (t^3 - 2t)": ("t^3 - 2t", "t", None, None),
    "sin(x^2)'": ("sin(x^2)", None, None, None),
    "(x^2+1)'": ("x^2+1", None, None, None),
    "slope of x^2 at x = 1": ("x^2", None, 1.0, None),
    "the slope of the tangent to ln(x) at x = 2": ("ln(x)", None, 2.0, None),
    "tangent line of x^3 - x at x = -1": ("x^3 - x", None, -1.0, None),
    "tangent to sqrt(x) at x = 2": ("sqrt(x)", None, 2.0, None),
    "Tangent line to e^x at 0.5": ("e^x", None, 0.5, None),
    "2x^2+3x+1 at x = 2": ("2x^2+3x+1", None, 2.0, None),
    "x^3 - 3x on [-2, 2]": ("x^3 - 3x", None, None, (-2.0, 2.0)),
    "tan(x) on (-pi/2, pi/2)": ("tan(x)", None, None, (-pi / 2, pi / 2)),
    "sin(x) over [0, 2pi]": ("sin(x)", None, None, (0.0, 2 * pi)),
    "e^x for x from 0 to 5": ("e^x", None, None, (0.0, 5.0)),
    "x^2, x from -1 to 3": ("x^2", None, None, (-1.0, 3.0)),
    "atan(x) between -3 and 3": ("atan(x)", None, None, (-3.0, 3.0)),
    "x^2 for x in [0, 4]": ("x^2", None, None, (0.0, 4.0)),
    "x^2 with x0 = 1.5": ("x^2", None, 1.5, None),
    "g(t) = e^(-t) with t0 = 0.5": ("g(t) = e^(-t)", None, 0.5, None),
    "derivative of x^2 on [-2, 2] at x = 1": ("x^2", None, 1.0, (-2.0, 2.0)),
    "tangent line of cos(x) at x = pi/4, for x from -pi to pi": ("cos(x)", None, pi / 4, (-pi, pi)),
    "DERIVATIVE OF x^2 AT x = 3 ON [0, 5]": ("x^2", None, 3.0, (0.0, 5.0)),
    "sin(x)": ("sin(x)", None, None, None),
    "y = x sin(x)": ("y = x sin(x)", None, None, None),
}


@pytest.mark.parametrize("text", PHRASINGS)
def test_phrasings_give_the_function_as_written_the_variable_x0_and_window(text):
    function, variable, x0, window = PHRASINGS[text]
    request = read_request(text)
    assert request is not None
    assert request.function == function and function in text  # a span of the request, exactly as written
    assert request.variable == variable
    assert request.settings.x0 == pytest.approx(x0) if x0 is not None else request.settings.x0 is None
    assert request.settings.window == pytest.approx(window) if window is not None else request.settings.window is None


def test_function_names_stay_functions_next_to_the_words():
    # 'at', 'tan', 'in', 'on' are words of the request grammar; atan(x), tan(x), sin(x) and cosh(x) stay functions.
    request = read_request("tangent to atan(x) + tan(x) + sin(x) + cosh(x) at x = 1")
    assert parse_function(request.function).expr == sympy.atan(x) + sympy.tan(x) + sympy.sin(x) + sympy.cosh(x)
    assert read_request("x at x = 2").function == "x"


@pytest.mark.parametrize("text", [
    "x^2'",  # x^(2') or (x^2)'?
    "(x+1)(x-1)'",  # the product or the last factor?
    "x + sin(x)'",
    "Teach the product rule with x*sin(x)",
    "derivative of x^2 for my class",
    "derivative of __import__('os')",
    "x^2 at x = ",
    "",
    "x\n+1",
])
def test_what_the_request_grammar_does_not_read(text):
    assert read_request(text) is None


@pytest.mark.parametrize("text, says", [
    ("d/dt x^3", r"with respect to t, but 'x\^3' is a function of x"),
    ("d/dx t^2 with respect to t", "more than one variable"),
    ("x^2 at t = 1", "'at t = 1' is about t, but the function's variable is x"),
    ("t^2 for x from 0 to 5", "is about x, but the function's variable is t"),
    ("x^2 at x = 1 at x = 2", "2 points"),
    ("x^2 on [-1, 1], x from 0 to 2", "2 windows"),
    ("x^2 on [2, -2]", "reversed"),
    ("x^2 on [1, 1]", "empty"),
    ("derivative of floor(x)", "unknown function 'floor'"),
    ("derivative of x^99999999", "too large"),
    ("slope of x*y at x = 1", "more than one variable"),
])
def test_a_phrasing_that_says_something_wrong_is_a_one_line_error(text, says):
    with pytest.raises(InvalidInput, match=says) as error:
        read_request(text)
    assert "\n" not in str(error.value)


def test_a_number_in_a_sentence_ends_where_it_ends():
    assert find_settings("show the tangent at x = 3 each time") == Settings(x0=3.0)  # not 3e
    assert find_settings("at x = 3e please") == Settings(x0=3 * math.e)
    assert find_settings("Teach the chain rule with sin(x^2) on [-2, 2] at x = 1, slowly") == Settings(1.0, (-2.0, 2.0))
    assert find_settings("Teach the chain rule with sin(x^2)") == Settings()


def _no_model(text, adapter, base_model):
    raise AssertionError(f"the model was asked about {text!r}")


@pytest.mark.parametrize("text", [
    "derivative of x^2", "differentiate x^3", "d/dx x^2", "slope of x^2 at x = 1", "x^3 - 3x on [-2, 2]", "sin(x^2)'",
    "2x^2+3x+1 at x = 2",  # f(2) = 15 is far above the features' heights: the y-range must still hold it
])
def test_fill_reads_phrasings_without_the_model(text, monkeypatch):
    monkeypatch.setattr(derivanim.api, "model_slots", _no_model)
    function, _, x0, window = PHRASINGS[text]
    animation = fill(text)
    assert animation.filler == "rules" and animation.request == text
    assert animation.slots.function == function and animation.repairs == ()
    if x0 is not None:
        assert animation.slots.x0 == x0
    if window is not None:
        assert (animation.slots.x_min, animation.slots.x_max) == window


def test_d_dt_of_a_constant_is_in_t():
    assert fill("d/dt 5", filler="rules").slots.variable == "t"


def test_a_hostile_phrasing_is_refused_by_the_grammar_not_sent_to_the_model(monkeypatch):
    monkeypatch.setattr(derivanim.api, "model_slots", _no_model)
    assert not looks_like_words("derivative of __import__('os')")  # 'derivative' and 'of' are the grammar's words
    with pytest.raises(InvalidInput, match=r"unexpected character '_' at column 15"):
        fill("derivative of __import__('os')")


def test_a_sentence_goes_to_the_model_and_keeps_the_x0_and_window_it_writes(monkeypatch):
    asked = []
    model = Slots(function="sin(x^2)", x_min=-3, x_max=3, x0=0.5)
    monkeypatch.setattr(derivanim.api, "model_slots", model_answering(model, asked))
    text = "Teach the chain rule with sin(x^2) on [-2, 2] at x = 1"
    animation = fill(text)
    assert asked == [text] and animation.filler == "model"
    assert (animation.slots.x_min, animation.slots.x_max, animation.slots.x0) == (-2, 2, 1)
    assert animation.requested_slots.x0 == 1 and animation.repairs == ()
    # fill()'s own values win over the sentence's.
    animation = fill(text, x0=-1.5, window=(-3, 3))
    assert (animation.slots.x_min, animation.slots.x_max, animation.slots.x0) == (-3, 3, -1.5)


def test_a_sentence_the_phrasings_cover_letter_by_letter_is_still_the_models(monkeypatch):
    # 'animate' starts a phrasing and 'very slowly x^3' is v*e*r*y*... to the expression grammar: a sentence still.
    asked = []
    model = Slots(function="x^3", x_min=-2, x_max=2, x0=1)
    monkeypatch.setattr(derivanim.api, "model_slots", model_answering(model, asked))
    assert fill("Animate very slowly x^3").filler == "model" and asked == ["Animate very slowly x^3"]
    with pytest.raises(InvalidInput, match="unknown function 'very'"):
        fill("Animate very slowly x^3", filler="rules")


def test_explicit_values_win_over_the_request():
    animation = fill("derivative of x^2 on [-2, 2] at x = 1", x0=0.5, window=(-1, 3))
    assert (animation.slots.x_min, animation.slots.x_max, animation.slots.x0) == (-1, 3, 0.5)
    # A window alone: x0 is chosen on it (no repair), a point alone widens the filler's window to hold it.
    animation = fill("x^2", window=(2, 6))
    assert 2 < animation.slots.x0 < 6 and animation.repairs == ()
    animation = fill("x^2 at x = 10")
    assert animation.slots.x0 == 10 and animation.slots.x_max > 10 and animation.repairs == ()


@pytest.mark.parametrize("settings, repair", [
    (dict(x0=1.0, function="1/(x-1)"), "x0 1 ->"),  # a pole
    (dict(x0=0.0, function="abs(x)"), "x0 0 ->"),  # a corner
    (dict(window=(-3.0, -1.0), function="ln(x)"), "real and finite"),  # outside the domain
    (dict(window=(-5000.0, 5000.0), function="x^2"), "beyond"),
])
def test_a_value_the_mathematics_rejects_is_repaired_and_the_repair_recorded(settings, repair):
    function = settings.pop("function")
    animation = fill(function, **settings)
    assert any(repair in text for text in animation.repairs), animation.repairs
    for key, value in settings.items():
        requested = (animation.requested_slots.x_min, animation.requested_slots.x_max) if key == "window" else \
            animation.requested_slots.x0
        assert requested == value  # what the user asked for stays visible beside the repair


@pytest.mark.parametrize("settings, says", [
    (dict(x0=math.nan), "finite"),
    (dict(x0=math.inf), "finite"),
    (dict(x0="one"), "number"),
    (dict(window=(2, -2)), "reversed"),
    (dict(window=(1, 1)), "empty"),
    (dict(window=(0, math.nan)), "finite"),
    (dict(window=(1, 2, 3)), "two numbers"),
])
def test_invalid_values_are_invalid_input(settings, says):
    with pytest.raises(InvalidInput, match=says):
        fill("x^2", **settings)


def test_cli_x0_and_window(tmp_path, derivanim):
    result = derivanim("make", "derivative of x^3 at x = 2", "--x0", "1.5", "--window", "-2", "2", "--no-render",
                       "--json", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    slots = data["slots"]
    assert (slots["function"], slots["x_min"], slots["x_max"], slots["x0"]) == ("x^3", -2, 2, 1.5)
    assert (data["derivative"], data["derivative_sympy"]) == ("3x^2", "3*x**2")  # the user's notation, and SymPy's


def test_cli_prints_the_textbook_form_in_the_users_notation(tmp_path, derivanim):
    result = derivanim("make", "derivative of (x^2+1)/(x-1)", "--no-render", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "f'(x) = (x^2 - 2x - 1)/(x - 1)^2" in result.stdout.splitlines()


@pytest.mark.parametrize("args, words", [
    (["x^2", "--x0", "nan"], ["--x0", "'nan' is not a finite number"]),
    (["x^2", "--window", "2", "-2"], ["reversed"]),
    (["x^2", "--window", "1"], ["--window", "2 arguments"]),
    (["derivative of __import__('os')"], ["column 15"]),
    (["x^2 on [3, 1]"], ["reversed"]),
])
def test_cli_invalid_values_exit_2_with_one_line(tmp_path, args, words, derivanim):
    result = derivanim("make", *args, "--no-render", "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, words", [
    ("Animation: derivative of atan(x)", True),  # two words beside a written function: a request for the model
    ("Teach the product rule with x*sin(x)", True),
    ("derivative of __import__('os')", False),  # no function written: the grammar's one-line refusal
    ("floor(x)", False),
    ("derivative of floor(x)", False),
    ("sin(x", False),
    ("derivative of x squared", True),  # a function said in words: the model's, not the grammar's refusal
    ("Animate the derivative of sine x over x", True),
    ("ln x", True),
    ("x^3 - 6x please", True),  # one word beside a written function: the model's (it was 'unknown name please')
    ("derivanim: x^4", True),
    ("x^2 +", False),
])
def test_what_counts_as_a_request_in_words(text, words):
    from derivanim.api import looks_like_words

    assert looks_like_words(text) is words


def test_no_hand_written_request_with_a_function_is_refused_before_the_model():
    """fill() reads every teacher's request of data/requests/words.tsv with the rules (the function it reads is the
    one meant) or hands it to the model; none gets the grammar's one-line error. 'derivative of x squared' and
    'Animate the derivative of sine x over x' did ('unknown function squared', 'unexpected e at column 30')."""
    from pathlib import Path

    from derivanim.api import route
    from derivanim.evaluate import same_function

    words = Path(__file__).resolve().parent.parent / "data" / "requests" / "words.tsv"
    rows = [line.split("\t") for line in words.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")]
    assert len(rows) >= 30
    for request, function in rows:
        routed = route(request)
        assert routed is None or same_function(parse_function(routed.function), parse_function(function)), request
