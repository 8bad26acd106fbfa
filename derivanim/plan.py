"""The scene plan: everything the template needs, computed by SymPy. The template does no mathematics."""

from dataclasses import dataclass

import numpy as np
import sympy

from derivanim.calculus import evaluator, numpy_source, simplest
from derivanim.grammar import notation
from derivanim.drawing import defined_ends, sweep_branches
from derivanim.teaching import Axis
from derivanim.steps import derivation_steps, textbook_latex as latex
from derivanim.verify import Verified, secant_step

STEPS_PER_PAGE = 4


@dataclass(frozen=True)
class DerivationLine:
    rule: str
    latex: str
    note: str


@dataclass(frozen=True)
class ScenePlan:
    name: str
    variable: str
    f_latex: str
    df_latex: str  # the simplified derivative
    df_text: str  # the same, as SymPy prints it (and can parse back)
    df_notation: str  # the same in the grammar's notation ('(x^2 - 2x - 1)/(x - 1)^2'), which the grammar reads back
    f_source: str  # numpy source of f, in terms of `variable`
    df_source: str
    x_min: float
    x_max: float
    x_axis: Axis
    f_axis: Axis
    df_axis: Axis
    f_segments: tuple[tuple[float, float], ...]
    df_segments: tuple[tuple[float, float], ...]
    f_breaks: tuple[float, ...]
    df_breaks: tuple[float, ...]
    f_dots: tuple[tuple[float, float], ...]  # open dots: holes and the ends of jumps
    df_dots: tuple[tuple[float, float], ...]
    notes: tuple[str, ...]  # what the picture cannot show, said in words (LaTeX text)
    x0: float
    f_x0: float
    df_x0: float
    h0: float
    sweep: tuple[tuple[float, float], ...]  # the branches the tangent travels, left to right
    derivation_pages: tuple[tuple[DerivationLine, ...], ...]
    decimals: int  # for readouts of x and slope


def _number(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if abs(x) >= 0.005 else "0"


def _notes(verified: Verified, var) -> tuple[str, ...]:
    """In words, what the graphs show only as gaps: corners, where f' is undefined, and a stretch too fast to draw."""
    name, curves = verified.function.name, verified.curves
    notes = [rf"${name}'$ is undefined at ${var} = {_number(x)}$: ${name}$ has a corner there"
             for x in curves.corners]
    if curves.hidden is not None:
        low, high = curves.hidden
        notes.append(rf"Not drawn for ${_number(low)} < {var} < {_number(high)}$: ${name}$ oscillates too fast there")
    return tuple(notes)


def _pages(lines: list[DerivationLine]) -> tuple[tuple[DerivationLine, ...], ...]:
    return tuple(tuple(lines[i:i + STEPS_PER_PAGE]) for i in range(0, len(lines), STEPS_PER_PAGE))


def plan_scene(verified: Verified) -> ScenePlan:
    """Turn verified slots into the plan the template writes out."""
    slots, function = verified.slots, verified.function
    var = function.variable
    steps = derivation_steps(function.expr, var)
    derivative = simplest(verified.derivative, shapes=tuple(step.derivative for step in steps[:1]))
    f_value, df_value = evaluator(function.expr, var), evaluator(derivative, var)
    f_curve, df_curve = verified.f_curve, verified.df_curve
    f_pieces = defined_ends(f_value, f_curve.segments, slots.x_min, slots.x_max)
    df_pieces = defined_ends(df_value, df_curve.segments, slots.x_min, slots.x_max)
    width = slots.x_max - slots.x_min
    x0 = slots.x0
    lines = [DerivationLine(step.rule, step.latex, step.note) for step in steps]
    if steps and latex(derivative) != latex(steps[0].derivative):
        lines.append(DerivationLine("simplify", rf"{function.name}'({var}) = {latex(derivative)}", ""))
    return ScenePlan(
        name=function.name,
        variable=str(var),
        f_latex=latex(function.expr),
        df_latex=latex(derivative),
        df_text=str(derivative),
        df_notation=notation(derivative),
        f_source=numpy_source(function.expr),
        df_source=numpy_source(derivative),
        x_min=slots.x_min,
        x_max=slots.x_max,
        x_axis=Axis.around(slots.x_min, slots.x_max, 8),
        f_axis=Axis.around(f_curve.y_min, f_curve.y_max, 6),
        df_axis=Axis.around(df_curve.y_min, df_curve.y_max, 6),
        f_segments=f_pieces,
        df_segments=df_pieces,
        f_breaks=f_curve.breaks,
        df_breaks=df_curve.breaks,
        f_dots=verified.curves.f_dots,
        df_dots=verified.curves.df_dots,
        notes=_notes(verified, var),
        x0=x0,
        f_x0=float(f_value(np.array([x0]))[0]),
        df_x0=float(df_value(np.array([x0]))[0]),
        h0=secant_step(x0, f_curve, width),
        sweep=sweep_branches(f_pieces, df_pieces, slots.x_min, slots.x_max),
        derivation_pages=_pages(lines),
        decimals=2,
    )


def derivative_problems(plan: ScenePlan) -> list[str]:
    """f' in the scene against f in the scene: Richardson-extrapolated central differences at points of the window
    (off-centre, so that no point is exactly 0). A wrong f' is wrong almost everywhere; one odd point is rounding
    next to a removable singularity (sin(x)/x at 0), so it takes more than one to fail."""
    namespace = {"numpy": np}
    variable = plan.variable
    # Our own SymPy-printed numpy source (never user text) is evaluated here, as the scene will evaluate it.
    f = eval(f"lambda {variable}: {plan.f_source}", namespace)  # noqa: S307
    df = eval(f"lambda {variable}: {plan.df_source}", namespace)  # noqa: S307
    width = plan.x_max - plan.x_min
    breaks = (*plan.f_breaks, *plan.df_breaks)
    xs = [x for x in np.linspace(plan.x_min + 0.0513 * width, plan.x_max - 0.0487 * width, 29)  # numpy floats: 1/0 is inf
          if all(abs(x - b) > 0.02 * width for b in breaks)]
    h = 1e-4 * width
    checked, wrong = 0, []
    with np.errstate(all="ignore"):
        for x in xs:
            values = [complex(v) for v in (f(x - h), f(x + h), f(x - h / 2), f(x + h / 2), df(x))]
            if not all(np.isfinite(v) and abs(v.imag) < 1e-12 for v in values):
                continue
            wide, narrow = (values[1].real - values[0].real) / (2 * h), (values[3].real - values[2].real) / h
            estimate, slope = (4 * narrow - wide) / 3, values[4].real  # the h^2 error term cancels
            checked += 1
            if abs(estimate - slope) > 1e-4 * max(1.0, abs(slope)):
                wrong.append(f"f'({x:.3g}) = {slope:.6g} in the scene, but f changes at {estimate:.6g} there")
    if checked < 3:
        return [f"f' could be checked at only {checked} points of the window"]
    return wrong[:1] if len(wrong) > max(1, checked // 10) else []
