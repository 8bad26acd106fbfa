"""The render stage: Manim Community in a subprocess, into a folder of the user's choice, atomically.

Manim writes into a private temporary folder beside the destination; only a finished video is moved
into place (os.replace), so a failure, a full disk or Ctrl-C never leaves a half-written file behind.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
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
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=".render-"))
    log_path = out_dir / f"{Path(scene_file).stem}.render.log"
    command = [
        sys.executable, "-m", "manim", "render", str(scene_file), SCENE, f"-q{quality}",
        "--format", fmt, "--media_dir", str(work), "--disable_caching", "--progress_bar", "none",
    ]
    try:
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work)
            finished = 0
            for line in process.stdout:
                log.write(line)
                if on_animation and re.search(r"Animation \d+ :", line):
                    finished += 1
                    on_animation(finished)
            code = process.wait(timeout=timeout)
        videos = sorted(work.rglob(f"{SCENE}.{fmt}"))
        if code != 0 or not videos:
            raise RenderError(f"Manim failed: {_last_error(log_path)}", str(log_path))
        os.replace(videos[0], target)
        log_path.unlink()
    except subprocess.TimeoutExpired:
        process.kill()
        raise RenderError(f"Manim did not finish within {timeout:g} s", str(log_path)) from None
    except BaseException:
        if "process" in locals() and process.poll() is None:
            process.kill()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


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
