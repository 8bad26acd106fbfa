"""The rules filler's window and x0 on awkward functions, and verify()'s repairs of bad slots."""

import math

import numpy
import pytest
import sympy

from derivanim.calculus import evaluator, trace_curve
from derivanim.errors import InvalidInput
from derivanim.grammar import parse_function
from derivanim.rules_filler import rules_slots
from derivanim.slots import Slots
from derivanim.verify import verify

AWKWARD = [
    "ln(x)", "sqrt(x)", "asin(x)", "tan(x)", "1/(x-1)", "x^x", "abs(x)", "e^(e^(e^x))", "ln(x-10)",
    "acosh(x)", "1/x", "sqrt(4-x^2)", "cot(x)", "sec(x)", "ln(-x)", "x^(1/3)", "sin(x)/x", "1/(x^2-1)",
    "sin(x^2)", "g(t) = t^3 - 2t",
]


def _at(text: str, point: float) -> tuple[float, float]:
    """f and f' at a point."""
    parsed = parse_function(text)
    derivative = sympy.diff(parsed.expr, parsed.variable)
    return (float(evaluator(parsed.expr, parsed.variable)([point])[0]),
            float(evaluator(derivative, parsed.variable)([point])[0]))


def _breaks(text: str, slots: Slots) -> tuple[float, ...]:
    parsed = parse_function(text)
    return trace_curve(evaluator(parsed.expr, parsed.variable), slots.x_min, slots.x_max).breaks


@pytest.mark.parametrize("text", AWKWARD)
def test_x0_is_inside_the_window_where_f_and_its_derivative_are_finite(text):
    slots = rules_slots(text)
    assert slots.x_min < slots.x0 < slots.x_max
    assert all(math.isfinite(value) for value in _at(text, slots.x0))


def test_ln_starts_at_zero():
    slots = rules_slots("ln(x)")
    assert 0 <= slots.x_min <= 0.5 and slots.x_max >= 2


def test_sqrt_starts_at_zero():
    assert rules_slots("sqrt(x)").x_min == 0


def test_asin_stays_in_its_domain():
    slots = rules_slots("asin(x)")
    assert -1 <= slots.x_min < slots.x_max <= 1
    assert slots.x_max - slots.x_min >= 1.5


def test_tan_window_shows_at_least_two_branches():
    slots = rules_slots("tan(x)")
    assert len(_breaks("tan(x)", slots)) >= 2


def test_pole_is_in_the_window_and_x0_is_away_from_it():
    slots = rules_slots("1/(x-1)")
    assert slots.x_min < 1 < slots.x_max
    assert abs(slots.x0 - 1) > 0.1 * (slots.x_max - slots.x_min)
    assert _breaks("1/(x-1)", slots) == pytest.approx((1.0,), abs=0.02)


def test_x_to_the_x_stays_positive():
    assert rules_slots("x^x").x_min >= 0


def test_abs_x0_is_not_at_the_corner():
    slots = rules_slots("abs(x)")
    assert abs(slots.x0) > 0.05 * (slots.x_max - slots.x_min)


def test_triple_exponential_window_is_where_it_is_finite():
    slots = rules_slots("e^(e^(e^x))")
    parsed = parse_function("e^(e^(e^x))")
    values = evaluator(parsed.expr, parsed.variable)(numpy.linspace(slots.x_min, slots.x_max, 401))
    assert numpy.mean(numpy.isfinite(values)) >= 0.9  # it overflows past x ~ 1.9; the window stops about there
    assert slots.x_max <= 2.5


def test_window_follows_a_shifted_domain():
    slots = rules_slots("ln(x-10)")
    assert 10 <= slots.x_min <= 10.5 and slots.x_max > 12


def test_no_real_values_is_invalid_input():
    with pytest.raises(InvalidInput, match="no real values"):
        rules_slots("sqrt(-1-x^2)")


def test_header_name_and_variable_reach_the_slots():
    slots = rules_slots("g(t) = t^3 - 2t")
    assert (slots.name, slots.variable) == ("g", "t")


# verify(): hand-made slots, as a model might emit them ------------------------------------------------------


def _slots(function="sin(x)", x_min=-3.0, x_max=3.0, x0=1.0, **others) -> Slots:
    return Slots(function=function, x_min=x_min, x_max=x_max, x0=x0, **others)


def _assert_usable(verified) -> None:
    slots = verified.slots
    assert slots.x_min < slots.x0 < slots.x_max
    assert all(math.isfinite(value) for value in _at(slots.function, slots.x0))


