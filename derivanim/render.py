"""The render stage's side that users see: file names from functions and requests, the output a user names, and the
scene file written with its video as a pair (derivanim.execute renders; derivanim.video converts).

Every file is written atomically: a failure, a full disk or Ctrl-C never leaves a half-written one behind.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from derivanim.errors import InvalidInput, RenderError
from derivanim.execute import FORMATS, Job, RenderProgress, run_jobs
from derivanim.lessons import DERIVATIVE

VIDEO_SUFFIXES = tuple(f".{fmt}" for fmt in FORMATS)
MAX_STEM = 80


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write a file (text as UTF-8) so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes the file private (0600); an ordinary file is not
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- names ----------------------------------------------------------------------------------------------------

_SIGNS = {"+": "_plus_", "-": "_minus_", "/": "_over_"}


def slug(text: str, default: str = "derivative") -> str:
    """A file name stem from a function or request: lower-case letters, digits and '_', so it never leaves its folder
    ('sin(x^2)' -> 'sin_x_2', 'x^2-1' -> 'x_2_minus_1'); a 'g(t) =' in front is left out."""
    body = text.rpartition("=")[2]  # in the grammar '=' only ever follows the 'g(t)' or 'y' of a definition
    words = re.sub(r"[^A-Za-z0-9]+", "_", re.sub(r"[-+/]", lambda sign: _SIGNS[sign[0]], body)).strip("_")
    return re.sub(r"_+", "_", words).lower()[:MAX_STEM].strip("_") or default


def output_target(output: Path | str, stem: str, fmt: str | None = None) -> tuple[Path, str, str]:
    """(folder, stem, format) for `output`: a folder (the outputs are named `stem`), or a file path whose name sets
    the stem and whose suffix (.mp4, .gif, .webm; .py for the scene) sets the format unless `fmt` does."""
    output = Path(output)
    suffix = output.suffix.lower()
    if output.is_dir() or suffix not in (*VIDEO_SUFFIXES, ".py"):
        folder, chosen = output, fmt
    else:
        folder, stem = output.parent, output.stem
        chosen = suffix[1:] if suffix != ".py" else fmt
        if fmt is not None and suffix != ".py" and fmt != chosen:
            raise InvalidInput(f"the output {output} is a .{chosen} file but the format asked for is {fmt}")
    chosen = chosen or "mp4"
    if chosen not in FORMATS:
        raise InvalidInput(f"the format must be one of {', '.join(FORMATS)}, not {chosen!r}")
    return folder, stem, chosen


# --- rendering ------------------------------------------------------------------------------------------------

def render_key(code: str, quality: str, fmt: str, scene: str = DERIVATIVE.scene_class) -> str:
    """The content address of a render: the same scene code, scene class, quality, format and Manim version always
    make the same video, so a gallery or a batch that has a video under this key need not render it again."""
    from importlib.metadata import version

    identity = "\0".join((code, scene, quality, fmt, version("manim")))
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


def render_scene(
    scene_file: Path,
    out_dir: Path,
    quality: str = "m",
    fmt: str = "mp4",
    on_progress: Callable[[RenderProgress], None] | None = None,
    timeout: float | None = None,
    scene: str = DERIVATIVE.scene_class,
    jobs: int = 1,
) -> Path:
    """Render the scene class `scene` in `scene_file` to `out_dir/<stem>.<fmt>` (and its subtitles to `<stem>.srt`,
    where the scene has any) and return the video's path; `jobs` Manim processes render ranges of its animations
    at once (derivanim.execute).

    Raises RenderError with the scene's own error (or Manim's) and the path of the full log.
    """
    code = Path(scene_file).read_text(encoding="utf-8")
    return _render(Job(code, mode="render", scene=scene, quality=quality, fmt=fmt, timeout=timeout, jobs=jobs,
                       output=Path(out_dir) / f"{Path(scene_file).stem}.{fmt}"), on_progress)


def _render(job: Job, on_progress: Callable[[RenderProgress], None] | None) -> Path:
    [result] = run_jobs([job], on_progress=None if on_progress is None else lambda _, progress: on_progress(progress))
    if result.error is not None:
        raise RenderError(result.error, None if result.log is None else str(result.log))
    return result.video


# --- the scene file and its video, as a pair -------------------------------------------------------------------

OUTPUT_SUFFIXES = (*VIDEO_SUFFIXES, ".srt")


@dataclass(frozen=True)
class Outputs:
    """What one animation wrote: its scene, its video and subtitles (None when not rendered), and the files of the
    same name it removed because they had been made from a different scene."""

    scene: Path
    video: Path | None
    subtitles: Path | None
    removed: tuple[Path, ...]


def write_animation(
    code: str,
    folder: Path,
    stem: str,
    render: bool = True,
    quality: str = "m",
    fmt: str = "mp4",
    on_progress: Callable[[RenderProgress], None] | None = None,
    timeout: float | None = None,
    jobs: int = 1,
) -> Outputs:
    """Write `folder/<stem>.py` and, if `render`, its video and subtitles beside it (rendered by `jobs` Manim
    processes at once).

    Never a stale pair: the scene is written only once its video is in place (a failed render leaves the earlier
    scene and video as they were), and videos or subtitles of this name made from a different scene are removed.
    """
    folder = Path(folder)
    scene = folder / f"{stem}.py"
    video = None
    if render:
        video = _render(Job(code, mode="render", quality=quality, fmt=fmt, timeout=timeout, jobs=jobs,
                            output=folder / f"{stem}.{fmt}"), on_progress)
    subtitles = scene.with_suffix(".srt") if video is not None and scene.with_suffix(".srt").is_file() else None
    removed = _stale_outputs(scene, code, keep={video, subtitles})
    for path in removed:
        path.unlink(missing_ok=True)
    write_atomically(scene, code)
    return Outputs(scene=scene, video=video, subtitles=subtitles, removed=tuple(removed))


def _stale_outputs(scene: Path, code: str, keep: set) -> list[Path]:
    """Videos and subtitles named like `scene` that were not made from `code`: all of them, unless the scene file
    there now is `code` itself (the same scene rendered earlier in another format stays)."""
    try:
        if scene.read_text(encoding="utf-8") == code:
            return []
    except (OSError, UnicodeDecodeError):
        pass
    return [path for path in map(scene.with_suffix, OUTPUT_SUFFIXES) if path not in keep and path.is_file()]


# --- preview --------------------------------------------------------------------------------------------------

def open_in_viewer(path: Path) -> bool:
    """Open a file with the desktop's viewer; False where none can (no display, no opener, or it refused)."""
    if sys.platform == "darwin":
        opener = shutil.which("open")
    elif os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        opener = shutil.which("xdg-open")
    else:
        opener = None
    if opener is None:
        return False
    process = subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        return process.wait(timeout=5) == 0
    except subprocess.TimeoutExpired:  # some openers run the viewer itself: it is showing the video
        return True
