"""How f and f' are drawn wherever they exist: pieces that never touch a point where the function is undefined,
open dots at removable holes and at the two ends of a jump in f' (a corner of f), no curve where it oscillates
faster than the screen can show, and the branches the sweep travels.

Every piece the template plots is rounded inward to the 6 decimals the scene's source keeps, so a piece that
ends next to an undefined point (sin(x)/x at 0, x*ln(x) at 0) never ends on it: Manim would get a NaN point,
and a group holding it silently disappears.
"""

import math
import numpy as np
import sympy

from derivanim.calculus import Curve, evaluator
from derivanim.teaching import grid_roots

DECIMALS = 6  # what the scene's source keeps of a float
HOLE_GAP = 0.004  # share of the window left undrawn either side of a hole; the open dot (radius ~1.2%) covers it
OSCILLATION_SAMPLES = 24001
FASTEST_READABLE = 0.012  # extrema closer than this share of the window cannot be drawn faithfully
BRANCH_MARGIN = 0.02  # share of the window the sweep keeps from a break
MIN_BRANCH = 0.04  # branches narrower than this share of the window are not swept


def _denominator_zeros(expr: sympy.Expr, var: sympy.Symbol, low: float, high: float) -> list[float]:
    """Zeros in [low, high] of everything f divides by (x in sin(x)/x, x - 1 in (x^2-1)/(x-1), sin(x) in
    x/sin(x)): where a hole can be that no grid sample need hit."""
    xs = np.linspace(low, high, 4001)
    zeros: set[float] = set()
    for power in expr.atoms(sympy.Pow):
        base, exponent = power.as_base_exp()
        if exponent.is_number and exponent.is_negative and base.has(var):
            evaluate = evaluator(base, var)
            zeros.update(x for x in grid_roots(evaluate, xs, evaluate(xs)) if low < x < high)
    return sorted(zeros)


def removable_holes(expr: sympy.Expr, var: sympy.Symbol, low: float, high: float,
                    y_range: tuple[float, float]) -> list[tuple[float, float]]:
    """Points where f is undefined but has one finite limit from both sides, inside the y-range: (x, limit)."""
    evaluate = evaluator(expr, var)
    span = y_range[1] - y_range[0]
    holes = []
    for x in _denominator_zeros(expr, var, low, high):
        at = evaluate(np.array([x]))[0]
        step = 1e-6 * max(1.0, high - low)
        left, right = evaluate(np.array([x - step, x + step]))
        if np.isfinite(at) or not (np.isfinite(left) and np.isfinite(right)) or abs(left - right) > 1e-3 * span:
            continue
        limit = (left + right) / 2
        if y_range[0] <= limit <= y_range[1]:
            holes.append((x, float(limit)))
    return holes


def too_fast(evaluate_slope, low: float, high: float) -> tuple[float, float] | None:
    """The stretch where f's extrema crowd closer than FASTEST_READABLE of the window (sin(1/x) near 0), or None.

    The extrema are the sign changes of f' on a fine grid; past the grid's own resolution the sign changes look
    random, and just as crowded, so the stretch found is the honest one."""
    xs = np.linspace(low, high, OSCILLATION_SAMPLES)
    slopes = evaluate_slope(xs)
    signs = np.sign(slopes)
    turns = xs[1:][(signs[1:] * signs[:-1] < 0) & np.isfinite(slopes[1:]) & np.isfinite(slopes[:-1])]
    if turns.size < 3:
        return None
    crowded = np.flatnonzero(np.diff(turns) < FASTEST_READABLE * (high - low))
    if crowded.size < 2:
        return None
    return float(turns[crowded[0]]), float(turns[crowded[-1] + 1])


def _inward(low: float, high: float) -> tuple[float, float]:
    scale = 10 ** DECIMALS
    return math.ceil(low * scale - 1e-9) / scale, math.floor(high * scale + 1e-9) / scale


