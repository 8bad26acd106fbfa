"""The render stage: Manim renders the scene to MP4 in a subprocess, PyAV converts it to GIF or WebM, atomically.

Manim writes into a private work folder beside the destination; only finished files are moved into place
(os.replace), so a failure, a full disk or Ctrl-C never leaves a half-written file behind. GIF and WebM are made
from the MP4 frame by frame, so memory stays the same whatever the quality and length.

The Manim subprocess (WORKER) counts the scene's animations and phases (a pass with animations skipped, which also
typesets the LaTeX the real pass then reuses), renders, and reports on stdout in lines that start with EVENT.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import srt

from derivanim.errors import InvalidInput, RenderError

QUALITIES = {"l": "low_quality", "m": "medium_quality", "h": "high_quality", "k": "fourk_quality"}
FORMATS = ("mp4", "gif", "webm")
SCENE = "DerivativeVisualization"
VIDEO_SUFFIXES = tuple(f".{fmt}" for fmt in FORMATS)
GIF_MAX_FPS = 15  # GIF frame delays are in 1/100 s and every frame is a full palette image: more is only bytes
GIF_MAX_WIDTH = 960
WEBM_OPTIONS = {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}  # VP9, constant quality
EVENT = "@derivanim "
WORKER = "import sys; from derivanim.render import render_here; sys.exit(render_here(*sys.argv[1:]))"
MAX_STEM = 80


def write_atomically(path: Path, text: str) -> None:
    """Write a text file so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
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


# --- progress -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderProgress:
    """Where a render stands: the step ('rendering', then 'converting to GIF' or 'converting to WebM'), the scene
    section being rendered (a phase; '' where the scene has none), animations done of all, and the time left."""

    step: str
    phase: str
    phase_number: int
    phases: int
    animations_done: int
    animations: int
    fraction: float  # of this step, by video time
    seconds_left: float | None  # None until there is a rate to go by


class _Tracker:
    """Turns the worker's events into RenderProgress: the plan gives each animation's phase and length, and the
    time left follows from how fast the video seconds done so far were rendered."""

    def __init__(self, report: Callable[[RenderProgress], None] | None):
        self.report = report
        self.plan: list[tuple[str | None, float]] = []
        self.started = time.monotonic()
        self.error: str | None = None
        self.files: dict = {}

    def handle(self, event: dict) -> None:
        kind = event["event"]
        if kind == "plan":
            self.plan = [(phase, seconds) for phase, seconds in event["animations"]]
            self.started = time.monotonic()
            self._emit(0, None)
        elif kind == "played":
            self._emit(event["done"], event["phase"])
        elif kind == "error":
            self.error = event["message"]
        elif kind == "done":
            self.files = event

    def _emit(self, done: int, last_phase: str | None) -> None:
        if self.report is None:
            return
        phases = list(dict.fromkeys(phase for phase, _ in self.plan if phase))
        phase = self.plan[done][0] if done < len(self.plan) else last_phase  # the one being rendered now
        total = sum(seconds for _, seconds in self.plan) or 1.0
        fraction = min(sum(seconds for _, seconds in self.plan[:done]) / total, 1.0)
        self.report(RenderProgress(
            step="rendering", phase=phase or "", phase_number=phases.index(phase) + 1 if phase in phases else 0,
            phases=len(phases), animations_done=done, animations=len(self.plan), fraction=fraction,
            seconds_left=_seconds_left(self.started, fraction),
        ))


def _seconds_left(started: float, fraction: float) -> float | None:
    """The time the rest of a step takes at the rate of the part done since `started`."""
    return (time.monotonic() - started) * (1 - fraction) / fraction if fraction > 0 else None


# --- rendering ------------------------------------------------------------------------------------------------

