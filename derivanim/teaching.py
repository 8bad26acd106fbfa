"""What a teacher points at: a function's features, and the window, y-range and x0 that make them readable.

The features (zeros, extrema, inflection points, poles, corners, domain edges) are the roots and breaks of
SymPy's f, f' and f'' found on a dense grid and refined by bisection: a numerical search finds them for any
function the grammar reads, where a symbolic solve may hang or return an unusable set. The window is the
stretch that holds them, the y-range the one that shows them, and x0 a round number where the tangent visibly
slopes on screen. `readability` measures the result the way a viewer sees it.
"""

import math
from dataclasses import dataclass

import numpy as np
import sympy

from derivanim.calculus import bisect_edge, derivative, evaluator, nice_step, robust_range, runs, trace_curve
from derivanim.errors import InvalidInput
from derivanim.grammar import ParsedFunction

PERIODIC = (sympy.sin, sympy.cos, sympy.sec, sympy.csc)
POLE_PERIODIC = (sympy.tan, sympy.cot)
DOMAIN_SCANS = (10.0, 50.0)  # where to look for the domain when it is not near 0
READABLE = 1e4  # |f| that most of a window may reach
SCAN_HALF_WIDTH = 10.0
OVERFLOW = 1e12  # |f| beyond which a value beside a gap means overflow, not the end of the domain  # features are looked for this far either side of the natural window's centre
FEATURE_SAMPLES = 4001
MIN_WIDTH, MAX_WIDTH = 2.0, 16.0
MAX_FEATURES = 12  # features near the natural window beyond which it stays (tan(e^x) has poles without end)
AXES_SIZE = (5.8, 4.4)  # screen units of each panel's axes (x_length, y_length); the template draws them so
READABLE_ANGLES = (15.0, 75.0)  # degrees on screen between which a tangent reads as sloped, not flat or vertical
IDEAL_ANGLES = (25.0, 60.0)  # among readable angles, those that need no second look
FOCUS_SHARE = 0.4
VISIBLE_SHARE = 0.75  # of the curve that a zoomed y-range still shows


@dataclass(frozen=True)
class Features:
    """Where f does something a teacher would point at, inside the scanned stretch."""

    zeros: tuple[float, ...]
    extrema: tuple[float, ...]  # sign changes of f' (corners included)
    inflections: tuple[float, ...]
    breaks: tuple[float, ...]  # poles and jumps of f
    corners: tuple[float, ...]  # f continuous, f' broken
    edges: tuple[float, ...]  # ends of the domain

    def points(self) -> tuple[float, ...]:
        return tuple(sorted({*self.zeros, *self.extrema, *self.inflections, *self.breaks, *self.corners, *self.edges}))

    def inside(self, low: float, high: float) -> "Features":
        keep = lambda xs: tuple(x for x in xs if low <= x <= high)  # noqa: E731
        return Features(*(keep(getattr(self, name)) for name in self.__dataclass_fields__))


@dataclass(frozen=True)
class Axis:
    """An axis range rounded out to tick marks, with the ticks to label."""

    low: float
    high: float
    step: float
    decimals: int

    @classmethod
    def around(cls, low: float, high: float, target_ticks: int) -> "Axis":
        step = nice_step(high - low, target_ticks)
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        return cls(math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step, step, decimals)

    @property
    def ticks(self) -> list[float]:
        count = round((self.high - self.low) / self.step)
        return [round(self.low + i * self.step, self.decimals + 2) for i in range(count + 1)]


def grid_roots(evaluate, xs: np.ndarray, values: np.ndarray) -> list[float]:
    """Where sampled values change sign, refined by bisection; a sign change across a pole is not a root."""
    finite = np.isfinite(values)
    with np.errstate(over="ignore"):  # a product of two huge values only has to keep its sign
        crossing = np.flatnonzero(finite[:-1] & finite[1:] & (np.sign(values[:-1]) * np.sign(values[1:]) < 0))
    scale = float(np.percentile(np.abs(values[finite]), 80)) if finite.any() else 1.0
    # A sample that is exactly 0 is a root when both neighbours are not (e^(x^3) underflows to 0 far left).
    zero = (values == 0) & finite
    isolated = zero & ~np.concatenate(([True], zero[:-1])) & ~np.concatenate((zero[1:], [True]))
    roots = [float(x) for x in xs[isolated]]
    for i in crossing:
        low, high, sign_low = xs[i], xs[i + 1], np.sign(values[i])
        for _ in range(50):
            middle = (low + high) / 2
            value = evaluate(np.array([middle]))[0]
            if not np.isfinite(value):
                break
            low, high = (middle, high) if np.sign(value) == sign_low else (low, middle)
        middle = (low + high) / 2
        value = evaluate(np.array([middle]))[0]
        if np.isfinite(value) and abs(value) <= 1e-4 * (1 + scale):  # a pole's "crossing" is huge here
            roots.append(float(middle))
    return sorted(set(round(r, 9) for r in roots))


