"""The rules filler: slots from a bare function, decided by SymPy and numpy alone."""

from derivanim.calculus import derivative
from derivanim.grammar import parse_function
from derivanim.slots import Slots
from derivanim.teaching import choose_window
from derivanim.verify import good_x0, trace_curves


def rules_slots(text: str) -> Slots:
    """Slots for a bare function ('sin(x^2)', 'g(t) = t^3'): the window that shows f's features, and x0 a round
    number where the tangent visibly slopes (the mid-window if f has no point where a tangent can be drawn, which
    verification then reports)."""
    function = parse_function(text)
    x_min, x_max = choose_window(function)
    curves = trace_curves(function, derivative(function.expr, function.variable), x_min, x_max)
    x0 = good_x0(float("nan"), function, curves)
    return Slots(function=text.strip(), variable=str(function.variable), name=function.name,
                 x_min=x_min, x_max=x_max, x0=x0 if x0 is not None else (x_min + x_max) / 2)
