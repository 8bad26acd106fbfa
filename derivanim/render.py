"""The render stage: Manim Community in a subprocess, into a folder of the user's choice, atomically.

Manim writes into a private temporary folder beside the destination; only a finished video is moved
into place (os.replace), so a failure, a full disk or Ctrl-C never leaves a half-written file behind.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from derivanim.errors import RenderError

QUALITIES = {"l": "480p15", "m": "720p30", "h": "1080p60", "k": "2160p60"}
FORMATS = ("mp4", "gif")
SCENE = "DerivativeVisualization"


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


def render_scene(
    scene_file: Path,
    out_dir: Path,
    quality: str = "m",
    fmt: str = "mp4",
    on_animation: Callable[[int], None] | None = None,
    timeout: float | None = None,
) -> Path:
    """Render the scene in `scene_file` to `out_dir/<stem>.<fmt>` and return that path.

    `on_animation(n)` is called as Manim finishes each animation, for progress. Raises RenderError with
    Manim's last error line and the path of the full log.
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
    command = [
        sys.executable, "-m", "manim", "render", str(Path(scene_file).resolve()), SCENE, f"-q{quality}",
        "--format", fmt, "--media_dir", str(work), "--disable_caching", "--progress_bar", "none",
    ]
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
            finished = 0
            try:
                for line in process.stdout:
                    log.write(line)
                    if on_animation and re.search(r"Animation \d+ :", line):
                        finished += 1
                        on_animation(finished)
                code = process.wait()
            finally:
                if watchdog:
                    watchdog.cancel()
        if timeout is not None and code != 0 and time.monotonic() - started >= timeout:
            raise subprocess.TimeoutExpired(command, timeout)
        videos = sorted(work.rglob(f"{SCENE}.{fmt}"))
        if code != 0 or not videos:
            raise RenderError(f"Manim failed: {_last_error(work_log)}", _keep_log(work_log, target))
        try:
            os.replace(videos[0], target)
        except OSError as error:  # a full disk or a read-only folder: say so, with the (complete) log
            raise RenderError(f"could not write {target}: {error.strerror or error}", _keep_log(work_log, target)) from None
    except subprocess.TimeoutExpired:
        raise RenderError(f"Manim did not finish within {timeout:g} s", _keep_log(work_log, target)) from None
    except BaseException:
        if "process" in locals() and process.returncode is None:  # Ctrl-C or an error of ours mid-render
            _stop(process)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


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


def _last_error(log_path: Path) -> str:
    lines = [line.strip() for line in Path(log_path).read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"(Error|Exception)\b", line)]
    return (errors or lines or ["no output"])[-1][:300]


def open_file(path: Path) -> None:
    """Open a file with the desktop's viewer, if there is one."""
    opener = shutil.which("xdg-open") or shutil.which("open")
    if opener is None:
        raise RenderError(f"--preview: no viewer found (xdg-open/open); the video is at {path}")
    subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