def _cut(pieces, low: float, high: float) -> list[tuple[float, float]]:
    """The pieces with (low, high) taken out."""
    kept = []
    for a, b in pieces:
        if b <= low or a >= high:
            kept.append((a, b))
            continue
        if a < low:
            kept.append((a, low))
        if b > high:
            kept.append((high, b))
    return kept


def drawable(curve: Curve, x_min: float, x_max: float, holes=(), ends=(),
             hidden: tuple[float, float] | None = None) -> tuple[Curve, tuple[tuple[float, float], ...]]:
    """The curve as the template draws it, and its open dots: pieces split at holes and at the ends of jumps,
    without the hidden stretch, rounded inward so that no piece ends on a point where the function is undefined;
    breaks only where there is an asymptote or a jump (a hole is not one)."""
    width = x_max - x_min
    pieces = list(curve.segments)
    for x, _ in (*holes, *ends):
        pieces = _cut(pieces, x - HOLE_GAP * width, x + HOLE_GAP * width)
    if hidden is not None:
        pieces = _cut(pieces, *hidden)
    pieces = [_inward(a, b) for a, b in pieces]
    pieces = [(a, b) for a, b in pieces if b - a > 2e-3 * width]
    outside = lambda x: hidden is None or not hidden[0] - 1e-9 <= x <= hidden[1] + 1e-9  # noqa: E731
    dots = tuple((x, y) for x, y in (*holes, *ends) if curve.y_min <= y <= curve.y_max and outside(x))
    breaks = tuple(b for b in curve.breaks
                   if outside(b) and not any(abs(b - x) < HOLE_GAP * width for x, _ in holes))
    return Curve(curve.y_min, curve.y_max, tuple(pieces), breaks), dots


def defined_ends(evaluate, pieces, x_min: float, x_max: float) -> tuple[tuple[float, float], ...]:
    """The pieces with each end moved inward until `evaluate` is finite there: the simplified f' the scene plots
    can be undefined where SymPy's unsimplified one was traced (x/ln(x): (ln(x) - 1)/ln(x)^2 is NaN at 0, where
    1/ln(x) - 1/ln(x)^2 gives 0); a piece with no such ends is dropped."""
    width = x_max - x_min
    kept = []
    for a, b in pieces:
        for step in (0.0, *(10.0 ** -k * width for k in range(DECIMALS, 1, -1))):
            low, high = _inward(a + step, b - step)
            if high > low and np.isfinite(evaluate(np.array([low, high]))).all():
                kept.append((low, high))
                break
    return tuple(kept)


def jump_ends(evaluate, breaks, x_min: float, x_max: float) -> list[tuple[float, float]]:
    """The two one-sided limits at each finite jump (f' of abs(x) at 0: -1 and 1), as open dots."""
    step = 1e-6 * (x_max - x_min)
    ends = []
    for x in breaks:
        sides = evaluate(np.array([x - step, x + step]))
        if np.all(np.isfinite(sides)) and abs(sides[0] - sides[1]) <= 1e-4 * (1 + abs(sides[0])):
            continue  # both sides meet: a hole, not a jump
        ends += [(float(x), float(y)) for y in sides if np.isfinite(y)]
    return ends


def sweep_branches(f_pieces, df_pieces, x_min: float, x_max: float) -> tuple[tuple[float, float], ...]:
    """Where the tangent can travel: the stretches on which both f and f' are drawn, kept away from their ends,
    left to right; every branch wide enough to be seen, so abs(x) shows slope -1 and +1, and 1/x both sides."""
    width = x_max - x_min
    margin = BRANCH_MARGIN * width
    branches = []
    for a, b in f_pieces:
        for c, d in df_pieces:
            low, high = max(a, c) + margin, min(b, d) - margin
            if high - low >= MIN_BRANCH * width:
                branches.append((round(low, DECIMALS), round(high, DECIMALS)))
    return tuple(sorted(branches))
