"""The frame-level check: it sees f's and f''s curves where a viewer does, and fails a video without them.

Fast tests draw frames with PIL (the template's colours, its two panels) and encode them with PyAV; the slow
ones render a real scene twice at -q l: as generated, and with f's curve pieces removed from its code.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw

from derivanim.framecheck import (Curve, SceneFacts, Span, check_video, classify, find_axes, main,
                                  measure, phase_spans)
from derivanim.lessons import DERIVATIVE

WIDTH, HEIGHT = 854, 480
WINDOW = (-4.0, 4.0)
PANELS = {"left": (43, 92, 392, 357), "right": (469, 92, 818, 357)}  # left, top, right, bottom, as Manim lays out
FACTS = SceneFacts.from_template()
CURVES = {curve.name: curve for curve in FACTS.curves}
(F_COLOUR,), (DF_COLOUR, POINT_COLOUR) = CURVES["f"].colours, CURVES["f'"].colours  # the sweep traces f' in yellow


def _column(panel: str, x: float) -> float:
    left, _, right, _ = PANELS[panel]
    return left + (x - WINDOW[0]) / (WINDOW[1] - WINDOW[0]) * (right - left)


def _row(panel: str, y: float) -> float:
    _, top, _, bottom = PANELS[panel]
    return (top + bottom) / 2 - y / 4 * (bottom - top)


def draw_frame(curves: dict[str, tuple[str, float, float]] = (), axes=("left", "right"), tangent=None,
               hole=False) -> np.ndarray:
    """A frame like the template's: white axes in each panel of `axes`; `curves` maps panel -> (colour, x from,
    x to), drawn as y = 1.5 sin(x) (left) or 0.1 x^2 - 1 (right); `tangent` = (x from, x to) lays a point-coloured
    segment along f; `hole` puts an open dot (black inside) where the left panel's axes cross."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "black")
    draw = ImageDraw.Draw(image)
    shape = {"left": lambda x: 1.5 * np.sin(x), "right": lambda x: 0.1 * x * x - 1}
    for panel in axes:
        left, top, right, bottom = PANELS[panel]
        draw.line([(left, (top + bottom) / 2), (right, (top + bottom) / 2)], fill="white", width=2)
        draw.line([((left + right) / 2, top), ((left + right) / 2, bottom)], fill="white", width=2)
    for panel, (colour, low, high) in dict(curves).items():
        xs = np.linspace(low, high, 200)
        draw.line([(_column(panel, x), _row(panel, shape[panel](x))) for x in xs], fill=colour, width=3)
    if tangent:
        xs = np.linspace(*tangent, 50)
        draw.line([(_column("left", x), _row("left", shape["left"](x))) for x in xs], fill=POINT_COLOUR, width=5)
    if hole:
        x, y = _column("left", 0), _row("left", 0)
        draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill="black", outline=F_COLOUR, width=2)
    return np.asarray(image)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 4) -> Path:
    """Encode frames the way Manim does (H.264, yuv420p), each held for one second."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for image in frames:
            for _ in range(fps):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def _hsv(frame: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).convert("HSV"))


def _facts() -> SceneFacts:
    """The template's facts for curves drawn over the whole window."""
    curves = tuple(Curve(c.name, c.panel, c.colours, (WINDOW,)) for c in FACTS.curves)
    return SceneFacts(curves, FACTS.palette, WINDOW)


def test_axes_are_found_where_they_are_drawn_and_not_in_a_blank_half():
    classes = classify(_hsv(draw_frame(axes=("left",))), FACTS.palette)
    top, bottom, left, right = find_axes(classes, "left")
    assert abs(top - 92) <= 2 and abs(bottom - 357) <= 2 and abs(left - 43) <= 2 and abs(right - 392) <= 2
    assert find_axes(classes, "right") is None


def test_an_open_dot_where_the_axes_cross_does_not_hide_them():
    """sin(x)/x: the hole of f' at (0, 0) is drawn as a dot, black inside, on both axis lines."""
    classes = classify(_hsv(draw_frame({"left": (F_COLOUR, *WINDOW)}, hole=True)), FACTS.palette)
    top, bottom, left, right = find_axes(classes, "left")
    assert abs(top - 92) <= 2 and abs(bottom - 357) <= 2 and abs(left - 43) <= 2 and abs(right - 392) <= 2


