"""The public API: fill() runs the pipeline text -> slots -> verify -> plan -> code; Animation.render() makes video."""

import html
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from derivanim.calculus import evaluator
from derivanim.errors import InvalidInput, ModelUnavailable, NoFunction
from derivanim.grammar import (FUNCTIONS, Request, Settings, find_settings, parse_function, read_request, refuse,
                               request_words)
from derivanim.lessons import DERIVATIVE, Lesson
from derivanim.plan import ScenePlan
from derivanim.render import Outputs, RenderProgress, output_target, slug, write_animation
from derivanim.resources import resource_path
from derivanim.rules_filler import rules_slots
from derivanim.slots import REFUSALS, Slots
from derivanim.template import write_scene
from derivanim.verify import verify

if TYPE_CHECKING:
    from derivanim.model_filler import ModelFill

Filler = Literal["auto", "rules", "model"]
EDGE = 0.1  # share of the window at either end where a user's x0 makes fill() widen the window


@dataclass(frozen=True)
class ModelRun:
    """What the model emitted for a request, before verification."""

    emitted: str
    tokens: int
    forward_passes: int
    seconds: float


@dataclass(frozen=True)
class Animation:
    """One verified animation: the slots it rests on, its derivative, and the scene's source code."""

    request: str
    filler: str
    slots: Slots
    requested_slots: Slots
    repairs: tuple[str, ...]
    derivative: str  # f'(x) in the form a textbook prints, in the grammar's notation: '(x^2 - 2x - 1)/(x - 1)^2'
    derivative_sympy: str  # the same as SymPy prints it: '(x**2 - 2*x - 1)/(x - 1)**2'
    plan: ScenePlan = field(repr=False)
    code: str = field(repr=False)
    model_run: ModelRun | None = None
    cautions: tuple[str, ...] = ()  # what the user should check (the model's function is not in the request)
    videos: list[Path] = field(default_factory=list, repr=False, compare=False)  # what render() wrote, latest last

    @property
    def stem(self) -> str:
        """The name its files get unless told otherwise, from the function: 'sin(x^2)' -> 'sin_x_2'."""
        return slug(self.slots.function)

    def write(self, output: Path | str = ".", render: bool = True, quality: str = "m", fmt: str | None = None,
              on_progress: Callable[[RenderProgress], None] | None = None, jobs: int = 1) -> Outputs:
        """Write the scene and, if `render`, its video (Manim) and subtitles beside it.

        `output` is a folder (the files are named `stem`) or a file path (out/parabola.gif: its name, and its suffix
        the format unless `fmt` says). A failed render leaves the earlier files of that name as they were. `jobs`:
        Manim processes rendering ranges of the animations at once, joined into the same video one would render.
        """
        folder, stem, fmt = output_target(output, self.stem, fmt)
        outputs = write_animation(self.code, folder, stem, render=render, quality=quality, fmt=fmt,
                                  on_progress=on_progress, jobs=jobs)
        if outputs.video is not None:
            self.videos.append(outputs.video)
        return outputs

    def save(self, path: Path | str) -> Path:
        """Write the scene's source to `path` (a .py file, or a folder); returns its path."""
        return self.write(path, render=False).scene

    def render(self, output: Path | str = ".", quality: str = "m", fmt: str | None = None,
               on_progress: Callable[[RenderProgress], None] | None = None, jobs: int = 1) -> Path:
        """Render to `output` (a folder, or a file such as out/parabola.gif), the scene beside the video, in `jobs`
        Manim processes at once; returns the video's path."""
        return self.write(output, quality=quality, fmt=fmt, on_progress=on_progress, jobs=jobs).video

    def _repr_markdown_(self) -> str:
        """In Jupyter: f and f' as formulas and, once rendered, the latest video playing."""
        name, variable = self.plan.name, self.plan.variable
        shown = f"$${name}({variable}) = {self.plan.f_latex}$$\n\n$${name}'({variable}) = {self.plan.df_latex}$$"
        if not self.videos:
            return shown
        # A path from the notebook's folder, which is where Jupyter serves files from.
        source = html.escape(Path(os.path.relpath(self.videos[-1])).as_posix())
        player = f'<img src="{source}">' if source.endswith(".gif") else f'<video src="{source}" controls loop></video>'
        return f"{shown}\n\n{player}"

    def to_dict(self) -> dict:
        return {
            "request": self.request,
            "filler": self.filler,
            "slots": self.slots.model_dump(),
            "requested_slots": self.requested_slots.model_dump(mode="json"),
            "repairs": list(self.repairs),
            "cautions": list(self.cautions),
            "derivative": self.derivative,
            "derivative_sympy": self.derivative_sympy,
            "derivative_latex": self.plan.df_latex,
            "model": None if self.model_run is None else vars(self.model_run),
        }


