"""Check a rendered video frame by frame: are f's and f''s curves on screen where the viewer should see them?

Frames are sampled from the video (PyAV) and each pixel is given the nearest of the scene's colours by hue
(numpy); a curve counts as shown when its colour fills the columns of its panel where the scene draws it:
f in the left axes, f' in the right axes (phases 7-8). The panels are found in the frames themselves, from
their axis lines, so the check follows the layout the viewer saw rather than the template's constants.

What each frame should show comes from the phases' time ranges when they are known (`phase_spans`), and
otherwise from the video: once a curve has appeared, every frame that shows its axes must show it too, and
the closing frame shows both graphs.

    python -m derivanim.framecheck out/derivative.mp4 [--scene scene.py] [--phases phases.json] [--json]
"""

import argparse
import ast
import colorsys
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

from derivanim.lessons import DERIVATIVE, Lesson
from derivanim.resources import resource_path

ANALYSIS_HEIGHT = 480  # frames are reduced to this height (a -q l render already has it)
# PIL's HSV has every channel in 0-255.
CURVE_MIN_SATURATION, CURVE_MIN_BRIGHTNESS = 75, 64  # anti-aliased and fading strokes are darker, same hue
HUE_TOLERANCE = 9  # about 13 degrees; the template's closest colours (blue and teal) are 26 degrees apart
# Brighter than a curve's threshold, so that fading axes count as shown only while their curve does too.
AXIS_MAX_SATURATION, AXIS_MIN_BRIGHTNESS = 40, 115
MIN_AXIS_WIDTH, MIN_AXIS_HEIGHT = 0.5, 0.4  # shares of the half frame's width and the frame's height
AXIS_GAP = 0.025  # share of the frame's height: a gap this short does not break an axis line (a hollow dot on it)
MIN_COVERAGE = 0.8  # share of the columns where the scene draws a curve that must show its colour
MIN_PRESENCE = 0.1  # when where it is drawn is unknown: share of the panel's columns
EDGE_TRIM = 0.015  # share of the x-window left out at each end of a piece (its round cap, the mapping's rounding)
SPAN_INSET = 0.05  # seconds between a span's ends and the frames sampled for them
DARK, UNCLASSIFIED, AXIS = 0, 254, 255  # pixel classes besides the palette's colours (1, 2, ...)


@dataclass(frozen=True)
class Curve:
    """A curve to look for: its panel, the colours its pixels may have, and the x-pieces where it is drawn."""

    name: str
    panel: str  # "left" or "right"
    colours: tuple[str, ...]
    pieces: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class SceneFacts:
    """What the check needs to know about a scene: its curves, its colours and its x-axis range."""

    curves: tuple[Curve, ...]
    palette: tuple[str, ...]  # every saturated colour the scene draws with; a pixel takes the nearest by hue
    x_axis: tuple[float, float] | None = None

    @classmethod
    def from_code(cls, source: str) -> "SceneFacts":
        """From a generated scene's constants: colours, X_AXIS, F_PIECES and DF_PIECES."""
        constants = _literal_constants(source)
        colours = _colour_constants(source)
        x_axis = constants.get("X_AXIS")
        return cls._build(colours, x_axis and (float(x_axis[0]), float(x_axis[1])),
                          constants.get("F_PIECES"), constants.get("DF_PIECES"))

    @classmethod
    def from_template(cls) -> "SceneFacts":
        """The template's colours alone, for a video whose code is not at hand."""
        template = resource_path("templates", "derivative_visualization.py.j2").read_text()
        return cls._build(_colour_constants(template), None, None, None)

    @classmethod
    def _build(cls, colours: dict[str, str], x_axis, f_pieces, df_pieces) -> "SceneFacts":
        def pieces(value):
            return None if value is None else tuple((float(a), float(b)) for a, b in value)

        curves = (
            Curve("f", "left", (colours["F_COLOR"],), pieces(f_pieces)),
            # The sweep traces f' in the point colour over the green curve.
            Curve("f'", "right", (colours["DF_COLOR"], colours["POINT_COLOR"]), pieces(df_pieces)),
        )
        palette = tuple(dict.fromkeys(c for c in colours.values() if _hsv(c)[1] >= CURVE_MIN_SATURATION))
        return cls(curves, palette, x_axis)


