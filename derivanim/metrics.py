"""The paper's Table 5 metrics, measured by parsing and running the code, never by reading it as text.

Static metrics come from the AST. Run-time metrics come from a dry-run report (derivanim.dryrun): what
the scene plotted with Axes.plot, which kinds of objects each phase put on screen, the straight lines it
drew (in the coordinates of its first axes) and its layout. The scene class, its phases and what each phase
must show are the lesson's (derivanim.lessons), the derivative lesson's unless told otherwise.
"""

import ast

import numpy as np
import sympy

from derivanim.calculus import derivative, evaluator
from derivanim.grammar import ParsedFunction
from derivanim.lessons import DERIVATIVE, Lesson

VISIBLE_SHARE = 0.9  # of a curve's plotted x-extent that must be on screen
# (key, the paper's row name); the last is the conjunction of all the others.
TABLE = (
    ("valid_syntax", "Valid Python syntax"),
    ("manim_imports", "Contains Manim imports"),
    ("class_definition", "Contains class definition"),
    ("derivative_visualization", "Contains DerivativeVisualization"),
    ("eight_phases", "Has required 8-phase structure"),
    ("template_organization", "Correct template organization"),
    ("executable", "Executable (no runtime errors)"),
    ("function_plot", "Correct function plotting"),
    ("derivative_plot", "Correct derivative calculation"),
    ("curves_on_screen", "f and f' on screen where the lesson shows them"),
    ("animation_output", "Produces animation output"),
    ("usable", "Usable animation"),
)
RELATIVE_TOLERANCE = 1e-3


def static_metrics(code: str, lesson: Lesson = DERIVATIVE) -> dict[str, bool]:
    """The rows of the table that the syntax tree alone answers: is there the lesson's scene class, and does its
    construct() call the lesson's phases, in order, each a method of its own?"""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return {"valid_syntax": False, "manim_imports": False, "class_definition": False,
                "derivative_visualization": False, "eight_phases": False}
    imports = any(
        (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "manim")
        or (isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "manim" for alias in node.names))
        for node in ast.walk(tree)
    )
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    scene = next((c for c in classes if c.name == lesson.scene_class and any(
        (isinstance(base, ast.Name) and base.id.endswith("Scene"))
        or (isinstance(base, ast.Attribute) and base.attr.endswith("Scene")) for base in c.bases)), None)
    return {
        "valid_syntax": True,
        "manim_imports": imports,
        "class_definition": bool(classes),
        "derivative_visualization": scene is not None,
        "eight_phases": scene is not None and tuple(_construct_calls(scene)) == lesson.phase_methods
        and all(any(isinstance(item, ast.FunctionDef) and item.name == name for item in scene.body)
                for name in lesson.phase_methods),
    }


def _construct_calls(scene: ast.ClassDef) -> list[str]:
    construct = next((item for item in scene.body if isinstance(item, ast.FunctionDef) and item.name == "construct"), None)
    if construct is None:
        return []
    return [
        statement.value.func.attr for statement in construct.body
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
        and isinstance(statement.value.func, ast.Attribute)
        and isinstance(statement.value.func.value, ast.Name) and statement.value.func.value.id == "self"
    ]


def curve_matches(plot: dict, truth) -> bool:
    """A recorded plot equals the true function where both are finite (and at enough such points)."""
    xs = np.asarray(plot["x"], dtype=float)
    ys = np.array([np.nan if y is None else y for y in plot["y"]], dtype=float)
    expected = truth(xs)
    both = np.isfinite(ys) & np.isfinite(expected)
    if both.sum() < max(5, 0.5 * len(xs)):
        return False
    scale = max(1.0, float(np.max(np.abs(expected[both]))))
    return bool(np.all(np.abs(ys[both] - expected[both]) <= RELATIVE_TOLERANCE * scale + 1e-6))


def tangent_matches(line: dict, f, df) -> bool:
    """A straight line touches f somewhere along it with f's slope there: a tangent (or a secant as h -> 0)."""
    (x1, y1), (x2, y2) = line["start"], line["end"]
    if abs(x2 - x1) < 1e-9:
        return False
    slope = (y2 - y1) / (x2 - x1)
    xs = np.linspace(min(x1, x2), max(x1, x2), 401)
    gaps = np.abs(f(xs) - (y1 + slope * (xs - x1)))
    if not np.any(np.isfinite(gaps)):
        return False
    touch = xs[int(np.nanargmin(gaps))]
    height = max(1.0, abs(y2 - y1))
    true_slope = df(np.array([touch]))[0]
    return bool(np.nanmin(gaps) <= 1e-2 * height and np.isfinite(true_slope)
                and abs(slope - true_slope) <= 2e-2 * (1 + abs(true_slope)))


def missing_curves(report: dict, lesson: Lesson = DERIVATIVE) -> list[str]:
    """Where a phase should show a curve (f, f') and the viewer does not see it (from the dry run's per-animation
    record, which counts curves by their axes in the order first plotted on, as lesson.curves lists them); empty for
    a scene without the lesson's phases, which their content check already fails."""
    problems = []
    animations = report.get("animations", [])
    for phase in lesson.phases:
        every = phase.curves_when == "every"
        mine = [a for a in animations if a["phase"] == phase.method]
        for index, animation in enumerate(mine if every else mine[-1:]):
            for name in phase.curves:
                share = animation["curves"].get(str(lesson.curves.index(name)), 0.0)
                if share < VISIBLE_SHARE:
                    problems.append(f"{phase.method}, animation {index + 1 if every else len(mine)}: "
                                    f"{name} {share:.0%} on screen")
    return problems


def runtime_metrics(report: dict, function: ParsedFunction, lesson: Lesson = DERIVATIVE) -> dict[str, bool]:
    """The rows of the table that only running the scene answers, from its dry-run report."""
    f = evaluator(function.expr, function.variable)
    df = evaluator(derivative(function.expr, function.variable), function.variable)
    executable = report.get("error") is None
    plots = report.get("plots", [])
    phases = {phase["name"]: phase for phase in report.get("phases", [])}
    organised = executable and all(
        phase.method in phases and all(any(kind in phases[phase.method].get("classes", ()) for kind in alternatives)
                                       for alternatives in phase.content)
        for phase in lesson.phases
    ) and any(plot["axes"] == 1 for plot in plots)
    return {
        "template_organization": organised,
        "executable": executable,
        "function_plot": executable and any(curve_matches(plot, f) for plot in plots),
        "derivative_plot": executable and any(curve_matches(plot, df) for plot in plots)
        and any(tangent_matches(line, f, df) for line in report.get("lines", [])),
        "curves_on_screen": executable and organised and not missing_curves(report, lesson),
        "layout_clean": executable and bool(phases) and all(
            not phase["outside_frame"] and not phase["text_overlaps"] for phase in phases.values()),
    }


def usable(row: dict[str, bool]) -> bool:
    """All of the paper's rows hold (animation output only counts where it was measured)."""
    return all(row.get(key, False) for key, _ in TABLE if key not in ("usable", "animation_output")) and (
        row.get("animation_output") is not False)
