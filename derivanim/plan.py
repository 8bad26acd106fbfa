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