def find_features(expr: sympy.Expr, var: sympy.Symbol, low: float, high: float) -> Features:
    """The features of f on [low, high]."""
    f_expr = expr
    df_expr = derivative(f_expr, var)
    # f'' of abs(x) holds DiracDelta, which numpy cannot evaluate; off its one point it is 0.
    ddf_expr = derivative(df_expr, var).replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.S.Zero)
    f, df, ddf = (evaluator(e, var) for e in (f_expr, df_expr, ddf_expr))
    xs = np.linspace(low, high, FEATURE_SAMPLES)
    ys, dys, ddys = f(xs), df(xs), ddf(xs)
    # An edge ends a stretch of the domain at a gap of several samples: one undefined sample is a hole or a pole
    # (sin(x)/x at 0), and x^x's isolated values at negative integers are no domain.
    gaps = [(a, b) for a, b in runs(~np.isfinite(ys)) if b - a >= 2 or a == 0 or b == len(xs) - 1]
    # Where f only overflows (e^(x^3) past x = 8.9) its domain does not end: an edge has a moderate value beside it.
    finite, ok = np.isfinite(ys) & (np.abs(ys) < OVERFLOW), np.isfinite
    edges = [bisect_edge(f, xs[a - 1], xs[a], ok) for a, _ in gaps if a >= 20 and finite[a - 20:a].all()]
    edges += [bisect_edge(f, xs[b + 1], xs[b], ok) for _, b in gaps if b + 21 <= len(xs) and finite[b + 1:b + 21].all()]
    f_breaks = trace_curve(f, low, high).breaks
    df_breaks = trace_curve(df, low, high).breaks
    width = high - low
    near = lambda x, xs_: any(abs(x - y) < 0.01 * width for y in xs_)  # noqa: E731
    corners = tuple(b for b in df_breaks if not near(b, f_breaks) and not near(b, edges) and np.isfinite(f(np.array([b]))[0]))
    return Features(
        zeros=tuple(grid_roots(f, xs, ys)),
        extrema=tuple(sorted({*grid_roots(df, xs, dys), *corners})),
        inflections=tuple(x for x in grid_roots(ddf, xs, ddys) if not near(x, f_breaks)),
        breaks=tuple(f_breaks),
        corners=corners,
        edges=tuple(sorted(set(round(e, 9) for e in edges))),
    )


def round_out(low: float, high: float) -> tuple[float, float]:
    """The window rounded outward to its tick marks (half a tick step)."""
    step = nice_step(high - low, 8) / 2
    # A domain edge found numerically (ln(x): 1e-12) must not push the window a whole step outward.
    return float(np.floor(low / step + 1e-6) * step), float(np.ceil(high / step - 1e-6) * step)


def _half_width(expr: sympy.Expr, var: sympy.Symbol) -> float:
    """How far either side of the centre to look: two periods for sin/cos, a few branches for tan, else 4."""
    calls = [call for call in expr.atoms(sympy.Function) if call.has(var)]
    linear = [call for call in calls if call.args[0].is_polynomial(var) and sympy.degree(call.args[0], var) == 1]
    if any(isinstance(call, POLE_PERIODIC) for call in linear):
        return 1.5 * float(sympy.pi)
    if any(isinstance(call, PERIODIC) for call in linear):
        return 2 * float(sympy.pi)
    if any(isinstance(call, (*PERIODIC, *POLE_PERIODIC)) for call in calls):
        return 3.0
    return 4.0


def is_periodic(expr: sympy.Expr, var: sympy.Symbol) -> bool:
    """Whether f holds a trig function of a linear argument: its features repeat, and two periods are the window."""
    return _half_width(expr, var) >= 1.5 * float(sympy.pi)


