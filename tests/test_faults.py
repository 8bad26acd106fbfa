"""Faults while rendering: a failure leaves no half-written output and names its cause and log.

Manim errors, missing LaTeX, a full disk, two runs into one folder, and Ctrl-C. Most use a tiny scene
file (a second of Manim start-up); the two that need the real scene are marked slow.
"""

import errno
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import derivanim.render
from derivanim import cli
from derivanim.errors import RenderError
from derivanim.render import render_scene, write_atomically

CRASHING_SCENE = '''
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        self.add(Square())
        raise RuntimeError("the scene broke on purpose")
'''
TINY_SCENE = '''
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        self.add(Square())
        self.wait(0.2)
'''


def leftovers(folder: Path) -> list[str]:
    """Anything a failed or interrupted run must not leave: work folders, .part files, videos."""
    return sorted(
        str(path.relative_to(folder)) for path in folder.rglob("*")
        if path.name.startswith(".render-") or path.name.endswith(".part") or path.suffix in (".mp4", ".gif", ".mov")
    )


def video_frames(path: Path) -> int:
    """Decode a whole video (PyAV, which Manim itself uses) and count its frames; a damaged file raises."""
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def scene_file(folder: Path, source: str, name: str = "scene") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source)
    return path


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "derivanim.cli", "make", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


# --- (a) Manim fails ----------------------------------------------------------------------------------------

def test_a_scene_that_raises_is_a_render_error_with_its_cause_and_log(tmp_path):
    scene = scene_file(tmp_path / "src", CRASHING_SCENE)
    out = tmp_path / "out"
    with pytest.raises(RenderError) as error:
        render_scene(scene, out, quality="l")
    message = str(error.value)
    assert "the scene broke on purpose" in message
    assert error.value.log_path and Path(error.value.log_path).is_file()
    assert error.value.log_path in message
    assert "Traceback" in Path(error.value.log_path).read_text() or "RuntimeError" in Path(error.value.log_path).read_text()
    assert leftovers(out) == []
    assert sorted(p.name for p in out.iterdir()) == ["scene.render.log"]


def test_a_relative_scene_path_and_folder_work(tmp_path, monkeypatch):
    """Manim runs inside its work folder, so relative paths must be resolved before it starts."""
    monkeypatch.chdir(tmp_path)
    scene_file(tmp_path / "src", TINY_SCENE, "tiny")
    video = render_scene(Path("src/tiny.py"), Path("out"), quality="l")
    assert video == Path("out/tiny.mp4")
    assert video_frames(tmp_path / video) > 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tiny.mp4"]  # no log, no work folder


def test_a_render_past_its_time_limit_is_stopped_and_reported(tmp_path):
    scene = scene_file(tmp_path / "src", TINY_SCENE.replace("self.wait(0.2)", "self.wait(600)"), "slow")
    out = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(RenderError, match="did not finish within 2 s"):
        render_scene(scene, out, quality="l", timeout=2)
    assert time.monotonic() - started < 30
    assert leftovers(out) == []


# --- (b) LaTeX missing ----------------------------------------------------------------------------------------

