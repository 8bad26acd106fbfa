"""The public API: fill() runs the pipeline text -> slots -> verify -> plan -> code; Animation.render() makes video."""

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from derivanim.errors import InvalidInput, ModelUnavailable
from derivanim.grammar import FUNCTIONS, parse_function
from derivanim.plan import ScenePlan, plan_scene
from derivanim.render import render_scene, write_atomically
from derivanim.resources import resource_path
from derivanim.rules_filler import rules_slots
from derivanim.slots import Slots
from derivanim.template import write_scene
from derivanim.verify import verify

Filler = Literal["auto", "rules", "model"]


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
    derivative: str  # f'(x), simplified, as a string SymPy can parse back
    plan: ScenePlan = field(repr=False)
    code: str = field(repr=False)
    model_run: ModelRun | None = None
    cautions: tuple[str, ...] = ()  # what the user should check (the model's function is not in the request)

    def save(self, path: Path) -> Path:
        """Write the scene's source to `path` (atomically)."""
        write_atomically(Path(path), self.code)
        return Path(path)

    def render(self, out_dir: Path | str = ".", quality: str = "m", fmt: str = "mp4",
               name: str = "derivative", on_animation=None) -> Path:
        """Render to `out_dir/<name>.<fmt>` with Manim; returns the video's path."""
        with tempfile.TemporaryDirectory(prefix="derivanim-") as scratch:
            scene_file = self.save(Path(scratch) / f"{name}.py")
            return render_scene(scene_file, Path(out_dir), quality=quality, fmt=fmt, on_animation=on_animation)

    def to_dict(self) -> dict:
        return {
            "request": self.request,
            "filler": self.filler,
            "slots": self.slots.model_dump(),
            "requested_slots": self.requested_slots.model_dump(mode="json"),
            "repairs": list(self.repairs),
            "cautions": list(self.cautions),
            "derivative": self.derivative,
            "derivative_latex": self.plan.df_latex,
            "model": None if self.model_run is None else vars(self.model_run),
        }


_WORD = re.compile(r"[A-Za-z]{3,}")


def looks_like_words(text: str) -> bool:
    """A request in words ('Teach the product rule with x*sin(x)') rather than a function with a typo
    ('sin(x', 'floor(x)'): at least two words that are not function names."""
    return sum(word.lower() not in FUNCTIONS for word in _WORD.findall(text)) >= 2


def shipped_slots_adapter() -> Path | None:
    """The slots adapter that ships with derivanim (trained by the documented command), if present."""
    try:
        return resource_path("adapters", "slots")
    except FileNotFoundError:
        return None


def _model_slots(text: str, adapter: Path | str | None) -> tuple[Slots, ModelRun]:
    try:
        from derivanim.model_filler import fill_slots  # the model stack loads only when asked for
    except ImportError as error:
        raise ModelUnavailable(
            f"the model filler is not available ({error}); for a bare function use filler='rules' (--filler rules)"
        ) from None

    adapter = adapter or shipped_slots_adapter()
    if adapter is None:
        raise ModelUnavailable("no slots adapter is installed; train one with `derivanim train --task slots`, "
                               "or for a bare function use filler='rules' (--filler rules)")
    result = fill_slots(text, adapter_dir=adapter)
    return result.slots, ModelRun(emitted=result.emitted, tokens=result.tokens, forward_passes=result.forward_passes,
                                  seconds=result.seconds)


def fill(text: str, filler: Filler = "auto", adapter: Path | str | None = None) -> Animation:
    """Turn a function ('sin(x^2)') or a request in words into a verified animation.

    filler="rules" decides the slots with SymPy alone (the text must be a function); "model" asks the
    fine-tuned model (`adapter`, default: the shipped slots adapter); "auto" uses rules for a bare function
    and the model otherwise.
    Raises InvalidInput for text derivanim cannot use.
    """
    if filler not in ("auto", "rules", "model"):
        raise ValueError(f"filler must be 'auto', 'rules' or 'model', not {filler!r}")
    model_run = None
    if filler == "auto":
        try:
            parse_function(text)
            filler = "rules"
        except InvalidInput:
            if not looks_like_words(text):
                raise
            filler = "model"
    if filler == "rules":
        slots = rules_slots(text)
    else:
        slots, model_run = _model_slots(text, adapter)
    return build_animation(text, filler, slots, model_run)


def written_in(function: str, request: str) -> bool:
    """Whether `function` stands in `request` as written, spaces and '*' aside.

    The model filler is trained to copy the function (every corpus instruction, in the paper's formats and in
    paraphrases, contains its function), so a function it did not copy is probably one it made up.
    """
    def bare(text: str) -> str:
        return re.sub(r"[\s*]", "", text)

    return bare(function) in bare(request)


def build_animation(request: str, filler: str, slots: Slots, model_run: ModelRun | None = None) -> Animation:
    """Verify any filler's slots, plan the scene and write its code."""
    verified = verify(slots)
    plan = plan_scene(verified)
    cautions = () if filler != "model" or written_in(slots.function, request) else (
        f"the model's function {slots.function} is not written in the request: check that it is the one you meant",)
    return Animation(
        request=request,
        filler=filler,
        slots=verified.slots,
        requested_slots=verified.requested,
        repairs=verified.repairs,
        derivative=plan.df_text,
        plan=plan,
        code=write_scene(plan, f_text=str(verified.function.expr)),
        model_run=model_run,
        cautions=cautions,
    )