_WORD = re.compile(r"[A-Za-z]{3,}")


def looks_like_words(text: str) -> bool:
    """A request in words ('Teach the product rule with x*sin(x)', 'Animation: derivative of atan(x)', 'derivative
    of x squared') rather than a function with a typo ('sin(x', 'floor(x)') or a phrasing with one ('derivative of
    __import__('os')'): at least two words that are neither function names nor words of the request grammar, a
    word that is not a function name beside a function written as the grammar reads it ('x^3 - 6x please',
    'demo: tan(x)'), or a function said in words ('sine x over x', 'ln x', 'one over x': derivanim.spoken)."""
    from derivanim.model_filler import written_functions  # grammar only: no model is loaded
    from derivanim.spoken import spoken_functions

    words = [word for word in _WORD.findall(text) if word.lower() not in FUNCTIONS]
    others = [word for word in words if word.lower() not in request_words()]
    return (len(others) >= 2 or (bool(words) and bool(written_functions(text)))
            or bool(spoken_functions(text)))


def shipped_slots_adapter() -> Path | None:
    """The slots adapter that ships with derivanim (trained by the documented command), if present."""
    try:
        return resource_path("adapters", "slots")
    except FileNotFoundError:
        return None


def model_slots(text: str, adapter: Path | str | Literal[False] | None = None,
                base_model: str | None = None) -> "ModelFill":
    """The model filler's decision for `text` as fill() asks for it: constrained decoding of function, variable and
    name, the window and x0 from teaching_numbers, or a refusal (then its slots are None).

    adapter: a slots adapter folder; None: the shipped one; False: none, the base model alone (untuned: what
    fine-tuning adds, measured by `derivanim eval --systems template-untuned`). base_model: default: the adapter's.
    """
    try:
        from derivanim.model_filler import fill_slots  # the model stack loads only when asked for
    except ImportError as error:
        raise ModelUnavailable(
            f"the model filler is not available ({error}); for a bare function use filler='rules' (--filler rules)"
        ) from None

    if adapter is None:
        adapter = shipped_slots_adapter()
        if adapter is None:
            raise ModelUnavailable("no slots adapter is installed; train one with `derivanim train --task slots`, "
                                   "or for a bare function use filler='rules' (--filler rules)")
    return fill_slots(text, adapter_dir=adapter or None, base_model=base_model, numbers=teaching_numbers)


def model_animation(text: str, filled: "ModelFill", chosen: Settings | None = None) -> Animation:
    """What fill() makes of the model filler's decision: NoFunction for a refusal; else its slots with the window and
    x0 of `chosen` (fill()'s own arguments) or, failing those, of the request, verified and built."""
    if filled.slots is None:
        raise no_function(filled.refusal)
    slots = _with_settings(filled.slots, chosen or Settings(), find_settings(text, filled.slots.variable), None)
    run = ModelRun(emitted=filled.emitted, tokens=filled.tokens, forward_passes=filled.forward_passes,
                   seconds=filled.seconds)
    return build_animation(text, "model", slots, run)


def no_function(reason: str) -> NoFunction:
    """The one-line error for a request the model filler refused."""
    return NoFunction(f"no function to differentiate in the request ({REFUSALS[reason]})")


def teaching_numbers(function: str) -> tuple[float, float, float]:
    """The window and x0 the rules filler chooses for the model's function: the model decides function, variable and
    name only, because it learnt older teaching choices (fill() then puts in any the request writes)."""
    taught = rules_slots(function)
    return taught.x_min, taught.x_max, taught.x0


def _chosen_settings(x0, window) -> Settings:
    """fill()'s own x0 and window as numbers (Settings checks that they are finite and in order)."""
    try:
        x0 = None if x0 is None else float(x0)
        window = None if window is None else tuple(float(end) for end in window)
    except (TypeError, ValueError):
        raise InvalidInput(f"x0 must be a number and window two numbers, not x0={x0!r}, window={window!r}") from None
    if window is not None and len(window) != 2:
        raise InvalidInput(f"the window must be two numbers (left, right), not {len(window)}")
    return Settings(x0=x0, window=window)


