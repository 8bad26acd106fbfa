"""The model filler copies the function where the request writes it, and takes its numbers from the teaching rules.

written_functions finds the functions a request writes with the expression grammar; the decoding constraint then
allows only those strings. The tiny random Llama (tests/tiny_model.py) shows the constraint decides; the slow test
shows the shipped adapter's real answer.
"""

import pytest

import derivanim.model_filler
from derivanim.api import fill, written_in
from derivanim.model_filler import ModelFill, SlotsConstraint, fill_slots, written_functions
from derivanim.prompts import format_refusal, format_slots
from derivanim.rules_filler import rules_slots
from derivanim.slots import REFUSALS, Slots

from tiny_model import smollm2_tokenizer


@pytest.mark.parametrize("request_text, functions", [
    ("Animation: derivative of atan(x)", ("atan(x)",)),
    ("Explain x*ln(x) please", ("x*ln(x)",)),
    ("Teach the chain rule with g(t) = t^3 - 2t on [-2, 2] at t = 1", ("g(t) = t^3 - 2t", "t^3 - 2t")),
    ("tangent line sweep over sqrt(x) for x from 0.1 to 9", ("sqrt(x)",)),  # not the numbers, not 'x from'
    ("Animate f'(x) for f(x) = x^2 * e^(-x)", ("f(x) = x^2 * e^(-x)", "x^2 * e^(-x)")),  # not the '(x)' of f'(x)
    ("Compare sin(x) and cos(x), then sin(x) again", ("sin(x)", "cos(x)")),
    ("Show (x+1)^2 at x = 3", ("(x+1)^2",)),  # not the x+1 inside it, nor 'x = 3'
    ("the natural log of cosine x", ()),  # a function in words: the model writes one
    ("e to the x squared please", ()),
    ("Explain the power rule", ()),
    ("__import__('os').system('touch PWNED')", ()),
])
def test_written_functions_are_the_maximal_stretches_the_grammar_reads(request_text, functions):
    assert written_functions(request_text) == functions


def test_written_in_is_the_span_test():
    assert not written_in("tan(x)", "derivative of atan(x)")
    assert written_in("atan(x)", "derivative of atan(x)")
    assert written_in("t^3-2t", "Teach g(t) = t^3 - 2t")  # the right side of a definition, spaces aside
    assert not written_in("x+1", "Show (x+1)^2")


@pytest.fixture(scope="module")
def tokenizer():
    return smollm2_tokenizer()


def test_the_constraint_with_written_functions_accepts_exactly_those(tokenizer):
    constraint = SlotsConstraint(tokenizer, functions=written_functions("Compare atan(x) with x*ln(x)"))

    def response(function):
        return format_slots(Slots(function=function, x_min=-2, x_max=2, x0=1))

    assert constraint.accepts(response("atan(x)")) and constraint.accepts(response("x*ln(x)"))
    for other in ("tan(x)", "x", "ln(x)", "atan(x)*x", "x ln(x)"):
        assert not constraint.accepts(response(other)), other


@pytest.mark.parametrize("request_text, allowed", [
    ("Animation: derivative of atan(x)", {"atan(x)"}),
    ("Compare atan(x) with x*ln(x) on [-1, 1]", {"atan(x)", "x*ln(x)"}),
])
def test_a_random_model_can_only_copy_a_written_function(tiny_model_dir, request_text, allowed):
    fill = fill_slots(request_text, base_model=tiny_model_dir)
    assert fill.slots.function in allowed


def test_without_a_written_function_the_model_writes_one_under_the_expression_grammar(tiny_model_dir):
    from derivanim.grammar import expression_parser

    function = fill_slots("the natural log of cosine x", base_model=tiny_model_dir).slots.function
    expression_parser().parse(function)  # whatever a random model writes, the grammar reads it


def test_given_numbers_the_model_stops_after_the_name(tiny_model_dir):
    full = fill_slots("Compare atan(x) with x*ln(x) on [-1, 1]", base_model=tiny_model_dir)
    short = fill_slots("Compare atan(x) with x*ln(x) on [-1, 1]", base_model=tiny_model_dir,
                       numbers=lambda function: (-2.5, 4.0, len(function)))
    assert short.emitted == full.emitted.split(',"x_min"')[0] + "}"  # the same choices, then no numbers
    assert (short.slots.x_min, short.slots.x_max, short.slots.x0) == (-2.5, 4.0, len(short.slots.function))
    assert short.forward_passes < full.forward_passes


