"""The scene plan: everything the template needs, computed by SymPy. The template does no mathematics."""

import math
from dataclasses import dataclass

import numpy as np
import sympy

from derivanim.calculus import Curve, evaluator, nice_step, numpy_source, simplest
from derivanim.steps import derivation_steps, textbook_latex as latex
from derivanim.verify import Verified, secant_step

STEPS_PER_PAGE = 4


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
    x0: float
    f_x0: float
    df_x0: float
    h0: float
    sweep: tuple[float, float]
    derivation_pages: tuple[tuple[DerivationLine, ...], ...]
    decimals: int  # for readouts of x and slope


def _sweep(x0: float, f_curve: Curve, df_curve: Curve, width: float) -> tuple[float, float]:
    """The stretch around x0 on which f and f' are both drawn, so the tangent never crosses a pole."""
    inside = [(max(a, c), min(b, d)) for a, b in f_curve.segments for c, d in df_curve.segments]
    a, b = next((a, b) for a, b in inside if a <= x0 <= b)
    margin = 0.02 * width
    return a + margin, b - margin


def _pages(lines: list[DerivationLine]) -> tuple[tuple[DerivationLine, ...], ...]:
    return tuple(tuple(lines[i:i + STEPS_PER_PAGE]) for i in range(0, len(lines), STEPS_PER_PAGE))


def plan_scene(verified: Verified) -> ScenePlan:
    """Turn verified slots into the plan the template writes out."""
    slots, function = verified.slots, verified.function
    var = function.variable
    derivative = simplest(verified.derivative)
    f_value, df_value = evaluator(function.expr, var), evaluator(derivative, var)
    f_curve, df_curve = verified.f_curve, verified.df_curve
    width = slots.x_max - slots.x_min
    x0 = slots.x0
    steps = derivation_steps(function.expr, var)
    lines = [DerivationLine(step.rule, step.latex, step.note) for step in steps]
    if steps and latex(derivative) != latex(steps[0].derivative):
        lines.append(DerivationLine("simplify", rf"{function.name}'({var}) = {latex(derivative)}", ""))
    return ScenePlan(
        name=function.name,
        variable=str(var),
        f_latex=latex(function.expr),
        df_latex=latex(derivative),
        df_text=str(derivative),
        f_source=numpy_source(function.expr),
        df_source=numpy_source(derivative),
        x_min=slots.x_min,
        x_max=slots.x_max,
        x_axis=Axis.around(slots.x_min, slots.x_max, 8),
        f_axis=Axis.around(f_curve.y_min, f_curve.y_max, 6),
        df_axis=Axis.around(df_curve.y_min, df_curve.y_max, 6),
        f_segments=f_curve.segments,
        df_segments=df_curve.segments,
        f_breaks=f_curve.breaks,
        df_breaks=df_curve.breaks,
        x0=x0,
        f_x0=float(f_value(np.array([x0]))[0]),
        df_x0=float(df_value(np.array([x0]))[0]),
        h0=secant_step(x0, f_curve, width),
        sweep=_sweep(x0, f_curve, df_curve, width),
        derivation_pages=_pages(lines),
        decimals=2,
    )