def _window_reaching(x0: float, slots: Slots) -> tuple[float, float] | None:
    """The filler's window stretched to hold the user's x0 with room for the secant ("2x^2+3x+1 at x = 2" when the
    filler showed [-1.75, 0.25]); None if it already does, or if f is undefined at x0 (verify then says so)."""
    x_min, x_max = slots.x_min, slots.x_max
    width = x_max - x_min
    if x_min + EDGE * width <= x0 <= x_max - EDGE * width:
        return None
    function = parse_function(slots.function)
    if not np.isfinite(evaluator(function.expr, function.variable)(np.array([x0]))[0]):
        return None
    low, high = min(x_min, x0), max(x_max, x0)
    pad = 2 * EDGE * (high - low)
    return (low - pad, high) if x0 == low else (low, high + pad)


def _with_settings(slots: Slots, chosen: Settings, written: Settings, variable: str | None) -> Slots:
    """The filler's slots with the user's x0 and window in place of its own (fill()'s arguments before what the
    request writes); verify then checks them like any slot."""
    x0 = chosen.x0 if chosen.x0 is not None else written.x0
    window = chosen.window or written.window
    if x0 is not None and window is None:
        window = _window_reaching(x0, slots)
    update = {} if variable is None else {"variable": variable}
    if window is not None:
        # The filler's x0 belongs to its own window: NaN asks verify for the tangent's point on the user's.
        update.update(x_min=window[0], x_max=window[1], x0=math.nan)
    if x0 is not None:
        update["x0"] = x0
    return slots.model_copy(update=update)


def fill(text: str, filler: Filler = "auto", adapter: Path | str | Literal[False] | None = None,
         x0: float | None = None, window: tuple[float, float] | None = None, base_model: str | None = None) -> Animation:
    """Turn a function ('sin(x^2)'), a phrasing around one ('derivative of x^2 on [-2, 2] at x = 1') or a request
    in words into a verified animation.

    filler="rules" decides the slots with SymPy alone (the text must be a function or a phrasing the request
    grammar reads); "model" asks the fine-tuned model (`adapter`, default: the shipped slots adapter; False: the base
    model alone; `base_model`, default: the adapter's); "auto" uses rules for what the request grammar reads and the
    model for sentences.
    `x0` (where the tangent starts) and `window` ((x_min, x_max)) replace the filler's choices and any the request
    writes ("at x = 3", "on [-2, 2]"); verification checks them like any slot and records what it had to repair.
    Raises InvalidInput for text or values derivanim cannot use.
    """
    if filler not in ("auto", "rules", "model"):
        raise ValueError(f"filler must be 'auto', 'rules' or 'model', not {filler!r}")
    chosen = _chosen_settings(x0, window)
    request = route(text, filler)
    if request is None:
        return model_animation(text, model_slots(text, adapter, base_model), chosen)
    return build_animation(text, "rules", _with_settings(rules_slots(request.function), chosen, request.settings,
                                                         request.variable))


def route(text: str, filler: Filler = "auto") -> Request | None:
    """Who fills `text` in fill(), decided by the grammars before any model is loaded: the request the grammar
    reads (the rules fill it), or None where the model does (filler="model", or "auto" and a request in words).
    Raises InvalidInput where neither may: a typo in a function or a phrasing ('sin(x', 'derivative of
    __import__('os')'), or text the grammar cannot read with filler="rules"."""
    if filler == "model":
        return None
    try:
        request = read_request(text)
    except InvalidInput:
        # 'Animate very slowly x^3' reads as a phrasing, letter by letter; as a sentence it is the model's
        if filler == "rules" or not looks_like_words(text):
            raise
        return None
    if request is None and (filler == "rules" or not looks_like_words(text)):
        refuse(text)
    return request


def written_in(function: str, request: str) -> bool:
    """Whether `function` is one of the functions `request` writes (model_filler.written_functions: 'atan(x)' of
    'derivative of atan(x)', never the 'tan(x)' inside it), spaces and '*' aside.

    The model filler copies one of those where there are any, so a function that is none of them is one the model
    wrote from words, or made up.
    """
    from derivanim.model_filler import bare_function, written_functions  # light: no model stack is loaded

    return bare_function(function) in {bare_function(written) for written in written_functions(request)}