def test_a_whole_curve_is_shown_and_half_a_curve_is_not():
    f = _facts().curves[0]
    whole = classify(_hsv(draw_frame({"left": (F_COLOUR, *WINDOW)})), FACTS.palette)
    half = classify(_hsv(draw_frame({"left": (F_COLOUR, WINDOW[0], 0.0)})), FACTS.palette)
    box = find_axes(whole, "left")
    assert measure(whole, box, f, FACTS.palette, WINDOW).coverage > 0.95
    seen = measure(half, box, f, FACTS.palette, WINDOW)
    assert not seen.shown and 0.4 < seen.coverage < 0.6  # one branch of the window missing fails


def test_a_curve_in_another_colour_or_panel_is_not_f():
    f = _facts().curves[0]
    for curves in ({"left": (DF_COLOUR, *WINDOW)}, {"right": (F_COLOUR, *WINDOW)}):
        classes = classify(_hsv(draw_frame(curves)), FACTS.palette)
        assert not measure(classes, find_axes(classes, "left"), f, FACTS.palette, WINDOW).shown


def test_a_tangent_lying_on_the_curve_hides_it_without_failing_it():
    f = _facts().curves[0]
    classes = classify(_hsv(draw_frame({"left": (F_COLOUR, *WINDOW)}, tangent=(-1.5, 1.5))), FACTS.palette)
    seen = measure(classes, find_axes(classes, "left"), f, FACTS.palette, WINDOW)
    assert seen.shown and seen.columns < 0.75 * (392 - 43)  # the tangent did cover a third of the curve


def _healthy_frames():
    both = {"left": (F_COLOUR, *WINDOW), "right": (DF_COLOUR, *WINDOW)}
    return [draw_frame(axes=()), draw_frame({"left": both["left"]}, axes=("left",)), draw_frame(axes=()),
            draw_frame(both), draw_frame(both)]


def test_check_video_passes_a_video_with_both_curves(tmp_path):
    video = write_video(tmp_path / "healthy.mp4", _healthy_frames())
    for facts in (None, _facts()):
        result = check_video(video, facts)
        assert result.passed, result.text()
        assert [f.curves["f"].shown for f in result.frames if f.axes["left"]] == [True] * sum(
            f.axes["left"] for f in result.frames)


def test_check_video_fails_when_f_vanishes_while_its_axes_stay(tmp_path):
    frames = _healthy_frames()
    frames[3] = draw_frame({"right": (DF_COLOUR, *WINDOW)})  # f gone for a second in the middle of the sweep
    result = check_video(write_video(tmp_path / "gap.mp4", frames), _facts())
    assert not result.passed
    assert result.problems == ["f is missing from its panel in 2 of the 6 frames that should show it (3.0-3.5 s)"]
    # One sample alone may fall inside a fade (abs(x)'s f fading in under its tangent read as absent at 36.5 s):
    # sampled once a second, the same gap is one frame, which does not fail the video.
    single = check_video(write_video(tmp_path / "gap1.mp4", frames), _facts(), every=1.0)
    assert single.passed and [f.time for f in single.frames if f.missing] == [3.0]


def test_check_video_fails_when_the_graphs_vanish_for_good(tmp_path):
    frames = _healthy_frames()[:2] + [draw_frame(axes=())] * 3  # sin(1/x) in issue #11: axes and curve gone
    result = check_video(write_video(tmp_path / "vanished.mp4", frames))
    assert not result.passed
    assert "the axes of the right panel are never on screen" in result.problems


def test_phase_spans_follow_what_each_phase_shows():
    phases = {"show_title": [0, 3], "draw_axes_and_graph": [3, 7], "secant_to_tangent": [7, 17],
              "show_derivation": [17, 25], "draw_derivative_graph": [25, 30], "sweep_tangent": [30, 42]}
    spans = phase_spans(phases)
    assert Span("f", 7, 17) in spans and Span("f", 7, 7) in spans and Span("f'", 30, 30) in spans
    assert Span("f'", 30, 42) in spans and not any(s.start < 7 or 17 < s.start < 25 for s in spans)


def test_spans_decide_which_frames_must_show_a_curve(tmp_path):
    video = write_video(tmp_path / "healthy.mp4", _healthy_frames())
    assert check_video(video, _facts(), [Span("f", 1.1, 1.9), Span("f'", 3.1, 4.9)]).passed
    result = check_video(video, _facts(), [Span("f'", 1.1, 1.9)])  # f' is not drawn yet at 1-2 s
    assert result.problems == ["f' is missing from its panel in 3 of the 3 frames that should show it (1.2-1.8 s)"]
    late = check_video(video, _facts(), [Span("f", 3.1, 60.0)])  # phase times of a longer video
    assert not late.passed and "after the video's end" in late.problems[0]


