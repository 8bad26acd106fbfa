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

from derivanim.calculus import Curve, derivative, evaluator, trace_curve
from derivanim.drawing import drawable, jump_ends, removable_holes, too_fast
from derivanim.teaching import (Axis, choose_window, find_features, is_readable_angle, round_candidates, roundness,
                                screen_angle, teaching_x0, teaching_y_range)
from derivanim.errors import InvalidInput
from derivanim.grammar import ParsedFunction, parse_function, symbol
from derivanim.slots import Slots

MAX_ABS_X = 1000.0
MIN_WIDTH = 0.5
MIN_COVERAGE = 0.5  # share of the window where f must be real and finite


@dataclass(frozen=True)
class Verified:
    """Slots that passed verification, with the repairs that made them pass and the mathematics they rest on."""

    slots: Slots
    requested: Slots
    repairs: tuple[str, ...]
    function: ParsedFunction
    derivative: sympy.Expr
    curves: "Curves"

    @property
    def f_curve(self) -> Curve:
        return self.curves.f

    @property
    def df_curve(self) -> Curve:
        return self.curves.df


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


def good_x0(requested: float, function: ParsedFunction, curves: "Curves") -> float | None:
    """The requested x0 if it is good; with none requested (NaN), the one a teacher would take (teaching_x0); else
    the nearest good one, preferring one whose tangent visibly slopes."""
    f_curve, df_curve = curves.f, curves.df
    x_min, x_max = curves.x_min, curves.x_max
    if is_good_x0(requested, f_curve, df_curve, x_min, x_max):
        return requested
    candidates = [x for x in round_candidates(x_min, x_max) if is_good_x0(x, f_curve, df_curve, x_min, x_max)]
    if not candidates:
        return None
    x_axis, y_axis = Axis.around(x_min, x_max, 8), Axis.around(f_curve.y_min, f_curve.y_max, 6)
    df_value = evaluator(derivative(function.expr, function.variable), function.variable)
    if not (math.isfinite(requested) and x_min <= requested <= x_max):
        return teaching_x0(candidates, df_value, x_axis, y_axis)
    width = x_max - x_min

    def distance(x: float) -> float:
        sloped = is_readable_angle(screen_angle(float(df_value(np.array([x]))[0]), x_axis, y_axis))
        return abs(x - requested) + (0 if sloped else 0.1 * width) + 1e-3 * roundness(x)

    return min(candidates, key=distance)


@dataclass(frozen=True)
class Curves:
    """f and f' as they are drawn on a window: each on the y-range that shows f's features, in pieces that avoid
    holes, jumps, poles and a stretch too fast to draw, with open dots where a hole or a jump's end is."""

    x_min: float
    x_max: float
    f: Curve
    df: Curve
    f_dots: tuple[tuple[float, float], ...] = ()
    df_dots: tuple[tuple[float, float], ...] = ()
    hidden: tuple[float, float] | None = None  # where f oscillates too fast to draw
    corners: tuple[float, ...] = ()  # where f is continuous and f' jumps


def _holding(evaluate, x0: float, y_range: tuple[float, float], x_min: float, x_max: float) -> tuple[float, float]:
    """The y-range grown to hold the curve's value at x0 (NaN: no x0 asked for), with a margin; not for a value
    far beyond it (tan(x) at pi/2 is 1.6e16, a pole: x0 is repaired instead)."""
    at_x0 = evaluate(np.array([x0]))[0] if x_min <= x0 <= x_max else math.nan
    span = y_range[1] - y_range[0]
    if not math.isfinite(at_x0) or y_range[0] <= at_x0 <= y_range[1] or not (
            y_range[0] - 10 * span <= at_x0 <= y_range[1] + 10 * span):
        return y_range
    margin = 0.15 * span
    return min(y_range[0], at_x0 - margin), max(y_range[1], at_x0 + margin)


def trace_curves(function: ParsedFunction, slope: sympy.Expr, x_min: float, x_max: float,
                 x0: float = math.nan) -> Curves:
    """f and f' (`slope`) as drawn on [x_min, x_max]; a requested x0 (not NaN) stays on both y-ranges."""
    var = function.variable
    f_value, df_value = evaluator(function.expr, var), evaluator(slope, var)
    features = find_features(function.expr, var, x_min, x_max)
    # Each axis shows its curve's features (f' is 0 at f's extrema and turns at f's inflections), and the point
    # a user asked about.
    f_range = _holding(f_value, x0, teaching_y_range(
        f_value, x_min, x_max, (*features.zeros, *features.extrema, *features.inflections)), x_min, x_max)
    df_range = _holding(df_value, x0, teaching_y_range(
        df_value, x_min, x_max, (*features.extrema, *features.inflections)), x_min, x_max)
    f_curve = trace_curve(f_value, x_min, x_max, f_range)
    df_curve = trace_curve(df_value, x_min, x_max, df_range)
    hidden = too_fast(df_value, x_min, x_max)
    f_holes = removable_holes(function.expr, var, x_min, x_max, (f_curve.y_min, f_curve.y_max))
    df_holes = removable_holes(slope, var, x_min, x_max, (df_curve.y_min, df_curve.y_max))
    f_curve, f_dots = drawable(f_curve, x_min, x_max, f_holes, jump_ends(f_value, f_curve.breaks, x_min, x_max), hidden)
    df_curve, df_dots = drawable(df_curve, x_min, x_max, df_holes,
                                 jump_ends(df_value, df_curve.breaks, x_min, x_max), hidden)
    return Curves(x_min, x_max, f_curve, df_curve, f_dots, df_dots, hidden, features.corners)


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
            fixed["x_min"], fixed["x_max"] = choose_window(function)
            repairs.append(f"{problem} -> [{fixed['x_min']:g}, {fixed['x_max']:g}]")

    slope = derivative(expr, function.variable)
    curves = trace_curves(function, slope, fixed["x_min"], fixed["x_max"], slots.x0)
    f_curve, df_curve = curves.f, curves.df
    x0 = good_x0(slots.x0, function, curves)
    if x0 is None:
        raise InvalidInput(
            f"{function.name}({variable}) = {slots.function} has no point in [{fixed['x_min']:g}, {fixed['x_max']:g}] "
            "where it is differentiable with room to draw a secant"
        )
    if x0 != slots.x0 and not math.isnan(slots.x0):  # NaN asks verification to choose
        repairs.append(f"x0 {slots.x0:g} -> {x0:g} ({x0_problem(slots.x0, f_curve, df_curve, fixed['x_min'], fixed['x_max'])})")
    fixed["x0"] = x0
    return Verified(
        slots=Slots(**fixed), requested=slots, repairs=tuple(repairs), function=function,
        derivative=slope, curves=curves,
    )

