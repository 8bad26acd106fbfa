"""Run a generated scene without rendering video, and record what it drew.

`construct()` runs with Manim's animations skipped, so a scene takes seconds. Meanwhile every
`Axes.plot` call is recorded (which axes, which x-range, the plotted function's values); after every
animation, what the viewer sees is noted (each axes' curves and where its coordinates lie on screen, the
straight lines and the numbers shown), whatever the scene's structure; and after each phase method that
`construct()` calls, the layout is checked: every object inside the frame and no text on text. This runs
inside a worker process of derivanim.execute, which gives each scene its time limit and keeps a scene that
crashes or hangs from taking others with it.
"""

import ast
import atexit
import importlib.util
import re
import shutil
import tempfile
import traceback
from functools import cache
from pathlib import Path

import numpy as np

PLOT_SAMPLES = 41
MIN_SEGMENT = 0.5  # scene units: a straight object shorter than this is a tick, a dash or a glyph, not a tangent
STRAIGHTNESS = 1e-3  # of its length, the farthest a straight object's points may lie from its chord
# A number a text shows as a readout: the last thing it writes, after "=", "≈" or ":" ("f'(2.0) = 9.00").
READOUT = re.compile(r"(?:=|\\approx|≈|:)\s*\{?\s*([-−]?\s*\d+(?:\.\d+)?)\s*\}?\s*$")
OVERLAP_TOLERANCE = 0.03  # scene units two text boxes may share (glyph boxes are a little generous)
FRAME_TOLERANCE = 0.02