def test_cli_exit_codes(tmp_path, capsys):
    healthy = write_video(tmp_path / "healthy.mp4", _healthy_frames())
    broken = write_video(tmp_path / "broken.mp4", [draw_frame({"right": (DF_COLOUR, *WINDOW)})] * 3)
    assert main([str(healthy)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main([str(broken), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False and "f is never shown in its panel" in report["problems"]
    assert main([str(tmp_path / "absent.mp4")]) == 2
    assert capsys.readouterr().err.startswith("framecheck: ")


def test_scene_facts_come_from_the_generated_code():
    from derivanim.api import fill

    facts = SceneFacts.from_code(fill("1/x").code)
    f = facts.curves[0]
    assert f.name == "f" and f.colours == CURVES["f"].colours
    assert len(f.pieces) == 2 and f.pieces[0][1] < 0 < f.pieces[1][0]  # the two branches either side of the pole
    assert facts.x_axis[0] < 0 < facts.x_axis[1]


# Real renders ---------------------------------------------------------------------------------------------------

# Appended to a generated scene: records each phase's (start, end) in seconds of video, from Manim's own clock.
PHASE_CLOCK = """
import json


def _clocked(method, name, times):
    def timed(self):
        start = self.renderer.time
        method(self)
        times[name] = [start, self.renderer.time]
    return timed


_PHASE_TIMES = {{}}
for _name in {names!r}:
    setattr(DerivativeVisualization, _name, _clocked(getattr(DerivativeVisualization, _name), _name, _PHASE_TIMES))
_construct = DerivativeVisualization.construct


def _construct_and_save(self):
    _construct(self)
    with open({path!r}, "w") as stream:
        json.dump(_PHASE_TIMES, stream)


DerivativeVisualization.construct = _construct_and_save
"""


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """x^3-3x rendered at -q l as generated (with its phase times) and with f's curve pieces emptied."""
    from derivanim.api import fill
    from derivanim.render import render_scene

    folder = tmp_path_factory.mktemp("framecheck")
    code = fill("x^3-3x").code
    broken, edits = re.subn(r"^F_PIECES = .*$", "F_PIECES = []", code, flags=re.M)
    assert edits == 1, "the generated scene no longer sets F_PIECES: update the broken case"
    phases = folder / "phases.json"
    (folder / "healthy.py").write_text(code + PHASE_CLOCK.format(names=list(DERIVATIVE.phase_methods), path=str(phases)))
    (folder / "broken.py").write_text(broken)
    healthy = render_scene(folder / "healthy.py", folder, quality="l")
    return {"code": code, "phases": json.loads(phases.read_text()), "healthy": healthy,
            "broken": render_scene(folder / "broken.py", folder, quality="l")}


@pytest.mark.slow
def test_a_real_render_passes_with_and_without_phase_times(renders):
    facts = SceneFacts.from_code(renders["code"])
    assert set(renders["phases"]) >= {phase.method for phase in DERIVATIVE.phases if phase.curves}
    for result in (check_video(renders["healthy"]), check_video(renders["healthy"], facts),
                   check_video(renders["healthy"], facts, phase_spans(renders["phases"]))):
        assert result.passed, result.text()
        assert result.frames[-1].curves["f"].shown and result.frames[-1].curves["f'"].shown
    # f is on screen for the whole secant phase, and f' for the whole sweep
    checked = check_video(renders["healthy"], facts, phase_spans(renders["phases"]))
    start, end = renders["phases"]["secant_to_tangent"]
    assert all(f.curves["f"].shown for f in checked.frames if start < f.time < end)
    assert sum("f'" in f.expected for f in checked.frames) >= 20


@pytest.mark.slow
def test_a_real_render_without_f_fails(renders):
    facts = SceneFacts.from_code(renders["code"])
    for result in (check_video(renders["broken"]), check_video(renders["broken"], facts),
                   check_video(renders["broken"], facts, phase_spans(renders["phases"]))):
        assert not result.passed
        assert "f is never shown in its panel" in result.problems
        assert not any(p.startswith("f'") for p in result.problems), result.problems  # f' is still there


@pytest.mark.slow
def test_the_command_line_on_real_renders(renders):
    for video, code in ((renders["healthy"], 0), (renders["broken"], 1)):
        done = subprocess.run([sys.executable, "-m", "derivanim.framecheck", str(video)], capture_output=True, text=True)
        assert done.returncode == code, done.stdout + done.stderr
        assert f"{video}: {'PASS' if code == 0 else 'FAIL'}" in done.stdout
