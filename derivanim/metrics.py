"""The paper's Table 5 metrics, measured by parsing and running the code, never by reading it as text.

Static metrics come from the AST. Run-time metrics come from a dry-run report (derivanim.dryrun): what
the scene plotted with Axes.plot, which kinds of objects each phase put on screen, the straight lines and the
numbers on screen after each animation (with where each axes' coordinates lay) and its layout. The scene
class, its phases and what each phase must show are the lesson's (derivanim.lessons), the derivative lesson's
unless told otherwise. The paper's rows ask for the lesson's structure; the STRUCTURE_FREE rows ask only what
any derivative animation must get right, so that a scene written some other way (the original
DerivativeAnimator corpus's) is measured on what it shows.
"""

import ast

import numpy as np
import sympy

from derivanim.calculus import derivative, evaluator
from derivanim.dryrun import MIN_SEGMENT, PLOT_SAMPLES, STRAIGHTNESS
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
# Rows any derivative animation can pass, whatever its structure; the last is their conjunction.
STRUCTURE_FREE = (
    ("tangent_correct", "Tangent slope correct"),
    ("derivative_shown", "f' shown correctly (curve or slope readout)"),
    ("usable_any", "Usable (any structure)"),
)
RELATIVE_TOLERANCE = 1e-3
TOUCH_TOLERANCE = 0.02  # scene units (about 3 pixels at 1080p) between a tangent and the point of f it touches
SLOPE_TOLERANCE = 2e-2  # of 1 + |f'(x)|: a tangent's slope in axes coordinates against f'(x)
READOUT_TOLERANCE = 1e-3  # of 1 + |f'(x)|, beyond the rounding of the digits a readout shows
TOUCH_SAMPLES = 2001  # points of f tried along a tangent
DEFINITIONS = f"""\
How the rows are measured (a dry run of each scene records what is on screen after every animation):
- Paper's rows: "Has required 8-phase structure" and "Correct template organization" ask for the lesson's own
  phase methods and their content, so a scene structured any other way fails them by definition: they measure
  "wrote the template". "Correct function plotting" / "Correct derivative calculation": an `Axes.plot` curve
  equals f / f' (relative tolerance {RELATIVE_TOLERANCE:g} at {PLOT_SAMPLES} points of its x-range), the latter
  also with a correct tangent shown (below). "Usable animation" is the conjunction of the paper's rows and
  "Layout clean".
- Tangent slope correct: after some animation a straight object is on screen (a Line, TangentLine, a dash of a
  DashedLine or a straight `Axes.plot` curve, at least {MIN_SEGMENT} scene units long, its points within
  {STRAIGHTNESS:g} of its length of its chord; not part of an axes, not a text's glyph, not the first plot that
  draws f) that, converted into the coordinates of the axes f is plotted on (their mapping as it was then),
  comes closest to f at some x along it (a local minimum of the distance from f's points to the line, at most
  {TOUCH_TOLERANCE} scene units, located between samples by a parabola through the closest three of {TOUCH_SAMPLES})
  where its slope is f'(x) (within {SLOPE_TOLERANCE:g} x (1 + |f'(x)|)): a crossing at another slope does not count,
  and that point of f is inside the frame.
- f' shown correctly: a plotted curve equals f' (as above), or a slope readout is right: after some animation that
  shows a correct tangent touching f at x, a number on screen equals f'(x) to the digits it shows (within half a
  unit of its last digit + {READOUT_TOLERANCE:g} x (1 + |f'(x)|)). Numbers read: every DecimalNumber's value, and
  the number a MathTex/Tex/Text ends with after "=", "\\approx", "≈" or ":" (`f'(2.0) = 9.00`); axes' tick
  numbers are not read.
- Usable (any structure): executable, rendered with frames (where --render measured it), a curve equal to f
  plotted, a correct tangent shown, and layout clean (every object inside the frame, no text on text, after
  every animation); no phase, class or method names asked for.
"""


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


def graph_of_f(report: dict, f) -> int | None:
    """The recorded plot that draws f: the first whose values equal f's (a straight f's later plots may be
    tangents to it)."""
    return next((index for index, plot in enumerate(report.get("plots", [])) if curve_matches(plot, f)), None)


