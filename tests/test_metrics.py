"""Every metric of the evaluation has a scene that passes it and a scene that fails it.

The scenes are derivanim's own for x^3*sin(x), each broken in one place, and scenes written in the original
DerivativeAnimator corpus's style (one construct(), a tangent drawn by always_redraw(axes.plot(...)), a MathTex
slope readout, no f' curve), written here for the test; all of them run in one dry-run process (Manim and LaTeX
start once).
"""

from pathlib import Path

import pytest

from derivanim import fill
from derivanim.execute import dry_run_reports
from derivanim.grammar import parse_function
from derivanim.calculus import evaluator
from derivanim.dryrun import READOUT
from derivanim.metrics import (missing_curves, runtime_metrics, static_metrics, tangent_touch, usable,
                               usable_any_structure)

FUNCTION = "x^3*sin(x)"
F_LINE = "    return x**3*numpy.sin(x)"
STRAIGHT = "x/2 + 1"
# The original corpus's way of writing a scene: everything in construct(), a point sliding along f with its
# tangent and a typeset readout of the slope redrawn every frame.
CORPUS_STYLE = """\
from manim import *
import numpy as np


class DerivativeVisualization(Scene):
    def construct(self):
        plane = Axes(x_range=[-3, 3, 1], y_range=[-8, 8, 2], x_length=6, y_length=6).to_edge(LEFT, buff=0.5)

        def func(x):
            return FUNCTION

        def slope(x):
            return SLOPE

        curve = plane.plot(func, x_range=[-2, 2], color=BLUE)
        heading = MathTex(r"f(x) = x^3 \\sin x", font_size=34).to_corner(UR)
        rule = MathTex(r"f'(x) = 3x^2 \\sin x + x^3 \\cos x", font_size=28).next_to(heading, DOWN, aligned_edge=RIGHT)
        t = ValueTracker(-1)
        point = always_redraw(lambda: Dot(plane.c2p(t.get_value(), func(t.get_value())), color=RED))
        touching = always_redraw(lambda: plane.plot(
            lambda x: slope(t.get_value()) * (x - t.get_value()) + func(t.get_value()),
            x_range=[t.get_value() - 1, t.get_value() + 1], color=GREEN))
        value = always_redraw(lambda: MathTex(
            "f'({:.1f}) = {:.2f}".format(t.get_value(), READOUT), font_size=30).next_to(rule, DOWN, buff=0.6))
        self.play(Create(plane), Write(heading))
        self.play(Create(curve))
        self.play(Write(rule))
        self.play(SHOW)
        self.play(t.animate.set_value(1), run_time=2)
        self.wait()
"""
TRUE_SLOPE = "3*x**2*np.sin(x) + x**3*np.cos(x)"


def corpus_style(function="x**3*np.sin(x)", slope=TRUE_SLOPE, readout="slope(t.get_value())",
                 show="Create(point), Create(touching), Write(value)") -> str:
    """A scene in the original corpus's style; each argument is the Python source of one of its parts."""
    return (CORPUS_STYLE.replace("FUNCTION", function).replace("SLOPE", slope).replace("READOUT", readout)
            .replace("SHOW", show))


def _broken(code: str, old: str, new: str) -> str:
    assert old in code, old
    return code.replace(old, new, 1)