def _unwritten(function: str, request: str) -> str:
    """The caution for a model's function that the request does not write: read from its words, or made up."""
    from derivanim.spoken import spoken_functions

    if function in spoken_functions(request):
        return f"{function} was read from the words of the request: check that it is the function you meant"
    return f"the model's function {function} is not written in the request: check that it is the one you meant"


def build_animation(request: str, filler: str, slots: Slots, model_run: ModelRun | None = None,
                    lesson: Lesson = DERIVATIVE) -> Animation:
    """Verify any filler's slots, plan the lesson's scene and write its code."""
    verified = verify(slots)
    plan = lesson.plan(verified)
    cautions = () if filler != "model" or written_in(slots.function, request) else (_unwritten(slots.function, request),)
    return Animation(
        request=request,
        filler=filler,
        slots=verified.slots,
        requested_slots=verified.requested,
        repairs=verified.repairs,
        derivative=plan.df_notation,
        derivative_sympy=plan.df_text,
        plan=plan,
        code=write_scene(plan, f_text=str(verified.function.expr), lesson=lesson),
        model_run=model_run,
        cautions=cautions,
    )


# ----------------------------------------------------------------------------- make: request -> files

Route = Literal["auto", "rules", "model", "baseline"]


@dataclass(frozen=True)
class MakeOptions:
    """Everything `make` needs besides the request; built by the CLI (or a server) and passed in."""

    filler: Route = "auto"  # "baseline": the free-form model writes the whole scene, unchecked
    adapter: Path | str | None = None  # the slots adapter (default: the shipped one); for "baseline", required
    x0: float | None = None
    window: tuple[float, float] | None = None
    output: Path | str = "out"  # a folder, or a file whose name and suffix the outputs take
    render: bool = True
    quality: str = "m"
    fmt: str | None = None
    jobs: int = 1  # Manim processes for the render, each a range of its animations


@dataclass(frozen=True)
class Made:
    """What `make` produced: the verified animation (None on the baseline route), the files, and for the baseline
    what its model generated."""

    request: str
    filler: str
    animation: Animation | None
    outputs: Outputs
    generated: dict | None = None  # baseline only: tokens, seconds, finished

    def to_dict(self) -> dict:
        """The JSON answer of `derivanim make --json` (and of any other front end)."""
        made = self.animation.to_dict() if self.animation else {"request": self.request, "filler": self.filler,
                                                                 **self.generated}
        outputs = self.outputs
        return {**made, "scene": str(outputs.scene), "video": outputs.video and str(outputs.video),
                "subtitles": outputs.subtitles and str(outputs.subtitles),
                "removed": [str(path) for path in outputs.removed]}


def make(request: str, options: MakeOptions = MakeOptions(), on_progress: Callable[[RenderProgress], None] | None = None,
         before_render: Callable[[Animation], None] | None = None) -> Made:
    """Request -> scene (and video): fill() and Animation.write() for the template routes, the free-form model for
    "baseline". `before_render` sees the verified animation before any file is written (to show its cautions while
    the render can still be stopped); `on_progress` follows the render."""
    if options.filler == "baseline":
        return _make_baseline(request, options, on_progress)  # no animation to show before_render
    animation = fill(request, filler=options.filler, adapter=options.adapter, x0=options.x0, window=options.window)
    if before_render is not None:
        before_render(animation)
    outputs = animation.write(options.output, render=options.render, quality=options.quality, fmt=options.fmt,
                              on_progress=on_progress, jobs=options.jobs)
    return Made(request, animation.filler, animation, outputs)


def _make_baseline(request: str, options: MakeOptions, on_progress) -> Made:
    """The free-form baseline: the model's scene is written exactly as emitted and rendered if it can be."""
    from derivanim.baseline import generate_scene

    if options.adapter is None:
        raise InvalidInput("the baseline needs a freeform adapter (--adapter): train one with "
                           "`derivanim train --task freeform`")
    folder, stem, fmt = output_target(options.output, slug(request), options.fmt)
    generated = generate_scene(request, options.adapter)
    outputs = write_animation(generated.text, folder, stem, render=options.render, quality=options.quality, fmt=fmt,
                              on_progress=on_progress, jobs=options.jobs)
    return Made(request, "baseline", None, outputs,
                {"tokens": generated.tokens, "seconds": generated.seconds, "finished": generated.finished})
