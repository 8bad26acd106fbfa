"""The template stage: a scene plan in, readable Manim source out (Jinja2 is the only code writer).

The lesson says which template writes the scene, the scene's class and the phases its construct() calls; the
helpers that any lesson's scene draws with are the partial templates/scene_helpers.py.j2."""

import dataclasses
from functools import cache

import jinja2

from derivanim import __version__
from derivanim.lessons import DERIVATIVE, Lesson
from derivanim.plan import ScenePlan
from derivanim.resources import resource_path
from derivanim.teaching import AXES_SIZE


def _python_literal(value) -> str:
    """Python source for a plain value; repr quotes any string safely, so no text can escape its literal."""
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, (tuple, list)):
        items = ", ".join(_python_literal(v) for v in value)
        return f"[{items}]"
    if isinstance(value, (str, int)):
        return repr(value)
    raise TypeError(f"no literal for {type(value).__name__}")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_path("templates")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["py"] = _python_literal
    return env


def write_scene(plan: ScenePlan, f_text: str, file_name: str = "scene.py", lesson: Lesson = DERIVATIVE) -> str:
    """The lesson's scene for a plan, as Python source."""
    fields = {field.name: getattr(plan, field.name) for field in dataclasses.fields(plan)}
    return _environment().get_template(lesson.template).render(
        **fields, var=plan.variable, f_text=f_text, file_name=file_name, version=__version__, axes_size=AXES_SIZE,
        scene_class=lesson.scene_class, phase_methods=lesson.phase_methods,
    )
