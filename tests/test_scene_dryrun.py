"""Generated scenes, run for real with animations skipped (derivanim.dryrun): every phase runs, the curve on the
first axes is f, the curve on the second is f' (checked against SymPy, not against the scene's own numbers),
and after each phase nothing is outside the frame and no text sits on text.

Manim's import and LaTeX dominate the cost, so all scenes are dry-run once per module, in batches that share a
worker process (derivanim.execute), and the tests read the results.
"""

import re

import numpy as np
import pytest
import sympy

from derivanim import fill
from derivanim.calculus import evaluator
from derivanim.execute import dry_run_reports
from derivanim.grammar import parse_function

FUNCTIONS = [
    "x^3*sin(x)", "tan(x)", "ln(x)", "sqrt(x)", "1/(x-1)", "1/(x^2-1)", "asin(x)",
    "x^x", "abs(x)", "e^(-x^2)", "sin(x)/x", "g(t) = t^3 - 2t", "5",
]
PHASES = [
    "show_title", "draw_axes_and_graph", "secant_to_tangent", "tangent_at_x0",
    "show_derivation", "show_result", "draw_derivative_graph", "sweep_tangent",
]
BROKEN_DERIVATIVE, BROKEN_CONSTRUCT = "broken_df", "broken_construct"
RTOL = 1e-5  # relative to max(|value|, the curve's size): two float64 evaluations of one function
MIN_COVERAGE = 0.6  # share of the window the curves of f (and of f') together span
DRY_RUN_WORKERS = 2
DRY_RUN_TIMEOUT = 300  # seconds a scene may take


def _break_derivative(code: str) -> str:
    """df returns 1 instead of f': the scene still runs, but plots the wrong curve."""
    broken, count = re.subn(r"(def df\(\w+\):\n(?:    .*\n)*?    return ).*\n", r"\g<1>0*x + 1\n", code, count=1)
    assert count == 1, "the template's df() changed shape; update this test"
    return broken


def _break_construct(code: str) -> str:
    broken = code.replace("        self.show_result()\n", "        self.show_result()\n        raise RuntimeError('scene bug')\n", 1)
    assert broken != code, "the template's construct() changed shape; update this test"
    return broken


@pytest.fixture(scope="module")
def dry_runs():
    """{function or broken case: (animation, dry-run report)}, every scene run once."""
    animations = {text: fill(text, filler="rules") for text in FUNCTIONS}
    codes = {text: animations[text].code for text in FUNCTIONS}
    # The broken scenes are edited copies of the first function's scene.
    codes[BROKEN_DERIVATIVE] = _break_derivative(animations[FUNCTIONS[0]].code)
    codes[BROKEN_CONSTRUCT] = _break_construct(animations[FUNCTIONS[0]].code)
    reports = dict(dry_run_reports(codes, timeout=DRY_RUN_TIMEOUT, workers=DRY_RUN_WORKERS))
    return {key: (animations.get(key, animations[FUNCTIONS[0]]), reports[key]) for key in codes}


def _reference(text: str):
    """f and f' of the text as SymPy sees it, as numpy functions (NaN where not real and finite)."""
    parsed = parse_function(text)
    return (evaluator(parsed.expr, parsed.variable),
            evaluator(sympy.diff(parsed.expr, parsed.variable), parsed.variable))


def _mismatches(plot: dict, reference) -> list[tuple[float, float, float]]:
    """(x, plotted y, true y) wherever the plot and the reference are both finite and disagree."""
    xs = np.array(plot["x"])
    ys = np.array([np.nan if y is None else y for y in plot["y"]], dtype=float)
    expected = reference(xs)
    both = np.isfinite(ys) & np.isfinite(expected)
    scale = max(1.0, float(np.max(np.abs(expected[both])))) if both.any() else 1.0
    bad = both & (np.abs(ys - expected) > RTOL * np.maximum(np.abs(expected), scale))
    return [(float(x), float(y), float(e)) for x, y, e in zip(xs[bad], ys[bad], expected[bad])]