@pytest.fixture(scope="module")
def scenes():
    animation = fill(FUNCTION, filler="rules")
    code = animation.code
    variants = {
        "good": code,
        "wrong_derivative": _broken(code, f"    return {animation.plan.df_source}\n",
                                    "    return x**3*numpy.cos(x) + 2*x**2*numpy.sin(x)\n"),
        "wrong_function": _broken(code, F_LINE, "    return x**3*numpy.cos(x)"),
        "raises": _broken(code, '        """The simplified derivative, highlighted."""',
                          '        """The simplified derivative, highlighted."""\n        raise RuntimeError("boom")'),
        "no_trace": _broken(code, "self.add(trace)\n", "trace.clear_updaters()\n"),
        # The graph leaves the screen after phase 2 (as sin(x)/x's did, through a NaN point): f is missing in phase 3.
        "graph_vanishes": _broken(code, "        self.graph_group = VGroup(self.axes, self.graph, asymptotes)\n",
                                  "        self.graph_group = VGroup(self.axes, self.graph, asymptotes)\n"
                                  "        self.remove(self.graph)\n"),
        "nan_point": _broken(code, "        self.play(Create(legs), Write(panel))",
                             "        self.add(Dot(axes.c2p(float('nan'), 0)))\n        self.play(Create(legs), Write(panel))"),
        "off_frame": _broken(code, "        self.play(Write(title))", "        title.shift(RIGHT * 9)\n        self.play(Write(title))"),
        "corpus_style": corpus_style(),
        # The derivative without the product rule's second term, for the tangent and its readout alike.
        "corpus_style_wrong_slope": corpus_style(slope="3*x**2*np.sin(x)"),
        "corpus_style_wrong_readout": corpus_style(readout="slope(t.get_value()) + 1"),
        "straight_f_with_tangent": corpus_style(function="x / 2 + 1", slope="0.5 + 0 * x"),
        "straight_f_graph_only": corpus_style(function="x / 2 + 1", slope="0.5 + 0 * x", show="Create(point)"),
    }
    reports = dict(dry_run_reports(variants, timeout=300, workers=2))
    truths = {name: parse_function(STRAIGHT if name.startswith("straight") else FUNCTION) for name in variants}
    scenes = {name: {"code": variants[name], "runtime": runtime_metrics(reports[name], truths[name]),
                     "static": static_metrics(variants[name]), "report": reports[name]} for name in variants}
    for scene in scenes.values():
        scene["row"] = {**scene["static"], **scene["runtime"], "animation_output": None}
    return scenes


def test_the_unbroken_scene_passes_every_metric(scenes):
    row = {**scenes["good"]["static"], **scenes["good"]["runtime"], "animation_output": None}
    assert all(value for key, value in row.items() if key != "animation_output"), row
    assert usable(row)


@pytest.mark.parametrize("source, failing", [
    ("class X(:\n", "valid_syntax"),
    ("import numpy\nclass DerivativeVisualization(Scene):\n    pass\n", "manim_imports"),
    ("from manim import *\nx = 1\n", "class_definition"),
    ("from manim import *\nclass Other(Scene):\n    pass\n", "derivative_visualization"),
    ("from manim import *\nclass DerivativeVisualization:\n    pass\n", "derivative_visualization"),
])
def test_static_metrics_fail_where_the_code_lacks_them(source, failing):
    assert static_metrics(source)[failing] is False


def test_eight_phases_needs_all_calls_in_order(scenes):
    code = scenes["good"]["code"]
    assert static_metrics(code)["eight_phases"]
    swapped = code.replace("        self.show_derivation()\n        self.show_result()",
                           "        self.show_result()\n        self.show_derivation()")
    assert swapped != code and not static_metrics(swapped)["eight_phases"]
    missing = code.replace("        self.sweep_tangent()\n", "")
    assert not static_metrics(missing)["eight_phases"]


def test_a_wrong_derivative_fails_correct_derivative_calculation(scenes):
    runtime = scenes["wrong_derivative"]["runtime"]
    assert runtime["executable"] and runtime["function_plot"]
    assert runtime["derivative_plot"] is False


def test_a_wrong_function_fails_correct_function_plotting(scenes):
    assert scenes["wrong_function"]["runtime"]["function_plot"] is False


def test_a_scene_that_raises_fails_executable_and_everything_after_it(scenes):
    runtime = scenes["raises"]["runtime"]
    assert runtime["executable"] is False
    assert not runtime["template_organization"] and not runtime["derivative_plot"]
    assert not usable({**scenes["raises"]["static"], **runtime})


def test_a_phase_missing_its_content_fails_template_organization(scenes):
    assert scenes["no_trace"]["runtime"]["executable"]
    assert scenes["no_trace"]["runtime"]["template_organization"] is False


def test_text_outside_the_frame_fails_layout(scenes):
    assert scenes["off_frame"]["runtime"]["executable"]
    assert scenes["off_frame"]["runtime"]["layout_clean"] is False


def test_usable_requires_a_measured_render_to_have_succeeded(scenes):
    row = {**scenes["good"]["static"], **scenes["good"]["runtime"]}
    assert usable({**row, "animation_output": True})
    assert not usable({**row, "animation_output": False})