def test_missing_latex_is_exit_1_with_one_line_and_no_partial_files(tmp_path):
    """PATH holds only python: Manim starts (by absolute path) but finds no `latex` for the title."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", str(tmp_path)), "LANG": "C.UTF-8"}
    result = run_cli("--quality", "l", "--filler", "rules", "-o", "out", "--", "x^2", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Manim failed"), result.stderr
    assert "latex" in lines[0] and "log: " in lines[0]
    out = tmp_path / "out"
    assert leftovers(out) == []
    assert sorted(p.name for p in out.iterdir()) == ["x_2.render.log"]  # the scene is written only with its video


# --- (c) disk full ----------------------------------------------------------------------------------------------

def _disk_full_for(suffixes: tuple[str, ...]):
    real_replace = os.replace

    def replace(source, destination, *args, **kwargs):
        if str(destination).endswith(suffixes):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(destination))
        return real_replace(source, destination, *args, **kwargs)

    return replace


def test_disk_full_while_moving_the_video_is_a_render_error_and_leaves_nothing(tmp_path, monkeypatch):
    scene = scene_file(tmp_path / "src", TINY_SCENE, "tiny")
    out = tmp_path / "out"
    monkeypatch.setattr(derivanim.render.os, "replace", _disk_full_for((".mp4",)))
    with pytest.raises(RenderError) as error:
        render_scene(scene, out, quality="l")
    assert "No space left on device" in str(error.value)
    assert error.value.log_path and Path(error.value.log_path).is_file()
    assert leftovers(out) == []


def test_disk_full_while_writing_the_scene_leaves_no_part_file(tmp_path, monkeypatch):
    target = tmp_path / "out" / "derivative.py"
    monkeypatch.setattr(derivanim.render.os, "replace", _disk_full_for((".py",)))
    with pytest.raises(OSError) as error:
        write_atomically(target, "print('a whole file')\n")
    assert error.value.errno == errno.ENOSPC
    assert list((tmp_path / "out").iterdir()) == []


def test_disk_full_through_the_cli_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(derivanim.render.os, "replace", _disk_full_for((".py",)))
    code = cli.main(["make", "--filler", "rules", "--no-render", "-o", "out", "sin(x)"])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in captured.err
    assert list((tmp_path / "out").iterdir()) == []


def test_an_existing_scene_survives_a_failed_rewrite(tmp_path, monkeypatch):
    target = tmp_path / "derivative.py"
    write_atomically(target, "old = 1\n")
    monkeypatch.setattr(derivanim.render.os, "replace", _disk_full_for((".py",)))
    with pytest.raises(OSError):
        write_atomically(target, "new = 2\n")
    assert target.read_text() == "old = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["derivative.py"]


# --- (d) two runs into one folder ---------------------------------------------------------------------------------

def test_two_renders_at_once_into_one_folder_keep_apart(tmp_path):
    """Different names side by side, with the tiny scene: each gets its own work folder and log."""
    scenes = [scene_file(tmp_path / f"src{i}", TINY_SCENE, name) for i, name in enumerate(("first", "second"))]
    out = tmp_path / "out"
    with ThreadPoolExecutor(max_workers=2) as pool:
        videos = list(pool.map(lambda scene: render_scene(scene, out, quality="l"), scenes))
    assert [v.name for v in videos] == ["first.mp4", "second.mp4"]
    assert all(video_frames(v) > 0 for v in videos)
    assert sorted(p.name for p in out.iterdir()) == ["first.mp4", "second.mp4"]


def test_a_render_removes_the_work_folders_of_renders_killed_outright_on_this_host(tmp_path):
    """A process killed with SIGKILL (a Ray task killed mid-render) leaves its work folder; the next render into the
    folder removes it, and leaves a live process's and another host's alone (their renders may be running)."""
    import platform

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = tmp_path / "out"
    abandoned = out / f".render-{platform.node()}-{gone.pid}-k1ll3d"
    running = out / f".render-{platform.node()}-{os.getppid()}-l1v3"
    elsewhere = out / f".render-another-host-{gone.pid}-0th3r"
    for folder in (abandoned, running, elsewhere):
        (folder / "media").mkdir(parents=True)
    video = render_scene(scene_file(tmp_path / "src", TINY_SCENE, "after"), out, quality="l")
    assert video_frames(video) > 0
    assert sorted(path.name for path in out.iterdir()) == sorted(["after.mp4", running.name, elsewhere.name])


@pytest.mark.slow
def test_two_cli_runs_with_the_same_name_leave_one_whole_video(tmp_path):
    """The real scene, twice at once into the same folder under the same name: both succeed, and the
    video left is one complete video (the later os.replace wins whole), beside one whole scene file and its
    subtitles."""
    command = [sys.executable, "-m", "derivanim.cli", "make", "--quality", "l", "--filler", "rules", "-o", "out",
               "--", "x^2"]
    runs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(run.wait(timeout=600), *run.communicate()) for run in runs]
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert "video: out/x_2.mp4" in stdout
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["x_2.mp4", "x_2.py", "x_2.srt"]
    assert video_frames(out / "x_2.mp4") > 100  # eight phases at 15 fps: far more than 100 frames
    compile((out / "x_2.py").read_text(), "x_2.py", "exec")


# --- (e) Ctrl-C ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_during_a_render_exits_130_and_leaves_no_partial_files(tmp_path):
    # A session of its own, so the signal goes to the CLI's process group as a terminal's Ctrl-C would; and SIGINT
    # handled as in a terminal even when the suite itself runs in the background (where a shell ignores SIGINT).
    run = subprocess.Popen(
        [sys.executable, "-m", "derivanim.cli", "make", "--quality", "l", "--filler", "rules", "-o", "out", "--", "x^2"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    out = tmp_path / "out"
    deadline = time.monotonic() + 120
    while not (out.exists() and any(p.name.startswith(".render-") for p in out.iterdir())):
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the render never started"
        time.sleep(0.1)
    time.sleep(3)  # Manim is well into the scene: LaTeX written, partial movie files on disk
    assert run.poll() is None
    os.killpg(run.pid, signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].endswith("interrupted")
    assert "Traceback" not in stderr
    time.sleep(1)  # anything Manim left running would write now
    assert leftovers(out) == []
    assert list(out.iterdir()) == []  # the scene is written only once its video is in place