def phase_methods(source: str, scene_name: str) -> list[str]:
    """The methods of the class `scene_name` that its construct() calls as self.<method>(), in order (empty if none):
    the phases a scene has, which a lesson's scene must have as the lesson lists them."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == scene_name:
            own = {item.name for item in node.body if isinstance(item, ast.FunctionDef)} - {"construct"}
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "construct":
                    return [
                        call.func.attr for statement in item.body
                        if isinstance(statement, ast.Expr) and isinstance(call := statement.value, ast.Call)
                        and isinstance(call.func, ast.Attribute) and call.func.attr in own
                        and isinstance(call.func.value, ast.Name) and call.func.value.id == "self"
                    ]
    return []


TEXT_ATTRIBUTES = ("tex_string", "tex_strings", "text", "number", "num_decimal_places")


def _text_classes():
    from manim import DecimalNumber, MarkupText, MathTex, SingleStringMathTex, Tex, Text

    return (Text, MarkupText, MathTex, Tex, SingleStringMathTex, DecimalNumber)


def _visible(mobject) -> bool:
    from manim import VMobject

    return any(
        isinstance(m, VMobject) and m.has_points() and (m.get_stroke_opacity() > 0.01 or m.get_fill_opacity() > 0.01)
        for m in mobject.get_family()
    )


def layout_problems(scene) -> dict:
    """Objects outside the frame, and pairs of texts whose boxes overlap, in the scene as it stands."""
    from manim import config

    texts, shapes = [], []

    def walk(mobject):
        if isinstance(mobject, _text_classes()):
            texts.append(mobject)
        elif mobject.submobjects:
            for child in mobject.submobjects:
                walk(child)
        elif _visible(mobject):
            shapes.append(mobject)

    for mobject in scene.mobjects:
        walk(mobject)
    half_w, half_h = config.frame_width / 2 + FRAME_TOLERANCE, config.frame_height / 2 + FRAME_TOLERANCE
    visible = [t for t in texts if _visible(t)]
    boxes = {id(m): _box(m) for m in visible + shapes}  # once each: a box walks every point of the family
    outside = []
    for m in visible + shapes:
        left, right, bottom, top = boxes[id(m)]
        if max(abs(left), abs(right)) > half_w or max(abs(bottom), abs(top)) > half_h:
            outside.append(_describe(m))
    overlaps = []
    for i, a in enumerate(visible):
        for b in visible[i + 1:]:
            if _boxes_overlap(boxes[id(a)], boxes[id(b)]):
                overlaps.append([_describe(a), _describe(b)])
    return {"outside_frame": outside, "text_overlaps": overlaps}


def _box(mobject) -> tuple[float, float, float, float]:
    """left, right, bottom, top: the same box as get_left()/get_right()/..., computed in one pass."""
    points = mobject.get_points_defining_boundary()
    if len(points) == 0:
        return 0.0, 0.0, 0.0, 0.0
    (left, bottom), (right, top) = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return float(left), float(right), float(bottom), float(top)


def _boxes_overlap(a, b) -> bool:
    t = OVERLAP_TOLERANCE
    (a_left, a_right, a_bottom, a_top), (b_left, b_right, b_bottom, b_top) = a, b
    return (a_left + t < b_right - t and b_left + t < a_right - t
            and a_bottom + t < b_top - t and b_bottom + t < a_top - t)


def _describe(mobject) -> str:
    from manim import DecimalNumber

    text = getattr(mobject, "tex_string", None) or getattr(mobject, "text", None)
    if text is None and isinstance(mobject, DecimalNumber):  # hasattr(m, "get_value") holds for any Mobject
        text = f"{mobject.get_value():g}"
    return f"{type(mobject).__name__}({text!r})" if text is not None else type(mobject).__name__


@cache
def _media_dir() -> str:
    """A private media folder for this process: LaTeX is cached across scenes, and nothing lands in the cwd."""
    folder = tempfile.mkdtemp(prefix="derivanim-dryrun-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def blank_report(error: str | None = None) -> dict:
    """A report with nothing recorded yet: where every dry run starts, and all there is of one that never ended."""
    return {"phases": [], "plots": [], "animations": [], "error": error, "phase_names": [], "frame": None}


def inspect_scene(path: Path, scene_name: str, frames_dir: Path | None = None) -> dict:
    """Run the scene class `scene_name` in `path` in this process; returns what it plotted and how each phase was
    laid out."""
    from manim import CoordinateSystem, Mobject, config, tempconfig

    report = blank_report()
    plotted = []
    original_plot, original_become = CoordinateSystem.plot, Mobject.become

    def recording_plot(axes, function, x_range=None, **kwargs):
        graph = original_plot(axes, function, x_range=x_range, **kwargs)
        plotted.append((axes, function, list(x_range if x_range is not None else axes.x_range)[:2], graph))
        return graph

    def become_with_text(mobject, other, *args, **kwargs):
        # always_redraw(MathTex(...)) redraws through become(), which copies points but not what the text says
        result = original_become(mobject, other, *args, **kwargs)
        for name in TEXT_ATTRIBUTES if isinstance(other, _text_classes()) else ():
            if hasattr(other, name):
                setattr(mobject, name, getattr(other, name))
        return result

    CoordinateSystem.plot, Mobject.become = recording_plot, become_with_text
    try:
        report["phase_names"] = phases = phase_methods(Path(path).read_text(), scene_name)
        with tempconfig({"dry_run": True, "quality": "low_quality", "media_dir": _media_dir(),
                         "disable_caching": True, "verbosity": "ERROR", "progress_bar": "none"}):
            spec = importlib.util.spec_from_file_location(f"scene_{abs(hash(str(path)))}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            scene_class = getattr(module, scene_name)
            try:  # each play() jumps to its end state; dry_run alone would still compute every frame
                scene = scene_class(skip_animations=True)
            except TypeError:  # a scene with an __init__ of its own
                scene = scene_class()
            current = {"phase": "construct"}
            report["frame"] = [config.frame_width, config.frame_height]
            _record_animations(scene, plotted, report, check_layout=not phases, current=current)
            for index, name in enumerate(phases):
                _after_phase(scene, name, index, report, frames_dir, current)
            scene.render()
    except Exception as error:  # the scene's own error is the finding, not a crash of ours
        report["error"] = f"{type(error).__name__}: {error}"
        report["traceback"] = traceback.format_exc(limit=-4)
    finally:
        CoordinateSystem.plot, Mobject.become = original_plot, original_become
    axes_order = list(dict.fromkeys(id(axes) for axes, _, _, _ in plotted))
    for axes, function, (low, high), _ in plotted:
        xs = np.linspace(low, high, PLOT_SAMPLES)
        with np.errstate(all="ignore"):
            ys = [_number(function, x) for x in xs]
        report["plots"].append({"axes": axes_order.index(id(axes)), "x": xs.tolist(), "y": ys})
    return report


def _number(function, x: float) -> float | None:
    try:
        value = float(function(x))
    except Exception:
        return None
    return value if np.isfinite(value) else None


def _after_phase(scene, name: str, index: int, report: dict, frames_dir: Path | None, current: dict) -> None:
    """Wrap a phase method so that its layout is checked after each of its animations (a phase may fade its
    content out before it ends), and the fullest moment of it is saved as a frame."""
    method = getattr(scene, name, None)
    if method is None:
        return
    play = scene.play

    def wrapped(*args, **kwargs):
        phase = {"name": name, "outside_frame": [], "text_overlaps": [], "classes": []}
        fullest = [-1]

        def checked_play(*play_args, **play_kwargs):
            play(*play_args, **play_kwargs)
            _merge_layout(phase, scene)
            size = sum(len(m.get_family()) for m in scene.mobjects)
            if frames_dir is not None and size > fullest[0]:
                fullest[0] = size
                _save_frame(scene, Path(frames_dir) / f"phase{index + 1}_{name}.png")

        scene.play = checked_play
        current["phase"] = name
        try:
            return method(*args, **kwargs)
        finally:
            scene.play = play
            report["phases"].append(phase)
            current["phase"] = "construct"

    setattr(scene, name, wrapped)


def _merge_layout(phase: dict, scene) -> None:
    """Add what the scene shows now to a phase's findings: layout problems and the classes on screen."""
    for key, found in layout_problems(scene).items():
        phase[key] += [item for item in found if item not in phase[key]]
    on_screen = {cls.__name__ for m in scene.mobjects for part in m.get_family() for cls in type(part).__mro__}
    phase["classes"] = sorted(on_screen.union(phase["classes"]))


