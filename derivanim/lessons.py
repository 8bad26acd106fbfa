"""Lessons: everything that makes an animation the lesson it is, declared once and found by name.

A `Lesson` is what the stages read instead of constants of their own: the slots a filler decides, the plan function
that turns verified slots into what the template needs, the template that writes the scene and the scene's class,
its phases in order (the methods construct() calls) with what each must show, and the check of a plan. The template
stage writes construct() from the phases; the executor runs the lesson's scene class; metrics, dry runs, the frame
check and the corpus check hold a scene to its phases. The derivative lesson is the first one:
`lesson("derivative")`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from derivanim.errors import InvalidInput
from derivanim.plan import ScenePlan, derivative_problems, plan_scene
from derivanim.slots import Slots
from derivanim.verify import Verified


@dataclass(frozen=True)
class Phase:
    """One phase of a lesson's scene: the method construct() calls for it; the Manim classes it must put on screen
    (any one name of each inner tuple); and the curves the viewer must see, after every one of its animations
    ("every") or at its end ("end"). A phase that loses a curve it shows fails the scene."""

    method: str
    content: tuple[tuple[str, ...], ...]
    curves: tuple[str, ...] = ()
    curves_when: Literal["every", "end"] = "end"


@dataclass(frozen=True)
class Lesson:
    """A kind of animation. `curves` names the curves the scene plots, in the order of the axes they are first
    plotted on (a dry run reports curves by that order); `check_plan` says what is wrong with a plan (empty when
    it is sound)."""

    name: str
    template: str  # a file under templates/
    scene_class: str
    phases: tuple[Phase, ...]
    curves: tuple[str, ...]
    slots: type[BaseModel]
    plan: Callable[[Verified], ScenePlan]
    check_plan: Callable[[ScenePlan], list[str]]

    @property
    def phase_methods(self) -> tuple[str, ...]:
        """The methods construct() calls, in order."""
        return tuple(phase.method for phase in self.phases)


DERIVATIVE = Lesson(
    name="derivative",
    template="derivative_visualization.py.j2",
    scene_class="DerivativeVisualization",
    phases=(
        Phase("show_title", (("MathTex", "Tex", "Text"),)),
        Phase("draw_axes_and_graph", (("Axes",), ("ParametricFunction",)), ("f",), "end"),
        Phase("secant_to_tangent", (("Line",), ("Dot",), ("DecimalNumber",)), ("f",), "every"),
        Phase("tangent_at_x0", (("Line",), ("Dot",)), ("f",), "every"),
        Phase("show_derivation", (("MathTex",),)),
        Phase("show_result", (("MathTex",),)),
        # f fades back in during the phase, so f and f' are checked at its end
        Phase("draw_derivative_graph", (("Axes",), ("ParametricFunction",)), ("f", "f'"), "end"),
        Phase("sweep_tangent", (("DecimalNumber",), ("TracedPath",)), ("f", "f'"), "every"),
    ),
    curves=("f", "f'"),
    slots=Slots,
    plan=plan_scene,
    check_plan=derivative_problems,
)
LESSONS = {known.name: known for known in (DERIVATIVE,)}


def lesson(name: str) -> Lesson:
    """The lesson called `name`; InvalidInput (naming the lessons there are) for any other name."""
    try:
        return LESSONS[name]
    except KeyError:
        raise InvalidInput(f"no lesson is called {name!r}; the lessons are: {', '.join(LESSONS)}") from None