def render_scene(
    scene_file: Path,
    out_dir: Path,
    quality: str = "m",
    fmt: str = "mp4",
    on_progress: Callable[[RenderProgress], None] | None = None,
    timeout: float | None = None,
) -> Path:
    """Render the scene in `scene_file` to `out_dir/<stem>.<fmt>` (and its subtitles to `<stem>.srt`, where the
    scene has any) and return the video's path.

    Raises RenderError with the scene's own error (or Manim's) and the path of the full log.
    """
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {', '.join(QUALITIES)}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{Path(scene_file).stem}.{fmt}"
    # Absolute paths, because Manim runs inside the work folder; the log stays there too until a failure
    # needs it, so runs into the same folder never share (or delete) each other's log.
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=".render-")).resolve()
    work_log = work / "manim.log"
    command = [sys.executable, "-c", WORKER, str(Path(scene_file).resolve()), str(work / "media"), QUALITIES[quality]]
    tracker = _Tracker(on_progress)
    try:
        with open(work_log, "w") as log:
            # Its own process group, so that stopping it stops the LaTeX and dvisvgm it runs as well.
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work,
                                       start_new_session=True)
            started = time.monotonic()
            # Reading Manim's output blocks until it ends, so the time limit is a watchdog that kills it.
            watchdog = threading.Timer(timeout, _stop, (process,)) if timeout is not None else None
            if watchdog:
                watchdog.start()
            try:
                for line in process.stdout:
                    if line.startswith(EVENT):
                        tracker.handle(json.loads(line[len(EVENT):]))
                    else:
                        log.write(line)
                code = process.wait()
            finally:
                if watchdog:
                    watchdog.cancel()
        if timeout is not None and code != 0 and time.monotonic() - started >= timeout:
            raise subprocess.TimeoutExpired(command, timeout)
        video = Path(tracker.files["video"]) if code == 0 and tracker.files.get("video") else None
        if video is None or not video.is_file():
            raise RenderError(f"Manim failed: {tracker.error or _failure(code, work_log)}", _keep_log(work_log, target))
        if fmt != "mp4":
            video = _converted(video, work / target.name, on_progress, work_log, target)
        subtitles = Path(tracker.files["subtitles"]) if tracker.files.get("subtitles") else None
        if subtitles is not None:
            write_atomically(subtitles, subtitles_in_turn(subtitles.read_text(encoding="utf-8")))
        try:
            _publish(video, target, subtitles)
        except OSError as error:  # a full disk or a read-only folder: say so, with the (complete) log
            raise RenderError(f"could not write {target}: {error.strerror or error}",
                              _keep_log(work_log, target)) from None
    except subprocess.TimeoutExpired:
        raise RenderError(f"Manim did not finish within {timeout:g} s", _keep_log(work_log, target)) from None
    except BaseException:
        if "process" in locals() and process.returncode is None:  # Ctrl-C or an error of ours mid-render
            _stop(process)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _converted(video: Path, converted: Path, on_progress, work_log: Path, target: Path) -> Path:
    try:
        return convert_video(video, converted, on_progress)
    except av.FFmpegError as error:
        raise RenderError(f"converting the video to {target.suffix[1:]} failed: {error}",
                          _keep_log(work_log, target)) from None


def _publish(video: Path, target: Path, subtitles: Path | None) -> None:
    """Move the finished video (and subtitles) into place; a log of an earlier failed render goes, being stale."""
    os.replace(video, target)
    if subtitles is not None:
        os.replace(subtitles, target.with_suffix(".srt"))
    else:
        target.with_suffix(".srt").unlink(missing_ok=True)
    target.with_suffix(".render.log").unlink(missing_ok=True)


def _stop(process: subprocess.Popen) -> None:
    """Kill Manim and everything it started, and wait, so nothing writes into the work folder afterwards."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _keep_log(work_log: Path, target: Path) -> str | None:
    """Move a failed render's log out of the work folder, beside where the video would have gone."""
    kept = target.with_suffix(".render.log")
    try:
        os.replace(work_log, kept)
    except OSError:
        return None
    return str(kept)


def _failure(code: int, log_path: Path) -> str:
    """Why Manim stopped, where it could not say so itself: killed (by the system, e.g. out of memory), or the
    last error line of its log."""
    if code < 0:
        return f"the renderer was killed by signal {signal.Signals(-code).name} (out of memory?)"
    lines = [line.strip() for line in Path(log_path).read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"(Error|Exception)\b", line)]
    return (errors or lines or [f"exit code {code}, no output"])[-1][:300]


def subtitles_in_turn(text: str) -> str:
    """The scene's subtitles with each one ending no later than the next begins (a phase shorter than its
    subtitle would otherwise show two at once)."""
    cues = sorted(srt.parse(text), key=lambda cue: cue.start)
    for cue, following in zip(cues, cues[1:]):
        cue.end = min(cue.end, following.start)
    return srt.compose(cues)