def on_screen(scene, plotted: list) -> dict:
    """What the viewer sees of each axes' curves now: the share of their plotted x-extent that is on screen
    (in the scene, with points, visible and inside the frame), by axes in the order first plotted on."""
    from manim import config

    shown = {id(part) for mobject in scene.mobjects for part in mobject.get_family()}
    half_w, half_h = config.frame_width / 2 + FRAME_TOLERANCE, config.frame_height / 2 + FRAME_TOLERANCE
    axes_order = list(dict.fromkeys(id(axes) for axes, _, _, _ in plotted))
    extent, visible = [0.0] * len(axes_order), [0.0] * len(axes_order)
    for axes, _, (low, high), graph in plotted:
        index = axes_order.index(id(axes))
        extent[index] += abs(high - low)
        points = graph.points
        if (id(graph) in shown and len(points) and graph.get_stroke_opacity() > 0.01 and np.isfinite(points).all()
                and np.all(np.abs(points[:, 0]) <= half_w) and np.all(np.abs(points[:, 1]) <= half_h)):
            visible[index] += abs(high - low)
    return {str(i): round(v / e, 3) if e else 0.0 for i, (v, e) in enumerate(zip(visible, extent))}


def nan_points(scene) -> list[str]:
    """The objects on screen with a point that is not a number: Manim draws nothing of them, silently."""
    return [_describe(part) for mobject in scene.mobjects for part in mobject.get_family()
            if len(part.points) and not np.isfinite(part.points).all()]


def _record_animations(scene, plotted: list, report: dict, check_layout: bool, current: dict) -> None:
    """After every animation, note what the viewer sees: each axes' curves, objects with NaN points, where each
    axes' coordinates lie on screen, the straight lines and the numbers shown (a tangent and its slope readout
    are among them); a scene without phase methods is checked for layout as one phase."""
    play = scene.play
    whole = {"name": "construct", "outside_frame": [], "text_overlaps": [], "classes": []}
    if check_layout:
        report["phases"].append(whole)

    def recording_play(*args, **kwargs):
        play(*args, **kwargs)
        broken = nan_points(scene)
        report["animations"].append({"phase": current["phase"], "curves": on_screen(scene, plotted),
                                     "nan_points": broken, "axes": axes_mappings(plotted),
                                     "segments": straight_segments(scene, plotted), "numbers": numbers_shown(scene)})
        if broken and report["error"] is None:  # loudly: this is what made curves vanish from videos
            report["error"] = (f"NaN point in {', '.join(sorted(set(broken)))} after animation "
                               f"{len(report['animations'])} ({current['phase']})")
        if check_layout:
            _merge_layout(whole, scene)

    scene.play = recording_play