def test_good_slots_need_no_repair():
    verified = verify(_slots())
    assert verified.repairs == () and verified.slots == verified.requested == _slots()


def test_reversed_window_is_swapped_and_recorded():
    verified = verify(_slots(x_min=3.0, x_max=-3.0))
    assert (verified.slots.x_min, verified.slots.x_max) == (-3.0, 3.0)
    assert len(verified.repairs) == 1 and "reversed" in verified.repairs[0]
    assert verified.requested.x_min == 3.0  # what the filler asked for is kept
    _assert_usable(verified)


@pytest.mark.parametrize("x_min, x_max", [(math.nan, 3.0), (-3.0, math.inf), (-1e6, 3.0), (0.0, 0.1)])
def test_unusable_window_is_replaced_and_recorded(x_min, x_max):
    verified = verify(_slots(x_min=x_min, x_max=x_max))
    assert all(math.isfinite(v) for v in (verified.slots.x_min, verified.slots.x_max))
    assert verified.slots.x_max - verified.slots.x_min >= 2
    assert len(verified.repairs) == 1 and "window" in verified.repairs[0]
    _assert_usable(verified)


@pytest.mark.parametrize("function, pole", [("1/(x-1)", 1.0), ("tan(x)", math.pi / 2), ("ln(abs(x))", 0.0)])
def test_x0_at_a_pole_is_moved_and_recorded(function, pole):
    verified = verify(_slots(function=function, x_min=-4.0, x_max=4.0, x0=pole))
    assert abs(verified.slots.x0 - pole) > 0.1
    assert len(verified.repairs) == 1 and verified.repairs[0].startswith("x0 ")
    _assert_usable(verified)


def test_x0_at_a_corner_is_moved():
    verified = verify(_slots(function="abs(x)", x0=0.0))
    assert verified.slots.x0 != 0 and verified.repairs[0].startswith("x0 0 ")
    _assert_usable(verified)


@pytest.mark.parametrize("x0", [math.inf, 50.0])
def test_x0_outside_is_moved(x0):
    verified = verify(_slots(x0=x0))
    assert len(verified.repairs) == 1 and verified.repairs[0].startswith("x0 ")
    _assert_usable(verified)


def test_x0_left_open_is_chosen_without_a_repair():
    """NaN asks verification to choose x0 (the rules filler and fill(x0=None) do): a choice, not a repair."""
    verified = verify(_slots(x0=math.nan))
    assert verified.repairs == () and math.isfinite(verified.slots.x0)
    _assert_usable(verified)


def test_variable_mismatch_is_repaired():
    verified = verify(_slots(function="t^2", variable="x"))
    assert verified.slots.variable == "t"
    assert verified.function.variable == sympy.Symbol("t", real=True)
    assert [r for r in verified.repairs if "variable" in r] == ["variable 'x' -> 't' (the function uses it)"]


def test_name_and_variable_from_the_header_win():
    verified = verify(_slots(function="g(t) = t^2", variable="x", name="f"))
    assert (verified.slots.name, verified.slots.variable) == ("g", "t")
    assert len(verified.repairs) == 2


@pytest.mark.parametrize("function, window", [("ln(x)", (-10.0, -2.0)), ("sqrt(x)", (-10.0, 1.0)), ("asin(x)", (2.0, 6.0))])
def test_window_where_f_is_undefined_is_replaced(function, window):
    verified = verify(_slots(function=function, x_min=window[0], x_max=window[1], x0=sum(window) / 2))
    assert "real and finite" in verified.repairs[0]
    assert any(r.startswith("x0 ") for r in verified.repairs[1:])
    parsed = parse_function(function)
    values = evaluator(parsed.expr, parsed.variable)(numpy.linspace(verified.slots.x_min, verified.slots.x_max, 201))
    assert numpy.mean(numpy.isfinite(values)) >= 0.9
    _assert_usable(verified)


def test_function_outside_the_grammar_is_invalid_input():
    with pytest.raises(InvalidInput):
        verify(_slots(function="floor(x)"))


def test_function_without_real_values_is_invalid_input():
    with pytest.raises(InvalidInput):
        verify(_slots(function="sqrt(-1-x^2)"))


def test_a_huge_constant_gets_a_y_axis_it_can_be_told_apart_on():
    """e^49 is 1.9e21: a band of +-1 around it vanished in floating point and the axis had no height (the fuzz
    test's find, 'exp(49)': ZeroDivisionError in screen_angle)."""
    from derivanim import fill

    plan = fill("exp(49)", filler="rules").plan
    assert plan.f_axis.low < plan.f_axis.high and plan.f_axis.low < 1.9e21 < plan.f_axis.high