# --- converting -----------------------------------------------------------------------------------------------

def convert_video(source: Path, target: Path, on_progress: Callable[[RenderProgress], None] | None = None) -> Path:
    """Convert an MP4 to `target`'s format (GIF or WebM), streaming frame by frame; returns `target`.

    GIF: at most GIF_MAX_FPS frames a second and GIF_MAX_WIDTH pixels wide, with one palette made for the whole
    video (a first pass collects its colours, a second maps every frame to them). WebM: VP9 at the video's size.
    """
    fmt = target.suffix[1:]
    with av.open(str(source)) as probe:
        stream = probe.streams.video[0]
        frames, rate, width = stream.frames, stream.average_rate, stream.width
    step = f"converting to {'GIF' if fmt == 'gif' else 'WebM'}"
    started = time.monotonic()

    def progress(done: int, passes: int = 1, current: int = 1) -> None:
        if on_progress is None or not frames:
            return
        fraction = min(((current - 1) * frames + done) / (passes * frames), 1.0)
        on_progress(RenderProgress(step, "", 0, 0, 0, 0, fraction, _seconds_left(started, fraction)))

    if fmt == "gif":
        fps = Fraction(min(Fraction(rate), GIF_MAX_FPS))
        size = f"{min(width, GIF_MAX_WIDTH)}:-2:flags=lanczos"  # -2: the height that keeps the aspect, even
        palette = _gif_palette(source, fps, size, lambda done: progress(done, 2, 1))
        _write_gif(source, target, fps, size, palette, lambda done: progress(done, 2, 2))
    elif fmt == "webm":
        _write_webm(source, target, progress)
    else:
        raise ValueError(f"cannot convert to {fmt}")
    return target