@dataclass(frozen=True)
class Span:
    """`curve` must be on screen in every sampled frame from `start` to `end` (seconds of video)."""

    curve: str
    start: float
    end: float


def phase_spans(phases: Mapping[str, Sequence[float]], lesson: Lesson = DERIVATIVE) -> list[Span]:
    """Spans from the phases' (start, end) times in the video, by the curves each of the lesson's phases shows:
    for the whole phase, or only at its end."""
    shows = {phase.method: phase for phase in lesson.phases}
    spans = []
    for name, (start, end) in phases.items():
        if name in shows:
            phase = shows[name]
            spans += [Span(curve, start if phase.curves_when == "every" else end, end) for curve in phase.curves]
    return spans


@dataclass
class CurveSeen:
    pixels: int  # pixels of the panel's plot area with the curve's colours
    columns: int  # columns of it with at least one
    coverage: float | None  # share of the columns where the scene draws the curve; None when unknown
    shown: bool


@dataclass
class FrameFinding:
    time: float
    axes: dict[str, bool]  # panel -> its axes are on screen
    curves: dict[str, CurveSeen]
    expected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class FrameCheck:
    video: str
    duration: float
    frames: list[FrameFinding]
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"video": self.video, "duration": self.duration, "passed": self.passed, "problems": self.problems,
                "frames": [asdict(frame) for frame in self.frames]}

    def text(self) -> str:
        lines = [f"{'time':>7}  {'axes L/R':8}  " + "  ".join(f"{name:>14}" for name in self.frames[0].curves)
                 + "  verdict"] if self.frames else []
        for frame in self.frames:
            seen = "  ".join(f"{_describe_seen(s):>14}" for s in frame.curves.values())
            axes = "/".join("yes" if frame.axes[p] else "no" for p in ("left", "right"))
            verdict = ("MISSING " + ", ".join(frame.missing)) if frame.missing else \
                ("ok (" + ", ".join(frame.expected) + ")" if frame.expected else "-")
            lines.append(f"{frame.time:6.2f}s  {axes:8}  {seen}  {verdict}")
        lines.append(f"{self.video}: " + ("PASS" if self.passed else "FAIL") + f", {len(self.frames)} frames of "
                     f"{self.duration:.1f} s checked")
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def _describe_seen(seen: CurveSeen) -> str:
    amount = f"{seen.coverage:.0%}" if seen.coverage is not None else f"{seen.columns} cols"
    return f"{'shown' if seen.shown else 'absent'} {amount}"


def _literal_constants(source: str) -> dict:
    """Module-level NAME = literal (and A, B = literal, literal) assignments of a scene's code."""
    constants = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        pairs = zip(target.elts, value.elts) if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) \
            else [(target, value)]
        for name, item in pairs:
            if isinstance(name, ast.Name):
                try:
                    constants[name.id] = ast.literal_eval(item)
                except ValueError:
                    pass
    return constants


def _colour_constants(source: str) -> dict[str, str]:
    """The scene's *_COLOR = BLUE (a Manim colour name) or = "#58C4DD" assignments as hex colours (read line by
    line: the template is Jinja, not Python)."""
    from manim.utils.color import ManimColor, manim_colors

    colours = {}
    for line in source.splitlines():
        if re.match(r"[A-Z_]*_COLOR\b[A-Z_, ]* = ", line):
            node = ast.parse(line).body[0]
            targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else [node.targets[0]]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for target, value in zip(targets, values):
                if isinstance(value, ast.Name) and isinstance(getattr(manim_colors, value.id, None), ManimColor):
                    colours[target.id] = getattr(manim_colors, value.id).to_hex()
                elif isinstance(value, ast.Constant) and isinstance(value.value, str):
                    colours[target.id] = ManimColor(value.value).to_hex()
                else:
                    raise ValueError(f"cannot read the colour {ast.unparse(value)!r} of {target.id}")
    missing = {"F_COLOR", "DF_COLOR", "POINT_COLOR"} - set(colours)
    if missing:
        raise ValueError(f"the scene does not define {', '.join(sorted(missing))}")
    return colours


