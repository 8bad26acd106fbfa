"""Check and repair any filler's slots against the mathematics, recording every repair.

A model can emit a reversed window, NaN, an x0 on a pole or a function outside the grammar; the rules
filler can be wrong too. Nothing here trusts the slots: the function is parsed by the grammar, the window
is checked against the real, finite part of the domain, and x0 is moved to a point where f is
differentiable and the secant has room.
"""

import math
from dataclasses import dataclass

import numpy as np
import sympy

from derivanim.calculus import Curve, evaluator, trace_curve
from derivanim.errors import InvalidInput
from derivanim.grammar import ParsedFunction, parse_function, symbol
from derivanim.slots import Slots

MAX_ABS_X = 1000.0
MIN_WIDTH = 0.5
MIN_COVERAGE = 0.5  # share of the window where f must be real and finite
PREFERRED_X0 = (1.0, 0.5, 2.0, -1.0, 1.5, -0.5, -2.0, 0.0, 2.5, -1.5, 3.0, -3.0)


@dataclass(frozen=True)
class Verified:
    """Slots that passed verification, with the repairs that made them pass and the mathematics they rest on."""

    slots: Slots
    requested: Slots
    repairs: tuple[str, ...]
    function: ParsedFunction
    derivative: sympy.Expr
    f_curve: Curve
    df_curve: Curve


def _inside(x: float, segments, margin: float) -> tuple[float, float] | None:
    return next(((a, b) for a, b in segments if a + margin <= x <= b - margin), None)


def secant_step(x0: float, f_curve: Curve, width: float) -> float | None:
    """A starting h for the secant: a quarter of the window, shortened to stay on f's piece; None if no room."""
    piece = _inside(x0, f_curve.segments, 0.0)
    if piece is None:
        return None
    right, left = piece[1] - x0 - 0.02 * width, x0 - piece[0] - 0.02 * width
    h = min(0.25 * width, max(right, left))
    if h < 0.06 * width:
        return None
    return h if right >= min(0.25 * width, left) else -h


def x0_problem(x0: float, f_curve: Curve, df_curve: Curve, x_min: float, x_max: float) -> str | None:
    """Why x0 cannot start the tangent, or None: it must be well inside the window, on a piece of f and of f'
    (so f is differentiable there), away from discontinuities, with room for the secant's h."""
    width = x_max - x_min
    margin = 0.03 * width
    if not math.isfinite(x0):
        return "not a number"
    if not x_min + 0.08 * width <= x0 <= x_max - 0.08 * width:
        return "outside or at the edge of the window"
    if any(abs(x0 - b) <= margin for b in (*f_curve.breaks, *df_curve.breaks)):
        return "at or next to a discontinuity, where f is not differentiable"
    if _inside(x0, f_curve.segments, margin) is None or _inside(x0, df_curve.segments, margin) is None:
        return "f or f' is undefined or off the plot there"
    if secant_step(x0, f_curve, width) is None:
        return "no room for the secant"
    return None


def is_good_x0(x0: float, f_curve: Curve, df_curve: Curve, x_min: float, x_max: float) -> bool:
    return x0_problem(x0, f_curve, df_curve, x_min, x_max) is None


def good_x0(requested: float, f_curve: Curve, df_curve: Curve, x_min: float, x_max: float) -> float | None:
    """The requested x0 if it is good, else the nearest good one among round numbers and then a fine grid."""
    if is_good_x0(requested, f_curve, df_curve, x_min, x_max):
        return requested
    round_ones = [x for x in PREFERRED_X0 if is_good_x0(x, f_curve, df_curve, x_min, x_max)]
    if round_ones and not (math.isfinite(requested) and x_min <= requested <= x_max):
        return round_ones[0]  # nothing to stay near: take the first round number, as the rules filler does
    grid = np.round(np.linspace(x_min, x_max, 161), 3)
    candidates = round_ones + [float(x) for x in grid if is_good_x0(float(x), f_curve, df_curve, x_min, x_max)]
    if not candidates:
        return None
    anchor = requested if math.isfinite(requested) else (x_min + x_max) / 2
    return min(candidates, key=lambda x: (abs(x - anchor), x not in round_ones))


