"""The paper's Table 5 metrics, measured by parsing and running the code, never by reading it as text.

Static metrics come from the AST. Run-time metrics come from a dry-run report (derivanim.dryrun): what
the scene plotted with Axes.plot, which kinds of objects each phase put on screen, the straight lines it
drew (in the coordinates of its first axes) and its layout.
"""

import ast

import numpy as np
import sympy

from derivanim.calculus import derivative, evaluator
from derivanim.grammar import ParsedFunction

PHASES = (
    "show_title", "draw_axes_and_graph", "secant_to_tangent", "tangent_at_x0",
    "show_derivation", "show_result", "draw_derivative_graph", "sweep_tangent",
)
# What each phase must show, as Manim classes (any one name of each inner tuple), checked at run time.
PHASE_CONTENT = {
    "show_title": (("MathTex", "Tex", "Text"),),
    "draw_axes_and_graph": (("Axes",), ("ParametricFunction",)),
    "secant_to_tangent": (("Line",), ("Dot",), ("DecimalNumber",)),
    "tangent_at_x0": (("Line",), ("Dot",)),
    "show_derivation": (("MathTex",),),
    "show_result": (("MathTex",),),
    "draw_derivative_graph": (("Axes",), ("ParametricFunction",)),
    "sweep_tangent": (("DecimalNumber",), ("TracedPath",)),
}
# Which curves the viewer must see (axes in the order first plotted on: 0 is f's, 1 is f''s), and when: at the
# end of the phase, or after every one of its animations. A phase that loses f fails the scene.
PHASE_SHOWS = {
    "draw_axes_and_graph": ("end", ("0",)),
    "secant_to_tangent": ("every", ("0",)),
    "tangent_at_x0": ("every", ("0",)),
    "draw_derivative_graph": ("end", ("0", "1")),
    "sweep_tangent": ("every", ("0", "1")),
}
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


def static_metrics(code: str) -> dict[str, bool]:
    """The rows of the table that the syntax tree alone answers."""
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
    scene = next((c for c in classes if c.name == "DerivativeVisualization" and any(
        (isinstance(base, ast.Name) and base.id.endswith("Scene"))
        or (isinstance(base, ast.Attribute) and base.attr.endswith("Scene")) for base in c.bases)), None)
    return {
        "valid_syntax": True,
        "manim_imports": imports,
        "class_definition": bool(classes),
        "derivative_visualization": scene is not None,
        "eight_phases": scene is not None and tuple(_construct_calls(scene)) == PHASES
        and all(any(isinstance(item, ast.FunctionDef) and item.name == name for item in scene.body) for name in PHASES),
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


def missing_curves(report: dict) -> list[str]:
    """Where a phase should show f or f' and the viewer does not see it (from the dry run's per-animation record);
    empty for a scene without the lesson's phases, which PHASE_CONTENT already fails."""
    problems = []
    animations = report.get("animations", [])
    for phase, (when, curves) in PHASE_SHOWS.items():
        mine = [a for a in animations if a["phase"] == phase]
        for index, animation in enumerate(mine if when == "every" else mine[-1:]):
            for curve in curves:
                share = animation["curves"].get(curve, 0.0)
                if share < VISIBLE_SHARE:
                    name = "f" if curve == "0" else "f'"
                    problems.append(f"{phase}, animation {index + 1 if when == 'every' else len(mine)}: "
                                    f"{name} {share:.0%} on screen")
    return problems


def runtime_metrics(report: dict, function: ParsedFunction) -> dict[str, bool]:
    """The rows of the table that only running the scene answers, from its dry-run report."""
    f = evaluator(function.expr, function.variable)
    df = evaluator(derivative(function.expr, function.variable), function.variable)
    executable = report.get("error") is None
    plots = report.get("plots", [])
    phases = {phase["name"]: phase for phase in report.get("phases", [])}
    organised = executable and all(
        name in phases and all(any(kind in phases[name].get("classes", ()) for kind in alternatives)
                               for alternatives in PHASE_CONTENT[name])
        for name in PHASES
    ) and any(plot["axes"] == 1 for plot in plots)
    return {
        "template_organization": organised,
        "executable": executable,
        "function_plot": executable and any(curve_matches(plot, f) for plot in plots),
        "derivative_plot": executable and any(curve_matches(plot, df) for plot in plots)
        and any(tangent_matches(line, f, df) for line in report.get("lines", [])),
        "curves_on_screen": executable and organised and not missing_curves(report),
        "layout_clean": executable and bool(phases) and all(
            not phase["outside_frame"] and not phase["text_overlaps"] for phase in phases.values()),
    }


def usable(row: dict[str, bool]) -> bool:
    """All of the paper's rows hold (animation output only counts where it was measured)."""
    return all(row.get(key, False) for key, _ in TABLE if key not in ("usable", "animation_output")) and (
        row.get("animation_output") is not False)