def natural_window(function: ParsedFunction) -> tuple[float, float]:
    """A window on the real, finite part of f's domain: [-4, 4] or periods of a trig function, trimmed to the
    domain (ln(x) starts at 0, asin(x) lives in [-1, 1]) and rounded outward to tick marks."""
    evaluate = evaluator(function.expr, function.variable)
    half = _half_width(function.expr, function.variable)
    for scan in (half, *DOMAIN_SCANS):
        xs = np.linspace(-scan, scan, 2001)
        defined = np.isfinite(evaluate(xs))
        for a, b in runs(~defined):  # a pole is a point, not a border: the window may span it
            defined[a:b + 1] |= 0 < a and b < len(xs) - 1 and b - a < 40
        pieces = [(xs[a], xs[b]) for a, b in runs(defined) if b - a >= 20]
        if pieces:
            break
    else:
        raise InvalidInput(f"{function.name}({function.variable}) has no real values between -{scan:g} and {scan:g}")
    # The run closest to [-half, half], trimmed to a window 2*half wide.
    left, right = min(pieces, key=lambda run: (max(run[0], -half) >= min(run[1], half), min(abs(run[0]), abs(run[1]))))
    if right - left > 2 * half:
        left, right = (max(left, -half), min(right, half)) if left < half and right > -half else (
            (left, left + 2 * half) if left >= half else (right - 2 * half, right))
    # Narrow a window on which f grows out of any readable scale (e^(x^2) on [-7, 7] reaches 1e21), around
    # its middle; a percentile, not the maximum, so that a pole alone does not narrow it.
    while right - left > 1 and np.nanpercentile(np.abs(evaluate(np.linspace(left, right, 401))), 90) > READABLE:
        middle, half_width = (left + right) / 2, 0.4 * (right - left)
        left, right = middle - half_width, middle + half_width
    return round_out(left, right)


def choose_window(function: ParsedFunction) -> tuple[float, float]:
    """The window a teacher would show: the natural one for a periodic function (two periods), else the stretch
    that holds the features."""
    natural = natural_window(function)
    if is_periodic(function.expr, function.variable):
        return natural
    return teaching_window(function.expr, function.variable, natural)


def teaching_window(expr: sympy.Expr, var: sympy.Symbol, natural: tuple[float, float]) -> tuple[float, float]:
    """The window that holds f's features near the natural window, padded, on f's domain.

    The padding stops where f runs away from the features' heights (x^x: its minimum at 1/e is readable on
    [0, 2], not on [0, 4] where x^x reaches 256). `natural` (periods of a trig function, [-4, 4], trimmed to the
    domain) stays when f has no features, or features spread too far to show at once.
    """
    centre = (natural[0] + natural[1]) / 2
    low, high = centre - SCAN_HALF_WIDTH, centre + SCAN_HALF_WIDTH
    features = find_features(expr, var, low, high)
    points = features.points()
    if not points or len(points) > MAX_FEATURES:  # none to show, or too many to show at once (tan(e^x))
        return natural
    evaluate = evaluator(expr, var)
    hull_low, hull_high = min(points), max(points)
    pad = max(0.35 * (hull_high - hull_low), 1.5)
    # Heights f reaches at its features, and next to its domain edges (x^x tends to 1 at 0).
    heights = evaluate(np.array([*features.zeros, *features.extrema, *features.inflections, *features.edges, np.nan]))
    heights = heights[np.isfinite(heights)]
    # How far f may run from the features' heights: six times their spread, or with one height only (x^2's 0),
    # six times how far f moves one unit beyond the features.
    beyond = evaluate(np.array([hull_low - 1.0, hull_high + 1.0]))
    spread = np.ptp(heights) if heights.size > 1 else 0.0
    if heights.size and spread <= 1e-9 * (1 + np.max(np.abs(heights))) and np.isfinite(beyond).any():
        spread = float(np.nanmax(np.abs(beyond - heights[0])))
    limit = np.max(np.abs(heights)) + 6 * spread if heights.size and spread > 0 else math.inf
    # Each side reaches to the natural window's edge (or the padding, if further) unless f runs away first.
    left = _reach(evaluate, hull_low, -max(pad, hull_low - natural[0]), limit, pad)
    right = _reach(evaluate, hull_high, max(pad, natural[1] - hull_high), limit, pad)
    # Never past an edge where the domain ends (ln(x) starts at 0); a gap inside the features' hull stays
    # (sqrt(x^3 - x) lives on [-1, 0] and [1, oo): both are shown).
    step = 1e-6 * (high - low)
    starts = [e for e in features.edges if not np.isfinite(evaluate(np.array([e - step]))[0]) and e <= hull_low + step]
    ends = [e for e in features.edges if not np.isfinite(evaluate(np.array([e + step]))[0]) and e >= hull_high - step]
    domain = (max(starts, default=-math.inf), min(ends, default=math.inf))
    left, right = max(left, domain[0]), min(right, domain[1])
    if right - left < MIN_WIDTH:  # grow into the side that has room
        missing = MIN_WIDTH - (right - left)
        left, right = max(domain[0], left - missing / 2), min(domain[1], right + missing / 2)
        left, right = max(domain[0], right - MIN_WIDTH), min(domain[1], left + MIN_WIDTH)
    if right - left > MAX_WIDTH or right - left < 0.5:
        return natural
    return round_out(left, right)