@pytest.mark.slow
def test_the_shipped_adapter_copies_atan():
    from derivanim.api import shipped_slots_adapter

    fill = fill_slots("Animation: derivative of atan(x)", adapter_dir=shipped_slots_adapter())
    assert fill.slots.function == "atan(x)"


def _model_answer(monkeypatch, slots: Slots):
    """fill_slots stands in for the model: it answers `slots` whatever the request, with the numbers it is given."""
    def answer(request, numbers=None, **options):
        chosen = slots if numbers is None else slots.model_copy(
            update=dict(zip(("x_min", "x_max", "x0"), numbers(slots.function))))
        return ModelFill(request=request, emitted=format_slots(chosen), slots=chosen, tokens=30, forward_passes=10,
                         seconds=0.1, model="stand-in")

    monkeypatch.setattr(derivanim.model_filler, "fill_slots", answer)


def test_the_window_and_x0_are_the_teaching_rules_choice_unless_the_request_writes_them(monkeypatch):
    _model_answer(monkeypatch, Slots(function="x^3 - 3x", x_min=-9, x_max=1, x0=0.5))  # old, poor numbers
    taught = rules_slots("x^3 - 3x")
    animation = fill("Teach the power rule with x^3 - 3x please", filler="model", adapter="stand-in")
    assert (animation.slots.x_min, animation.slots.x_max, animation.slots.x0) == (taught.x_min, taught.x_max, taught.x0)
    assert (taught.x_min, taught.x_max) != (-9, 1)
    written = fill("Teach the power rule with x^3 - 3x on [-1, 3] at x = 2", filler="model", adapter="stand-in")
    assert (written.slots.x_min, written.slots.x_max) == (-1, 3)
    assert written.slots == fill("x^3 - 3x on [-1, 3] at x = 2", filler="rules").slots  # the same x0, repaired alike


def _model_refuses(monkeypatch, reason: str):
    def answer(request, numbers=None, **options):
        return ModelFill(request=request, emitted=format_refusal(reason), slots=None, tokens=9, forward_passes=3,
                         seconds=0.1, model="stand-in", refusal=reason)

    monkeypatch.setattr(derivanim.model_filler, "fill_slots", answer)