def _hsv(hex_colour: str) -> tuple[float, float, float]:
    """A colour in PIL's HSV scale (0-255 each)."""
    rgb = [int(hex_colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    return tuple(255 * channel for channel in colorsys.rgb_to_hsv(*rgb))


def classify(hsv: np.ndarray, palette: Sequence[str]) -> np.ndarray:
    """Per pixel: 1 + the index of the nearest palette colour by hue (saturated, bright pixels within
    HUE_TOLERANCE), AXIS for white and grey, UNCLASSIFIED for other bright pixels, DARK for the rest."""
    hue, saturation, brightness = (hsv[..., i].astype(np.int16) for i in range(3))
    classes = np.full(hue.shape, DARK, np.uint8)
    classes[brightness >= CURVE_MIN_BRIGHTNESS] = UNCLASSIFIED
    classes[(saturation <= AXIS_MAX_SATURATION) & (brightness >= AXIS_MIN_BRIGHTNESS)] = AXIS
    coloured = np.nonzero((saturation >= CURVE_MIN_SATURATION) & (brightness >= CURVE_MIN_BRIGHTNESS))
    palette_hues = np.array([_hsv(colour)[0] for colour in palette], np.int16)
    distance = np.abs(hue[coloured][:, None] - palette_hues)
    distance = np.minimum(distance, 256 - distance)  # hue is a circle
    nearest = distance.argmin(axis=1)
    close = distance[np.arange(len(nearest)), nearest] <= HUE_TOLERANCE
    classes[coloured[0][close], coloured[1][close]] = nearest[close] + 1
    return classes


def _longest_runs(mask: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the longest run of `mask` (length and last index) and the share of `core` pixels in it."""
    index = np.arange(mask.shape[1])
    last_gap = np.maximum.accumulate(np.where(mask, -1, index), axis=1)
    lengths = index - last_gap
    ends = lengths.argmax(axis=1)
    length = lengths[np.arange(len(mask)), ends]
    counted = np.concatenate([np.zeros((len(mask), 1), int), np.cumsum(core, axis=1)], axis=1)
    rows = np.arange(len(mask))
    share = (counted[rows, ends + 1] - counted[rows, ends + 1 - length]) / np.maximum(length, 1)
    return length, ends, share


def _bridged(mask: np.ndarray, gap: int) -> np.ndarray:
    """The mask with each row's gaps of at most `gap` pixels between set pixels filled in."""
    width = mask.shape[1]
    index = np.arange(width)
    previous = np.maximum.accumulate(np.where(mask, index, -2 * width), axis=1)
    following = np.minimum.accumulate(np.where(mask, index, 3 * width)[:, ::-1], axis=1)[:, ::-1]
    return mask | (following - previous <= gap + 1)


def _axis_line(mask: np.ndarray, core: np.ndarray, gap: int, min_length: float) -> tuple[int, int, int] | None:
    """The longest line of bright pixels, mostly white or grey and at least `min_length` long, along the rows:
    (row, first, last index)."""
    rows = np.nonzero(core.sum(axis=1) >= min_length / 2)[0]  # only rows that could hold one are measured
    if not len(rows):
        return None
    length, ends, share = _longest_runs(_bridged(mask[rows], gap), core[rows])
    length = np.where(share >= 0.5, length, 0)
    best = int(length.argmax())
    if length[best] < min_length:
        return None
    return int(rows[best]), int(ends[best] - length[best] + 1), int(ends[best])


def find_axes(classes: np.ndarray, panel: str) -> tuple[int, int, int, int] | None:
    """The plot area (top, bottom, left, right pixel) of the axes in the left or right half, if on screen."""
    height, width = classes.shape
    offset = 0 if panel == "left" else width // 2
    half = classes[:, offset:offset + width // 2]
    bright, axis = half != DARK, half == AXIS
    gap = round(AXIS_GAP * height)
    x_axis = _axis_line(bright, axis, gap, MIN_AXIS_WIDTH * half.shape[1])
    y_axis = x_axis and _axis_line(bright.T, axis.T, gap, MIN_AXIS_HEIGHT * height)
    if not y_axis:
        return None
    return y_axis[1], y_axis[2], x_axis[1] + offset, x_axis[2] + offset


def measure(classes: np.ndarray, box: tuple[int, int, int, int], curve: Curve, palette: Sequence[str],
            x_axis: tuple[float, float] | None) -> CurveSeen:
    """How much of the panel's plot area shows the curve's colours, column by column."""
    top, bottom, left, right = box
    area = classes[max(top - 2, 0):bottom + 3, max(left - 2, 0):right + 3]
    own = [palette.index(c) + 1 for c in curve.colours if c in palette]
    mask = np.isin(area, own)
    columns = mask.any(axis=0)
    if curve.pieces is None or x_axis is None:
        return CurveSeen(int(mask.sum()), int(columns.sum()), None, bool(columns.sum() >= MIN_PRESENCE * (right - left + 1)))
    # x of each column, from the x-axis's ends in the frame
    xs = x_axis[0] + (np.arange(len(columns)) + max(left - 2, 0) - left) / max(right - left, 1) * (x_axis[1] - x_axis[0])
    drawn = np.zeros(len(columns), bool)
    for low, high in curve.pieces:
        trim = min(EDGE_TRIM * (x_axis[1] - x_axis[0]), (high - low) / 4)
        drawn |= (xs >= low + trim) & (xs <= high - trim)
    # A tangent lying along the curve hides it: columns with another of the scene's colours and none of the
    # curve's are left out of the count, not counted as missing.
    others = [i + 1 for i in range(len(palette)) if i + 1 not in own]
    hidden = np.isin(area, others).any(axis=0) & ~columns
    visible = drawn & ~hidden
    coverage = float(columns[visible].mean()) if visible.any() else 0.0  # nothing to see is not a curve shown
    return CurveSeen(int(mask.sum()), int(columns.sum()), round(coverage, 3), coverage >= MIN_COVERAGE)


def sample_frames(video: Path, times: Sequence[float]):
    """(time, HSV array) of the frame nearest each of `times`, and of the last frame; decoded in one pass."""
    targets = sorted(set(times))
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        half_frame = 0.5 / float(stream.average_rate or 30)
        scale = min(1.0, ANALYSIS_HEIGHT / stream.height)
        size = dict(width=round(stream.width * scale / 2) * 2, height=round(stream.height * scale / 2) * 2)
        last, last_taken, next_target = None, None, 0
        for frame in container.decode(stream):
            last = frame
            if next_target < len(targets) and frame.time + half_frame >= targets[next_target]:
                while next_target < len(targets) and frame.time + half_frame >= targets[next_target]:
                    next_target += 1
                last_taken = frame.time
                yield frame.time, np.asarray(frame.to_image(**size).convert("HSV"))
        if last is not None and last.time != last_taken:
            yield last.time, np.asarray(last.to_image(**size).convert("HSV"))


def video_duration(video: Path) -> float:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / av.time_base


def check_video(video: Path | str, facts: SceneFacts | None = None, spans: Sequence[Span] | None = None,
                every: float = 0.5) -> FrameCheck:
    """Sample the video every `every` seconds (and at the ends of `spans`) and check its curves.

    With `spans`, each names a curve that must be shown from its start to its end. Without them, a curve that
    has appeared must be shown in every later frame that shows its axes, and the last frame must show every curve.
    """
    video = Path(video)
    facts = facts or SceneFacts.from_template()
    duration = video_duration(video)
    times = list(np.arange(0.0, duration, every))
    problems = [f"{span.curve} is expected until {span.end:.2f} s, after the video's end: are the phase times "
                f"this video's?" for span in spans or () if span.end > duration + 0.5]
    for span in spans or ():
        times += [min(span.start + SPAN_INSET, span.end), max(span.end - SPAN_INSET, span.start)]
    panels = sorted({curve.panel for curve in facts.curves})
    frames, reference, without_axes = [], dict.fromkeys(panels), []
    for time, hsv in sample_frames(video, times):
        classes = classify(hsv, facts.palette)
        boxes = {panel: find_axes(classes, panel) for panel in panels}
        reference.update({panel: box for panel, box in boxes.items() if box})
        frames.append(FrameFinding(round(float(time), 3), {p: box is not None for p, box in boxes.items()},
                                   _look_for_curves(classes, boxes, facts)))
        if None in boxes.values():  # kept (only these frames) until the axes' last place is known
            without_axes.append((frames[-1], classes))
    # Where a frame shows no axes, the curves are looked for where the axes were last seen.
    for frame, classes in without_axes:
        again = _look_for_curves(classes, reference, facts)
        frame.curves = {c.name: frame.curves[c.name] if frame.axes[c.panel] else again[c.name] for c in facts.curves}
    problems += [f"the axes of the {panel} panel are never on screen" for panel in panels if reference[panel] is None]

    by_name = {curve.name: curve for curve in facts.curves}
    for index, frame in enumerate(frames):
        if spans is not None:
            frame.expected = sorted({s.curve for s in spans if s.start - 1e-6 <= frame.time <= s.end + 1e-6})
        else:
            last = index == len(frames) - 1
            frame.expected = [name for name, curve in by_name.items() if last or (frame.axes[curve.panel] and any(
                earlier.axes[curve.panel] and earlier.curves[name].shown for earlier in frames[:index]))]
        frame.missing = [name for name in frame.expected if not frame.curves[name].shown]
    for name, curve in by_name.items():
        if not any(frame.axes[curve.panel] and frame.curves[name].shown for frame in frames):
            problems.append(f"{name} is never shown in its panel")
        missing = [frame.time for frame in (_lasting(frames, name) if spans is None else frames)
                   if name in frame.missing]
        if missing:
            expected = sum(name in frame.expected for frame in frames)
            problems.append(f"{name} is missing from its panel in {len(missing)} of the {expected} frames that "
                            f"should show it ({_time_ranges(missing, frames)})")
    return FrameCheck(str(video), round(duration, 3), frames, problems)


def _lasting(frames: list[FrameFinding], name: str) -> list[FrameFinding]:
    """Without phase times: the frames missing `name` in runs of more than one sample, or at the closing frame. A
    single sample can fall inside a fade (a curve fading in under its own tangent reads as absent); a curve that
    is really gone stays gone for longer than one sampling step."""
    runs, current = [], []
    for frame in frames:
        if name in frame.missing:
            current.append(frame)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [frame for run in runs if len(run) > 1 or run[-1] is frames[-1] for frame in run]


def _look_for_curves(classes: np.ndarray, boxes: dict, facts: SceneFacts) -> dict[str, CurveSeen]:
    """Each curve as seen in its panel's box (a panel without a box shows nothing)."""
    return {curve.name: measure(classes, boxes[curve.panel], curve, facts.palette, facts.x_axis)
            if boxes[curve.panel] else CurveSeen(0, 0, None, False) for curve in facts.curves}


def _time_ranges(times: list[float], frames: list[FrameFinding]) -> str:
    """'21.5-47.3 s, 50.0 s': runs of consecutive sampled frames."""
    order = {frame.time: i for i, frame in enumerate(frames)}
    runs = []
    for t in times:
        if runs and order[t] == order[runs[-1][1]] + 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return ", ".join(f"{a:.1f} s" if a == b else f"{a:.1f}-{b:.1f} s" for a, b in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m derivanim.framecheck",
        description="Check a rendered derivanim video frame by frame: f's curve in the left panel, f''s in the "
                    "right panel where the scene should show them. Exits 1 when a curve is missing, 2 on bad input.")
    parser.add_argument("video", type=Path)
    parser.add_argument("--scene", type=Path, help="the scene's .py file: its colours, x-axis and curve pieces "
                                                   "(without it: the template's colours, presence only)")
    parser.add_argument("--phases", type=Path, help='JSON {"phase_method": [start_s, end_s], ...}: check each '
                                                    "phase for the curves it shows (without it: from the frames)")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between sampled frames (default 0.5)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args(argv)
    try:
        facts = SceneFacts.from_code(args.scene.read_text()) if args.scene else None
        spans = phase_spans(json.loads(args.phases.read_text())) if args.phases else None
        if args.every <= 0:
            raise ValueError("--every must be positive")
        result = check_video(args.video, facts, spans, args.every)
    except (OSError, ValueError, SyntaxError, av.error.FFmpegError) as error:
        print(f"framecheck: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict()) if args.json else result.text())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