def _covered(plots: list[dict], x_min: float, x_max: float) -> float:
    """The share of [x_min, x_max] under the union of the plots' x-ranges."""
    spans = sorted((min(p["x"]), max(p["x"])) for p in plots)
    total, reach = 0.0, x_min
    for low, high in spans:
        low, high = max(low, reach), min(high, x_max)
        if high > low:
            total, reach = total + high - low, high
    return total / (x_max - x_min)


@pytest.mark.parametrize("text", FUNCTIONS)
def test_scene_runs_every_phase(dry_runs, text):
    _, report = dry_runs[text]
    assert report["error"] is None, report.get("traceback")
    assert report["phase_names"] == PHASES
    assert [phase["name"] for phase in report["phases"]] == PHASES


@pytest.mark.parametrize("text", FUNCTIONS)
def test_plots_are_f_then_its_derivative(dry_runs, text):
    animation, report = dry_runs[text]
    f, df = _reference(text)
    plots = report["plots"]
    assert {plot["axes"] for plot in plots} == {0, 1}, "f and f' each on their own axes"
    for plot in plots:
        name, reference = ("f", f) if plot["axes"] == 0 else ("f'", df)
        wrong = _mismatches(plot, reference)
        assert not wrong, f"the curve on axes {plot['axes']} is not {name}: (x, drawn, true) = {wrong[:3]}"
        finite = [y for y in plot["y"] if y is not None]
        assert len(finite) >= 0.9 * len(plot["y"]), "a plotted piece is mostly undefined"


@pytest.mark.parametrize("text", FUNCTIONS)
def test_plots_stay_inside_their_axes_and_cover_the_window(dry_runs, text):
    animation, report = dry_runs[text]
    plan, slots = animation.plan, animation.slots
    width = slots.x_max - slots.x_min
    for axes, axis in ((0, plan.f_axis), (1, plan.df_axis)):
        plots = [plot for plot in report["plots"] if plot["axes"] == axes]
        assert _covered(plots, slots.x_min, slots.x_max) >= MIN_COVERAGE, f"axes {axes} leaves most of the window empty"
        for plot in plots:
            assert slots.x_min - 1e-6 * width <= min(plot["x"]) and max(plot["x"]) <= slots.x_max + 1e-6 * width
            ys = [y for y in plot["y"] if y is not None]
            margin = 1e-6 * (axis.high - axis.low)
            assert axis.low - margin <= min(ys) and max(ys) <= axis.high + margin, f"axes {axes} curve leaves its y-range"


@pytest.mark.parametrize("text", FUNCTIONS)
def test_layout_is_clean_after_every_phase(dry_runs, text):
    _, report = dry_runs[text]
    problems = {phase["name"]: {key: phase[key] for key in ("outside_frame", "text_overlaps") if phase[key]}
                for phase in report["phases"]}
    assert not {name: found for name, found in problems.items() if found}


def test_dry_run_catches_a_wrong_derivative(dry_runs):
    _, report = dry_runs[BROKEN_DERIVATIVE]
    assert report["error"] is None  # the scene runs; only what it draws is wrong
    _, df = _reference(FUNCTIONS[0])
    derivative_plots = [plot for plot in report["plots"] if plot["axes"] == 1]
    assert derivative_plots and any(_mismatches(plot, df) for plot in derivative_plots)


def test_dry_run_reports_a_scene_that_raises(dry_runs):
    _, report = dry_runs[BROKEN_CONSTRUCT]
    assert report["error"] is not None and "RuntimeError" in report["error"] and "scene bug" in report["error"]
    assert [phase["name"] for phase in report["phases"]] == PHASES[:6]


@pytest.mark.slow
def test_render_writes_one_playable_video(tmp_path):
    av = pytest.importorskip("av")
    out = tmp_path / "out"
    video = fill("x^2 - 2x", filler="rules").render(out, quality="l")
    assert video == out / "x_2_minus_2x.mp4"
    assert video.is_file() and video.stat().st_size > 0
    assert sorted(path.name for path in out.iterdir()) == ["x_2_minus_2x.mp4", "x_2_minus_2x.py", "x_2_minus_2x.srt"], \
        "partial files or a log were left behind"
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.height == 480
        frames = sum(1 for _ in container.decode(stream))
    assert frames > 15 * 10  # at 15 fps, eight phases last well over ten seconds
