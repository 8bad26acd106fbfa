"""The rules filler: slots from a bare function, decided by SymPy and numpy alone."""

import numpy as np
import sympy

from derivanim.calculus import evaluator, nice_step, runs, trace_curve
from derivanim.errors import InvalidInput
from derivanim.grammar import ParsedFunction, parse_function
from derivanim.slots import Slots

PERIODIC = (sympy.sin, sympy.cos, sympy.sec, sympy.csc)
POLE_PERIODIC = (sympy.tan, sympy.cot)
SCAN_HALF_WIDTHS = (10.0, 50.0)  # where to look for the domain when it is not near 0
READABLE = 1e4  # |f| that most of a window may reach


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


def natural_window(function: ParsedFunction) -> tuple[float, float]:
    """A window on the real, finite part of f's domain: [-4, 4] or periods of a trig function, trimmed to the
    domain (ln(x) starts at 0, asin(x) lives in [-1, 1]) and rounded outward to tick marks."""
    evaluate = evaluator(function.expr, function.variable)
    half = _half_width(function.expr, function.variable)
    for scan in (half, *SCAN_HALF_WIDTHS):
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
    step = nice_step(right - left, 8) / 2
    return float(np.floor(left / step + 1e-9) * step), float(np.ceil(right / step - 1e-9) * step)


def rules_slots(text: str) -> Slots:
    """Slots for a bare function ('sin(x^2)', 'g(t) = t^3'): the window from the domain, x0 the first good
    round number (1, 0.5, 2, -1, ...) where f is differentiable."""
    from derivanim.verify import good_x0

    function = parse_function(text)
    x_min, x_max = natural_window(function)
    var = function.variable
    f_curve = trace_curve(evaluator(function.expr, var), x_min, x_max)
    df_curve = trace_curve(evaluator(sympy.diff(function.expr, var), var), x_min, x_max)
    x0 = good_x0(float("nan"), f_curve, df_curve, x_min, x_max)
    return Slots(
        function=text.strip(), variable=str(var), name=function.name,
        x_min=x_min, x_max=x_max, x0=x0 if x0 is not None else (x_min + x_max) / 2,
    )
