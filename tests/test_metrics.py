"""Every metric of the evaluation has a scene that passes it and a scene that fails it.

The scenes are derivanim's own for x^3*sin(x), each broken in one place; all of them run in one dry-run
process (Manim and LaTeX start once).
"""

from pathlib import Path

import pytest

from derivanim import fill
from derivanim.execute import dry_run_reports
from derivanim.grammar import parse_function
from derivanim.metrics import missing_curves, runtime_metrics, static_metrics, usable

FUNCTION = "x^3*sin(x)"
F_LINE = "    return x**3*numpy.sin(x)"


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
    }
    reports = dict(dry_run_reports(variants, timeout=300, workers=2))
    truth = parse_function(FUNCTION)
    return {name: {"code": variants[name], "runtime": runtime_metrics(reports[name], truth),
                   "static": static_metrics(variants[name]), "report": reports[name]} for name in variants}


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