def test_a_refusal_is_a_one_line_error_exit_2_and_nothing_written(monkeypatch, tmp_path, capsys):
    from derivanim import cli
    from derivanim.errors import NoFunction

    _model_refuses(monkeypatch, "code")
    with pytest.raises(NoFunction, match=r"^no function to differentiate in the request \(it is code"):
        fill("__import__('os').system('touch PWNED')", adapter="stand-in")
    code = cli.main(["make", "__import__('os').system('touch PWNED')", "--adapter", "stand-in", "-o", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "no function to differentiate in the request" in error
    assert list(tmp_path.iterdir()) == [] and not (tmp_path / "PWNED").exists()


@pytest.mark.slow
@pytest.mark.parametrize("request_text", ["__import__('os').system('touch PWNED')", "\\input{/etc/passwd}",
                                          "Explain the power rule", "Integrate x^2 from 0 to 1"])
def test_the_shipped_adapter_refuses_what_has_no_function_to_differentiate(request_text):
    from derivanim.api import shipped_slots_adapter

    fill = fill_slots(request_text, adapter_dir=shipped_slots_adapter())
    assert fill.slots is None and fill.refusal in REFUSALS, fill.emitted


@pytest.mark.slow
@pytest.mark.parametrize("request_text, function", [("the natural log of cosine x, animated", "ln(cos(x))"),
                                                    ("derivative of one over x", "1/x")])
def test_the_shipped_adapter_reads_functions_said_in_words(request_text, function):
    from derivanim.api import shipped_slots_adapter
    from derivanim.evaluate import same_function
    from derivanim.grammar import parse_function

    fill = fill_slots(request_text, adapter_dir=shipped_slots_adapter())
    assert fill.slots is not None, fill.emitted
    assert same_function(parse_function(fill.slots.function), parse_function(function)), fill.emitted


@pytest.mark.slow
@pytest.mark.parametrize("request_text, function", [("derivative of x squared", "x^2"),
                                                    ("Animate the derivative of sine x over x", "sin(x)/x")])
def test_fill_hands_a_short_request_in_words_to_the_shipped_adapter(request_text, function):
    from derivanim.evaluate import same_function
    from derivanim.grammar import parse_function

    animation = fill(request_text)  # the route a user's request takes: the grammar refused these before the model
    assert animation.filler == "model"
    assert same_function(parse_function(animation.slots.function), parse_function(function))


def test_a_function_said_in_words_is_read_by_the_grammar_and_the_caution_says_so(monkeypatch, tiny_model_dir):
    from derivanim.spoken import spoken_functions

    request = "Show me how to differentiate the natural log of cosine x"
    assert written_functions(request) == () and spoken_functions(request)[0] == "ln(cos(x))"
    fill_ = fill_slots(request, base_model=tiny_model_dir)  # a random model: the readings or a refusal, nothing else
    assert fill_.slots is None or fill_.slots.function in spoken_functions(request)
    _model_answer(monkeypatch, Slots(function="ln(cos(x))", x_min=-1, x_max=1, x0=0.5))
    animation = fill(request, filler="model", adapter="stand-in")
    assert animation.cautions == ("ln(cos(x)) was read from the words of the request: check that it is the function "
                                  "you meant",)


@pytest.mark.parametrize("threshold, refused", [(0.0, True), (1.0, False)])
def test_the_refusal_is_decided_by_the_share_against_the_threshold(monkeypatch, tiny_model_dir, threshold, refused):
    monkeypatch.setattr(derivanim.model_filler, "refusal_threshold", lambda adapter, found: threshold)
    fill_ = fill_slots("Make a video with x*sin(x) for my class", base_model=tiny_model_dir)
    assert 0.0 < fill_.refusal_share < 1.0
    assert (fill_.slots is None) is refused
    assert refused or fill_.slots.function == "x*sin(x)"


def test_a_calibration_beside_the_adapter_sets_the_thresholds(tmp_path):
    import json

    from derivanim.model_filler import CALIBRATION, DEFAULT_REFUSAL_THRESHOLD, refusal_threshold

    assert refusal_threshold(str(tmp_path), True) == DEFAULT_REFUSAL_THRESHOLD
    (tmp_path / CALIBRATION).write_text(json.dumps({"threshold_with_function": 0.7, "threshold_without_function": 0.1}))
    assert (refusal_threshold(str(tmp_path), True), refusal_threshold(str(tmp_path), False)) == (0.7, 0.1)


@pytest.mark.parametrize("request_text, only", [
    ("one minus 4 x", True), ("x^4", True), ("  g(t) = t^3 - 2t.", True), ("e to the x squared?", True),
    ("atan(x)", True), ("derivanim: x^4", True), ("Animate x squared", True), ("x squared, please", True),
    ("animate how one over x squared changes", True),  # words that only ask for the video, at either end
    ("Factor x^2 - 1", False), ("Integrate x^2", False), ("Integrate x^2 please", False), ("3", False), ("", False),
    ("please", False), ("Animate the area under x^2", False), ("x^2\x00", False),
])
def test_only_a_function_is_a_request_with_nothing_but_one_function(request_text, only):
    from derivanim.model_filler import only_a_function

    assert only_a_function(request_text) is only


@pytest.mark.parametrize("request_text, asks", [
    ("Show the instantaneous rate of change of 5x^2 + 2", True), ("quotient rule example: (x+1)/(x-2)", True),
    ("Could you animate why the slope of x^2 - 3x is 2x - 3?", True), ("Animate f'(x) for f(x) = x^2", True),
    ("Show me how to differentiate two root x", True), ("antiderivative of 5x^4 please", False),
    ("Integrate x^2", False), ("Find the area under x^2", False),
])
def test_asks_for_a_derivative_reads_the_words_that_ask_for_one(request_text, asks):
    from derivanim.model_filler import asks_for_a_derivative

    assert asks_for_a_derivative(request_text) is asks


def test_a_function_and_a_derivative_asked_for_is_never_refused_but_derivative_talk_alone_is(monkeypatch,
                                                                                            tiny_model_dir):
    monkeypatch.setattr(derivanim.model_filler, "refusal_threshold", lambda adapter, found: 0.0)
    assert fill_slots("Show the instantaneous rate of change of 5x^2 + 2", base_model=tiny_model_dir).slots
    assert fill_slots("Explain the quotient rule", base_model=tiny_model_dir).slots is None  # no function in it


def test_a_request_that_is_only_a_function_is_never_refused(monkeypatch, tiny_model_dir):
    """Even with a threshold that refuses everything: there is a function to differentiate, and nothing else asked."""
    monkeypatch.setattr(derivanim.model_filler, "refusal_threshold", lambda adapter, found: 0.0)
    assert fill_slots("Factor x^2 - 1", base_model=tiny_model_dir).slots is None
    fill_ = fill_slots("one minus 4 x", base_model=tiny_model_dir)
    assert fill_.slots is not None and fill_.refusal is None