def tangent_touch(segment: dict, mapping: list, f, df) -> float | None:
    """Where a straight segment (ends in scene coordinates) touches the graph of f with f's slope, given where the
    axes' coordinates lie on screen (their (0, 0) and unit steps): that x, or None if it is no tangent to f. The
    slope is compared where the line comes closest to f, not wherever f' happens to match: a line crossing f at a
    small angle passes close to f where f' equals its slope."""
    origin, x_step, y_step = (np.asarray(vector, dtype=float) for vector in mapping)
    basis = np.column_stack([x_step, y_step])
    if abs(np.linalg.det(basis)) < 1e-12:
        return None
    start, end = np.asarray(segment["start"], dtype=float), np.asarray(segment["end"], dtype=float)
    (x1, y1), (x2, y2) = np.linalg.solve(basis, np.column_stack([start - origin, end - origin])).T
    if abs(x2 - x1) < 1e-9:
        return None
    slope = (y2 - y1) / (x2 - x1)
    xs = np.linspace(min(x1, x2), max(x1, x2), TOUCH_SAMPLES)
    with np.errstate(all="ignore"):
        curve = origin + np.outer(xs, x_step) + np.outer(np.broadcast_to(f(xs), xs.shape), y_step)
        chord = end - start
        distance = np.abs(chord[0] * (curve[:, 1] - start[1]) - chord[1] * (curve[:, 0] - start[0])) / np.hypot(*chord)
    distance = np.where(np.isfinite(distance), distance, np.inf)
    # Where the line meets f: each closest approach within the tolerance (a tangency, or a crossing)...
    before, after = np.r_[np.inf, distance[:-1]], np.r_[distance[1:], np.inf]
    contacts = np.flatnonzero((distance <= before) & (distance <= after) & (distance <= TOUCH_TOLERANCE))
    if not len(contacts):
        return None
    # ...placed between samples at the vertex of the parabola through the closest three (f - line ~ (x - t)^2)...
    with np.errstate(all="ignore"):
        bend = before[contacts] - 2 * distance[contacts] + after[contacts]
        shift = np.where(bend > 0, 0.5 * (before[contacts] - after[contacts]) / bend, 0.0)
    points = xs[contacts] + np.clip(np.nan_to_num(shift), -1, 1) * (xs[1] - xs[0])
    # ...and a tangency is one where the line has f's slope; a crossing has another.
    with np.errstate(all="ignore"):
        slopes = np.broadcast_to(df(points), points.shape)
        tangent = np.isfinite(slopes) & (np.abs(slopes - slope) <= SLOPE_TOLERANCE * (1 + np.abs(slopes)))
    if not tangent.any():
        return None
    return float(points[np.flatnonzero(tangent)[int(np.argmin(distance[contacts][tangent]))]])


def tangents_shown(report: dict, f, df) -> list[tuple[int, float]]:
    """(animation, x) for every correct tangent to f on screen after an animation, touching f at x inside the frame
    (lines converted through the axes f is plotted on, as they lay after that animation)."""
    graph = graph_of_f(report, f)
    if graph is None or report.get("frame") is None:
        return []
    axes = report["plots"][graph]["axes"]
    half = np.asarray(report["frame"], dtype=float) / 2
    found = []
    for index, animation in enumerate(report.get("animations", [])):
        mappings = animation.get("axes", [])
        mapping = mappings[axes] if axes < len(mappings) else None
        if mapping is None:
            continue
        origin, x_step, y_step = (np.asarray(vector, dtype=float) for vector in mapping)
        for segment in animation.get("segments", []):
            if segment["plot"] == graph:
                continue
            x = tangent_touch(segment, mapping, f, df)
            if x is None:
                continue
            with np.errstate(all="ignore"):
                point = origin + x * x_step + float(np.broadcast_to(f(np.array([x])), (1,))[0]) * y_step
            if np.all(np.abs(point) <= half + 1e-2):
                found.append((index, x))
    return found


def readout_correct(report: dict, tangents: list[tuple[int, float]], df) -> bool:
    """Whether, after some animation showing a correct tangent at x, a number on screen equals f'(x) to its digits."""
    animations = report.get("animations", [])
    for index, x in tangents:
        slope = float(np.broadcast_to(df(np.array([x])), (1,))[0])
        for number in animations[index].get("numbers", []):
            if abs(number["value"] - slope) <= 0.5 * 10.0 ** -number["decimals"] + READOUT_TOLERANCE * (1 + abs(slope)):
                return True
    return False


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
    tangents = tangents_shown(report, f, df) if executable else []
    derivative_curve = executable and any(curve_matches(plot, df) for plot in plots)
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
        "derivative_plot": derivative_curve and bool(tangents),
        "curves_on_screen": executable and organised and not missing_curves(report, lesson),
        "layout_clean": executable and bool(phases) and all(
            not phase["outside_frame"] and not phase["text_overlaps"] for phase in phases.values()),
        "tangent_correct": bool(tangents),
        "derivative_shown": derivative_curve or readout_correct(report, tangents, df),
    }


def usable(row: dict[str, bool]) -> bool:
    """All of the paper's rows hold (animation output only counts where it was measured)."""
    return all(row.get(key, False) for key, _ in TABLE if key not in ("usable", "animation_output")) and (
        row.get("animation_output") is not False)


def usable_any_structure(row: dict[str, bool]) -> bool:
    """Runs, renders (where measured), plots f correctly, shows a correct tangent, layout clean: whatever its
    structure."""
    return all(row.get(key, False) for key in ("executable", "function_plot", "tangent_correct", "layout_clean")) and (
        row.get("animation_output") is not False)