def _reach(evaluate, start: float, distance: float, limit: float, pad: float) -> float:
    """How far from `start` (up to `distance`, signed, and at least a fifth of the padding) before |f| passes
    `limit`."""
    xs = start + np.linspace(0, distance, 401)
    beyond = np.flatnonzero(np.abs(evaluate(xs)) > limit)
    if not beyond.size:
        return float(xs[-1])
    least = start + math.copysign(pad / 5, distance)
    return float(max(xs[beyond[0]], least) if distance > 0 else min(xs[beyond[0]], least))


def teaching_y_range(evaluate, x_min: float, x_max: float, focus: tuple[float, ...]) -> tuple[float, float]:
    """f's y-range: the whole curve's robust range, unless the features' own heights would fill less than
    FOCUS_SHARE of it; then a range around those heights, grown until it holds VISIBLE_SHARE of the curve, and the
    runaway tails leave the axes (x^2*e^(-x) on [-1, 5]: the maximum 0.54 at x = 2 stays readable instead of flat
    under a tail that reaches 2.7)."""
    ys = evaluate(np.linspace(x_min, x_max, 1201))
    full = robust_range(ys)
    heights = evaluate(np.array([x for x in focus if x_min <= x <= x_max] or [np.nan]))
    heights = heights[np.isfinite(heights)]
    if heights.size < 2 or np.ptp(heights) < 1e-9 or np.ptp(heights) >= FOCUS_SHARE * (full[1] - full[0]):
        return full
    finite = ys[np.isfinite(ys)]
    low, high, grow = heights.min(), heights.max(), np.ptp(heights)
    low, high = max(full[0], low - grow), min(full[1], high + grow)
    step = max(0.25 * grow, 0.02 * (full[1] - full[0]))
    while np.mean((finite >= low) & (finite <= high)) < VISIBLE_SHARE and (low > full[0] or high < full[1]):
        low, high = max(full[0], low - step), min(full[1], high + step)
    return low, high


def screen_angle(slope: float, x_axis: Axis | tuple[float, float], y_axis: Axis | tuple[float, float]) -> float:
    """The angle in degrees (0 to 90) at which a line of this slope is drawn on the axes."""
    (x_low, x_high), (y_low, y_high) = (_span(x_axis), _span(y_axis))
    on_screen = slope * (AXES_SIZE[1] / (y_high - y_low)) / (AXES_SIZE[0] / (x_high - x_low))
    return math.degrees(math.atan(abs(on_screen))) if math.isfinite(on_screen) else 90.0


def _span(axis) -> tuple[float, float]:
    return (axis.low, axis.high) if isinstance(axis, Axis) else tuple(axis)


def relief(evaluate, x0: float, x_axis, y_axis, reach: float = 0.1) -> float:
    """How much f rises and falls within `reach` of the window either side of x0, as a share of the y-axis."""
    (x_low, x_high), (y_low, y_high) = _span(x_axis), _span(y_axis)
    reach = reach * (x_high - x_low)
    ys = evaluate(np.linspace(max(x_low, x0 - reach), min(x_high, x0 + reach), 81))
    ys = np.clip(ys[np.isfinite(ys)], y_low, y_high)
    return float((ys.max() - ys.min()) / (y_high - y_low)) if ys.size else 0.0


def is_readable_angle(angle: float) -> bool:
    return READABLE_ANGLES[0] <= angle <= READABLE_ANGLES[1]


def round_candidates(x_min: float, x_max: float) -> list[float]:
    """Points of the window, roundest first: integers, halves, quarters, tenths, then a fine grid."""
    found: list[float] = []
    for step in (1.0, 0.5, 0.25, 0.1):
        for x in np.arange(math.ceil(x_min / step) * step, x_max + 1e-9, step):
            x = round(float(x), 6)
            if x not in found:
                found.append(x)
    found += [round(float(x), 3) for x in np.linspace(x_min, x_max, 161) if round(float(x), 3) not in found]
    return found