def coverage(function: ParsedFunction, x_min: float, x_max: float) -> float:
    """The share of the window on which f is real and finite."""
    ys = evaluator(function.expr, function.variable)(np.linspace(x_min, x_max, 401))
    return float(np.mean(np.isfinite(ys)))


def _window_problem(slots: Slots, function: ParsedFunction) -> str | None:
    x_min, x_max = slots.x_min, slots.x_max
    if not (math.isfinite(x_min) and math.isfinite(x_max)):
        return f"window [{x_min}, {x_max}] is not finite"
    if max(abs(x_min), abs(x_max)) > MAX_ABS_X:
        return f"window [{x_min}, {x_max}] reaches beyond ±{MAX_ABS_X:g}"
    if x_max - x_min < MIN_WIDTH:
        return f"window [{x_min}, {x_max}] is narrower than {MIN_WIDTH}"
    share = coverage(function, x_min, x_max)
    if share < MIN_COVERAGE:
        return f"f is real and finite on only {share:.0%} of the window [{x_min:g}, {x_max:g}]"
    return None


def verify(slots: Slots) -> Verified:
    """Parse, check and repair a set of slots; raises InvalidInput if no repair can make them usable."""
    from derivanim.rules_filler import natural_window  # the rules filler's window is the repair

    repairs: list[str] = []
    parsed = parse_function(slots.function)
    fixed = slots.model_dump()
    # The function text is authoritative: a 'g(t) =' header or the letter it uses overrides the other slots.
    if parsed.expr.free_symbols and slots.variable != str(parsed.variable):
        repairs.append(f"variable {slots.variable!r} -> {str(parsed.variable)!r} (the function uses it)")
        fixed["variable"] = str(parsed.variable)
    if slots.function.partition("=")[1] and slots.name != parsed.name:
        repairs.append(f"name {slots.name!r} -> {parsed.name!r} (the function names itself)")
        fixed["name"] = parsed.name
    variable = symbol(fixed["variable"])
    expr = parsed.expr.subs(parsed.variable, variable)
    function = ParsedFunction(expr, variable, fixed["name"])

    if slots.x_min > slots.x_max and _window_problem(slots.model_copy(update={"x_min": slots.x_max, "x_max": slots.x_min}), function) is None:
        fixed["x_min"], fixed["x_max"] = slots.x_max, slots.x_min
        repairs.append(f"window [{slots.x_min:g}, {slots.x_max:g}] reversed -> [{slots.x_max:g}, {slots.x_min:g}]")
    else:
        problem = _window_problem(slots, function)
        if problem:
            fixed["x_min"], fixed["x_max"] = natural_window(function)
            repairs.append(f"{problem} -> [{fixed['x_min']:g}, {fixed['x_max']:g}]")

    derivative = sympy.diff(expr, function.variable)
    f_curve = trace_curve(evaluator(expr, function.variable), fixed["x_min"], fixed["x_max"])
    df_curve = trace_curve(evaluator(derivative, function.variable), fixed["x_min"], fixed["x_max"])
    x0 = good_x0(slots.x0, f_curve, df_curve, fixed["x_min"], fixed["x_max"])
    if x0 is None:
        raise InvalidInput(
            f"{function.name}({variable}) = {slots.function} has no point in [{fixed['x_min']:g}, {fixed['x_max']:g}] "
            "where it is differentiable with room to draw a secant"
        )
    if x0 != slots.x0:
        repairs.append(f"x0 {slots.x0:g} -> {x0:g} ({x0_problem(slots.x0, f_curve, df_curve, fixed['x_min'], fixed['x_max'])})")
    fixed["x0"] = x0
    return Verified(
        slots=Slots(**fixed), requested=slots, repairs=tuple(repairs), function=function,
        derivative=derivative, f_curve=f_curve, df_curve=df_curve,
    )