def _frames(container, on_frame: Callable[[int], None]):
    """Decode a video's frames one at a time, calling on_frame(count) every so often."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    for count, frame in enumerate(container.decode(stream), 1):
        if count % 30 == 0:
            on_frame(count)
        yield frame


def _filtered(source_node, frames, sink):
    """Push frames through a filter graph and yield what comes out, one at a time. Every push is followed by a
    pull: libavfilter runs only when asked for output, and until then it queues every frame pushed."""
    def drain():
        while True:
            try:
                yield sink.pull()
            except (BlockingIOError, EOFError):  # PyAV's EAGAIN (wants more input) and end of stream
                return

    for frame in frames:
        source_node.push(frame)
        yield from drain()
    source_node.push(None)
    yield from drain()


def _scaled_input(graph, template, fps: Fraction, size: str):
    """A filter graph input for the video's frames, at the GIF's frame rate and size: (input node, output node)."""
    source_node = graph.add_buffer(template=template)
    rate = graph.add("fps", f"fps={fps}")
    scale = graph.add("scale", size)
    source_node.link_to(rate)
    rate.link_to(scale)
    return source_node, scale


def _gif_palette(source: Path, fps: Fraction, size: str, on_frame: Callable[[int], None]):
    """One 256-colour palette for the whole video (palettegen keeps a histogram, not the frames)."""
    with av.open(str(source)) as container:
        template = container.streams.video[0]
        graph = av.filter.Graph()
        source_node, scaled = _scaled_input(graph, template, fps, size)
        palettegen, sink = graph.add("palettegen", "stats_mode=full"), graph.add("buffersink")
        scaled.link_to(palettegen)
        palettegen.link_to(sink)
        graph.configure()
        palettes = list(_filtered(source_node, _frames(container, on_frame), sink))
    return palettes[-1]


def _write_gif(source: Path, target: Path, fps: Fraction, size: str, palette, on_frame: Callable[[int], None]) -> None:
    with av.open(str(source)) as container, av.open(str(target), "w", format="gif") as output:
        template = container.streams.video[0]
        graph = av.filter.Graph()
        source_node, scaled = _scaled_input(graph, template, fps, size)
        palette_node = graph.add_buffer(width=palette.width, height=palette.height, format=palette.format,
                                        time_base=template.time_base)
        paletteuse, sink = graph.add("paletteuse", "dither=sierra2_4a:diff_mode=rectangle"), graph.add("buffersink")
        scaled.link_to(paletteuse, 0, 0)
        palette_node.link_to(paletteuse, 0, 1)
        paletteuse.link_to(sink)
        graph.configure()
        palette.pts = 0
        palette_node.push(palette)
        palette_node.push(None)  # one palette for every frame
        stream = output.add_stream("gif", rate=fps)
        stream.pix_fmt = "pal8"
        for index, frame in enumerate(_filtered(source_node, _frames(container, on_frame), sink)):
            if index == 0:
                stream.width, stream.height = frame.width, frame.height
            frame.pts, frame.time_base = index, 1 / fps
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))


def _write_webm(source: Path, target: Path, on_frame: Callable[[int], None]) -> None:
    with av.open(str(source)) as container, av.open(str(target), "w", format="webm") as output:
        template = container.streams.video[0]
        stream = output.add_stream("libvpx-vp9", rate=template.average_rate, options=WEBM_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = template.width, template.height, "yuv420p"
        for frame in _frames(container, on_frame):
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))


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
) -> Outputs:
    """Write `folder/<stem>.py` and, if `render`, its video and subtitles beside it.

    Never a stale pair: the scene is written only once its video is in place (a failed render leaves the earlier
    scene and video as they were), and videos or subtitles of this name made from a different scene are removed.
    """
    folder = Path(folder)
    scene = folder / f"{stem}.py"
    video = None
    if render:
        with tempfile.TemporaryDirectory(prefix="derivanim-") as scratch:
            scene_file = Path(scratch) / scene.name
            scene_file.write_text(code, encoding="utf-8")
            video = render_scene(scene_file, folder, quality=quality, fmt=fmt, on_progress=on_progress,
                                 timeout=timeout)
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


# --- the Manim subprocess ---------------------------------------------------------------------------------------

def _event(**fields) -> None:
    print(EVENT + json.dumps(fields), flush=True)


def _instrumented(scene, on_play: Callable[[str | None, float], None]):
    """The scene, reporting each finished animation with its section (phase) and length in video seconds."""
    phase = [None]
    play, next_section = scene.play, scene.next_section

    def reporting_play(*args, **kwargs):
        before = scene.time
        play(*args, **kwargs)
        on_play(phase[0], scene.time - before)

    def named_section(name="unnamed", *args, **kwargs):
        phase[0] = name
        next_section(name, *args, **kwargs)

    scene.play, scene.next_section = reporting_play, named_section  # self.wait() goes through self.play too
    return scene


def _latex_error(message: str) -> str:
    """Manim's 'latex error converting to dvi ... the log file: X.log' with the error LaTeX gave in that log."""
    found = re.search(r"the log file: (\S+\.log)", message)
    if found and Path(found[1]).is_file():
        first = next((line.strip() for line in Path(found[1]).read_text(errors="replace").splitlines()
                      if line.startswith("!")), None)
        if first:
            return f"LaTeX failed: {first}"
    return message


def render_here(scene_file: str, media_dir: str, quality: str) -> int:
    """Count, then render, the scene in this process; the parent reads the events."""
    import importlib.util

    from manim import tempconfig

    try:
        spec = importlib.util.spec_from_file_location(Path(scene_file).stem, scene_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        scene_class = getattr(module, SCENE, None)
        if scene_class is None:
            raise NameError(f"the scene file defines no class {SCENE}")
        settings = {"input_file": scene_file, "media_dir": media_dir, "quality": quality, "format": "mp4",
                    "disable_caching": True, "progress_bar": "none"}
        plan = []
        with tempconfig(settings):
            try:
                counting = scene_class(skip_animations=True)
            except TypeError:  # a scene with an __init__ of its own: rendered without a count
                counting = None
            if counting is not None:
                _instrumented(counting, lambda phase, seconds: plan.append((phase, seconds))).render()
        _event(event="plan", animations=plan)
        done = [0]

        def played(phase, seconds):
            done[0] += 1
            _event(event="played", done=done[0], phase=phase)

        with tempconfig(settings):
            scene = _instrumented(scene_class(), played)
            scene.render()
            writer = scene.renderer.file_writer
            _event(event="done", video=str(writer.movie_file_path),
                   subtitles=str(writer.output_plan.subcaption_file) if writer.subcaptions else None)
        return 0
    except BaseException as error:
        traceback.print_exc(file=sys.stdout)
        _event(event="error", message=_latex_error(f"{type(error).__name__}: {error}"))
        return 1