def roundness(x: float) -> int:
    """0 for integers, 1 for halves, 2 for quarters and tenths, 3 otherwise."""
    return next((rank for rank, step in enumerate((1.0, 0.5)) if abs(x / step - round(x / step)) < 1e-9),
                2 if any(abs(x / s - round(x / s)) < 1e-9 for s in (0.25, 0.1)) else 3)


def teaching_x0(candidates: list[float], df_value, x_axis, y_axis) -> float | None:
    """Among valid x0 candidates, the one a teacher would take: its tangent visibly slopes on screen (not at a
    critical point, not on a flat stretch, not nearly vertical), then the roundest, then nearest the middle of
    the window with an angle between 25 and 60 degrees."""
    if not candidates:
        return None
    x_low, x_high = _span(x_axis)
    middle, width = (x_low + x_high) / 2, x_high - x_low

    def key(x: float):
        angle = screen_angle(float(df_value(np.array([x]))[0]), x_axis, y_axis)
        return (not is_readable_angle(angle), roundness(x),
                max(0.0, IDEAL_ANGLES[0] - angle, angle - IDEAL_ANGLES[1]) / 40 + abs(x - middle) / width
                + (0.05 if x < 0 else 0))  # x > 0 reads easier

    return min(candidates, key=key)


MIN_RELIEF = 0.05  # of the y-axis that f must rise or fall near x0 for the secant and tangent to read
MIN_SHOWN = 0.5  # of the window over which f must be drawn
MIN_FEATURE_RELIEF = 0.04  # of the y-axis f must rise or fall within a quarter window of an extremum to show it


@dataclass(frozen=True)
class Readability:
    """How readable a scene's window and x0 are, measured as the viewer sees them."""

    angle: float  # of the tangent at x0 on screen, degrees
    relief: float  # f's rise and fall near x0, as a share of the y-axis
    shown: float  # share of the window over which f is drawn
    hidden_features: tuple[float, ...]  # extrema and inflection points in the window but off the y-axis
    flat_extrema: tuple[float, ...]  # extrema whose hump or dip is too shallow to see at the y-axis' scale

    @property
    def readable(self) -> bool:
        return (is_readable_angle(self.angle) and self.relief >= MIN_RELIEF and self.shown >= MIN_SHOWN
                and not self.hidden_features and not self.flat_extrema)

    def problems(self) -> list[str]:
        found = []
        if not is_readable_angle(self.angle):
            found.append(f"tangent at {self.angle:.0f} degrees on screen")
        if self.relief < MIN_RELIEF:
            found.append(f"f rises or falls by {self.relief:.0%} of its axis near x0")
        if self.shown < MIN_SHOWN:
            found.append(f"f drawn on {self.shown:.0%} of the window")
        if self.hidden_features:
            found.append("features off the y-axis at x = " + ", ".join(f"{x:.3g}" for x in self.hidden_features))
        if self.flat_extrema:
            found.append("extrema too shallow to see at x = " + ", ".join(f"{x:.3g}" for x in self.flat_extrema))
        return found


def readability(plan, expr: sympy.Expr, var: sympy.Symbol) -> Readability:
    """The readability measure of a scene plan: the tangent's angle on screen, f's relief near x0, how much of
    the window shows f, which extrema and inflection points fall off the y-axis, and which extrema are too
    shallow to see."""
    evaluate = evaluator(expr, var)
    features = find_features(expr, var, plan.x_min, plan.x_max)
    width = plan.x_max - plan.x_min
    inner = [x for x in (*features.extrema, *features.inflections)
             if plan.x_min + 0.02 * width < x < plan.x_max - 0.02 * width and x not in features.corners]
    heights = evaluate(np.array(inner or [np.nan]))
    hidden = tuple(x for x, y in zip(inner, heights) if np.isfinite(y) and not plan.f_axis.low <= y <= plan.f_axis.high)
    flat = tuple(x for x in features.extrema if x in inner and x not in hidden
                 and relief(evaluate, x, plan.x_axis, plan.f_axis, reach=0.25) < MIN_FEATURE_RELIEF)
    return Readability(
        angle=screen_angle(plan.df_x0, plan.x_axis, plan.f_axis),
        relief=relief(evaluate, plan.x0, plan.x_axis, plan.f_axis),
        shown=sum(b - a for a, b in plan.f_segments) / width,
        hidden_features=hidden,
        flat_extrema=flat,
    )