def test_a_curve_that_leaves_the_screen_fails_curves_on_screen(scenes):
    assert missing_curves(scenes["good"]["report"]) == []
    runtime = scenes["graph_vanishes"]["runtime"]
    assert runtime["executable"] and runtime["function_plot"]  # Axes.plot was called: the old checks passed
    assert runtime["curves_on_screen"] is False
    assert missing_curves(scenes["graph_vanishes"]["report"])[0].startswith("secant_to_tangent, animation 1: f 0%")
    assert not usable({**scenes["graph_vanishes"]["static"], **runtime})


def test_a_point_that_is_not_a_number_fails_the_scene_loudly(scenes):
    report = scenes["nan_point"]["report"]
    assert report["error"].startswith("NaN point in Dot after animation") and "secant_to_tangent" in report["error"]
    assert scenes["nan_point"]["runtime"]["executable"] is False


def test_the_template_passes_the_rows_that_ask_for_no_structure(scenes):
    row = scenes["good"]["row"]
    assert row["tangent_correct"] and row["derivative_shown"] and usable_any_structure(row)


def test_a_scene_in_the_original_corpus_style_passes_the_structure_free_rows_only(scenes):
    row = scenes["corpus_style"]["row"]
    assert row["executable"] and row["function_plot"] and row["layout_clean"], scenes["corpus_style"]["report"]
    assert row["tangent_correct"] and row["derivative_shown"] and usable_any_structure(row)
    # the paper's rows ask for the template's phases and an f' curve, which this scene never wrote
    assert not row["eight_phases"] and not row["template_organization"] and not row["derivative_plot"]
    assert not usable(row)


def test_a_tangent_with_the_wrong_slope_fails_tangent_slope_correct(scenes):
    row = scenes["corpus_style_wrong_slope"]["row"]
    assert row["executable"] and row["function_plot"] and row["layout_clean"]
    assert row["tangent_correct"] is False
    assert row["derivative_shown"] is False  # its readout shows the same wrong slope
    assert not usable_any_structure(row)


def test_a_readout_that_is_not_the_tangents_slope_fails_f_prime_shown(scenes):
    row = scenes["corpus_style_wrong_readout"]["row"]
    assert row["tangent_correct"] and usable_any_structure(row)
    assert row["derivative_shown"] is False


def test_a_scene_that_raises_or_leaves_the_frame_is_not_usable_in_any_structure(scenes):
    assert not usable_any_structure(scenes["raises"]["row"]) and not scenes["raises"]["row"]["tangent_correct"]
    assert scenes["off_frame"]["row"]["tangent_correct"] and not usable_any_structure(scenes["off_frame"]["row"])
    assert not usable_any_structure({**scenes["corpus_style"]["row"], "animation_output": False})


def test_the_graph_of_a_straight_f_is_not_its_own_tangent(scenes):
    assert scenes["straight_f_with_tangent"]["row"]["tangent_correct"]
    only_graph = scenes["straight_f_graph_only"]["row"]
    assert only_graph["function_plot"] and only_graph["tangent_correct"] is False


def test_a_tangent_touches_f_where_its_slope_is_f_prime():
    f, df = evaluator(parse_function("x^2").expr, parse_function("x^2").variable), lambda x: 2 * x
    identity = [[0, 0], [1, 0], [0, 1]]
    assert abs(tangent_touch({"start": [0, -1], "end": [2, 3]}, identity, f, df) - 1) < 1e-4  # y = 2x - 1 at x = 1
    assert tangent_touch({"start": [0, -1.2], "end": [2, 2.8]}, identity, f, df) is None  # 0.2 below: no touch
    assert tangent_touch({"start": [0, 0], "end": [2, 4]}, identity, f, df) is None  # the secant through 0 and 2
    # The same tangent on axes that put (0, 0) at (-3, 1) with 0.5 scene units per x and 0.25 per y.
    scaled = [[-3, 1], [0.5, 0], [0, 0.25]]
    assert abs(tangent_touch({"start": [-3, 0.75], "end": [-2, 1.75]}, scaled, f, df) - 1) < 1e-4


@pytest.mark.parametrize("text, value", [
    ("f'(2.0) = 9.00", "9.00"), (r"f'(1) \approx -0.42", "-0.42"), ("slope: 3", "3"), ("m = {1.5}", "1.5"),
    (r"f'(x) = 3x^2", None), ("x = 2, y", None), ("Derivative Calculation:", None),
])
def test_a_readout_is_the_number_a_text_ends_with_after_an_equals_sign(text, value):
    found = READOUT.search(text)
    assert (found.group(1) if found else None) == value