def axes_mappings(plotted: list) -> list[list[list[float]] | None]:
    """Where each axes' coordinates lie on screen now, by axes in the order first plotted on: the scene points of
    (0, 0), and the steps of one unit along x and along y (Axes map coordinates affinely; None where the axes
    cannot say, as a logarithmic axis at 0)."""
    mappings = []
    for axes in {id(axes): axes for axes, _, _, _ in plotted}.values():
        try:
            origin, x_one, y_one = (np.asarray(axes.c2p(*point), dtype=float)[:2] for point in ((0, 0), (1, 0), (0, 1)))
        except Exception:  # the scene's own axes may refuse a coordinate; that axes then maps nothing
            mappings.append(None)
            continue
        mapping = [origin, x_one - origin, y_one - origin]
        mappings.append([[round(float(v), 9) for v in vector] for vector in mapping]
                        if all(np.isfinite(vector).all() for vector in mapping) else None)
    return mappings


def _shown_parts(scene):
    """Every object on screen that is not part of a coordinate system (its axis lines, ticks and numbers) and not
    inside a text (whose glyphs have straight strokes and digits of their own); texts themselves are yielded."""
    from manim import CoordinateSystem

    def walk(mobject):
        if isinstance(mobject, CoordinateSystem):
            return
        yield mobject
        if not isinstance(mobject, _text_classes()):
            for child in mobject.submobjects:
                yield from walk(child)

    for mobject in scene.mobjects:
        yield from walk(mobject)


def straight_segments(scene, plotted: list) -> list[dict]:
    """The straight objects on screen, whatever drew them (Line, TangentLine, DashedLine's dashes, a straight
    Axes.plot): their ends in scene coordinates, and which recorded plot drew them (None for any other object),
    so that the graph of a straight f is not taken for its own tangent."""
    from manim import VMobject

    graphs = {id(graph): index for index, (_, _, _, graph) in enumerate(plotted)}
    segments = []
    for part in _shown_parts(scene):
        if not isinstance(part, VMobject) or isinstance(part, _text_classes()) or len(part.points) < 2:
            continue
        if part.get_stroke_opacity() <= 0.01 and part.get_fill_opacity() <= 0.01:
            continue
        points = part.points[:, :2]
        if not np.isfinite(points).all():
            continue
        direction = points[-1] - points[0]
        length = float(np.hypot(*direction))
        if length < MIN_SEGMENT:
            continue
        unit = direction / length
        offsets = points - points[0]
        if np.max(np.abs(offsets[:, 0] * unit[1] - offsets[:, 1] * unit[0])) > STRAIGHTNESS * length:
            continue
        along = offsets @ unit  # the ends are the extreme points along the chord, wherever the path starts
        start, end = points[int(np.argmin(along))], points[int(np.argmax(along))]
        segments.append({"start": [round(float(v), 9) for v in start], "end": [round(float(v), 9) for v in end],
                         "plot": graphs.get(id(part))})
    return segments


def numbers_shown(scene) -> list[dict]:
    """The numbers the viewer reads on screen as a value (axes' tick numbers left out): every DecimalNumber, and a
    text's readout (a number it ends with, after "=", "≈" or ":"); each as shown, with its decimal places."""
    from manim import DecimalNumber

    numbers = []
    for part in _shown_parts(scene):
        if not isinstance(part, _text_classes()) or not _visible(part):
            continue
        if isinstance(part, DecimalNumber):
            decimals = int(getattr(part, "num_decimal_places", 0))
            numbers.append({"value": round(float(part.get_value()), decimals), "decimals": decimals})
            continue
        text = getattr(part, "tex_string", None) or getattr(part, "text", None) or ""
        found = READOUT.search(text)
        if found:
            digits = found.group(1).replace("−", "-").replace(" ", "")
            numbers.append({"value": float(digits), "decimals": len(digits.partition(".")[2])})
    return numbers


def _save_frame(scene, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    scene.renderer.update_frame(scene, ignore_skipping=True)
    Image.fromarray(scene.renderer.get_frame()).save(path)
