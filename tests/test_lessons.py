"""Lessons are found by name, and the stages hold a scene to its lesson: the template writes the lesson's scene class
and phases, metrics, dry-run checks, the frame check and the executor read them from the lesson."""

import ast
import dataclasses

import pytest

from derivanim import fill
from derivanim.corpus import dry_run_problems
from derivanim.dryrun import phase_methods
from derivanim.errors import InvalidInput
from derivanim.execute import Job
from derivanim.framecheck import Span, phase_spans
from derivanim.lessons import DERIVATIVE, LESSONS, lesson
from derivanim.metrics import missing_curves, static_metrics
from derivanim.template import _environment, write_scene

EIGHT = ("show_title", "draw_axes_and_graph", "secant_to_tangent", "tangent_at_x0",
         "show_derivation", "show_result", "draw_derivative_graph", "sweep_tangent")


def test_lessons_are_found_by_name():
    assert lesson("derivative") is DERIVATIVE
    assert list(LESSONS) == ["derivative"]
    assert DERIVATIVE.phase_methods == EIGHT and DERIVATIVE.scene_class == "DerivativeVisualization"


def test_an_unknown_lesson_is_a_clear_error():
    with pytest.raises(InvalidInput, match=r"no lesson is called 'integral'; the lessons are: derivative"):
        lesson("integral")


def test_the_template_writes_the_lessons_scene_class_and_phases():
    animation = fill("x^2", filler="rules")
    assert phase_methods(animation.code, DERIVATIVE.scene_class) == list(EIGHT)
    shorter = dataclasses.replace(DERIVATIVE, scene_class="FirstSteps", phases=DERIVATIVE.phases[:2])
    code = write_scene(animation.plan, "x**2", lesson=shorter)
    assert "class FirstSteps(Scene):" in code and "manim -pqm scene.py FirstSteps" in code
    assert phase_methods(code, "FirstSteps") == ["show_title", "draw_axes_and_graph"]
    assert phase_methods(code, "DerivativeVisualization") == []


def test_metrics_hold_a_scene_to_its_lessons_phases():
    code = fill("x^2", filler="rules").code
    assert static_metrics(code)["eight_phases"] and static_metrics(code)["derivative_visualization"]
    reordered = dataclasses.replace(DERIVATIVE, phases=DERIVATIVE.phases[::-1])
    assert not static_metrics(code, reordered)["eight_phases"]
    renamed = dataclasses.replace(DERIVATIVE, scene_class="Other")
    assert not static_metrics(code, renamed)["derivative_visualization"]


def test_missing_curves_follow_what_the_lessons_phases_show():
    report = {"animations": [{"phase": "secant_to_tangent", "curves": {"0": 0.0}},
                             {"phase": "sweep_tangent", "curves": {"0": 1.0, "1": 0.5}}]}
    assert missing_curves(report) == ["secant_to_tangent, animation 1: f 0% on screen",
                                      "sweep_tangent, animation 1: f' 50% on screen"]
    quiet = dataclasses.replace(DERIVATIVE, phases=tuple(dataclasses.replace(phase, curves=())
                                                         for phase in DERIVATIVE.phases))
    assert missing_curves(report, quiet) == []


def test_the_corpus_dry_run_check_wants_the_lessons_phases():
    def report(names):
        return {"phase_names": list(names), "plots": [{}],
                "phases": [{"name": name, "outside_frame": [], "text_overlaps": []} for name in names]}

    assert dry_run_problems(report(EIGHT)) == []
    assert dry_run_problems(report(EIGHT[:-1])) == [
        "phases that did not run: construct() does not call the derivative lesson's phases"]


def test_the_executor_and_the_frame_check_default_to_the_derivative_lesson():
    assert Job("pass").scene == DERIVATIVE.scene_class
    spans = phase_spans({"show_title": [0, 3], "secant_to_tangent": [7, 17], "draw_derivative_graph": [25, 30]})
    assert spans == [Span("f", 7, 17), Span("f", 30, 30), Span("f'", 30, 30)]


def test_any_lessons_template_can_import_the_scene_helpers():
    helpers = _environment().from_string(
        '{% import "scene_helpers.py.j2" as helpers %}{{ helpers.plotting_functions() }}\n\n\n'
        "class Lesson(Scene):\n    {{ helpers.scene_methods(3) }}\n").render()
    module = ast.parse(helpers)
    assert [node.name for node in module.body if isinstance(node, ast.FunctionDef)] == ["fit", "axis_config", "crossing"]
    [scene] = [node for node in module.body if isinstance(node, ast.ClassDef)]
    assert [node.name for node in scene.body] == ["make_axes", "plot_pieces", "label_beside", "note", "line_through",
                                                  "readout"]
    assert "num_decimal_places=3" in helpers and "numpy.isfinite(curve.get_all_points())" in helpers
