"""The render stage's outputs: names, the scene and video as a pair, GIF/WebM conversion in bounded memory,
subtitles, progress, errors that say what went wrong, the preview, and the display in Jupyter.

Renders here use tiny scenes (a few seconds of Manim each); the real scene is rendered in test_cli's slow test.
"""

import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import pytest

from derivanim.errors import InvalidInput, RenderError
from derivanim.execute import _failure
from derivanim.render import Outputs, open_in_viewer, output_target, render_scene, slug, write_animation
from derivanim.video import GIF_MAX_FPS, GIF_MAX_WIDTH, convert_video, subtitles_in_turn

TWO_PHASES = '''
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        self.next_section("First phase")
        self.add_subcaption("a square appears", duration=5)
        self.play(Create(Square()), run_time=0.5)
        self.wait(0.2)
        self.next_section("Second phase")
        self.add_subcaption("it waits", duration=1)
        self.wait(0.5)
'''
CRASHING = '''
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        self.play(Create(Square()), run_time=0.2)
        raise RuntimeError("the scene broke on purpose")
'''
BAD_LATEX = '''
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        self.play(Write(MathTex(r"\\undefinedcommand x")))
'''


def frames_of(path: Path) -> tuple[str, int, int, int, Fraction]:
    """codec, width, height, frames decoded, and frame rate: decoding every frame proves the file whole."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, stream.width, stream.height, frames, stream.average_rate


def synthetic_mp4(path: Path, width: int, height: int, fps: int, seconds: float) -> Path:
    """An H.264 MP4 of a bar sweeping across a gradient: colours to build a palette from, motion to encode."""
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        gradient = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None].repeat(height, 0).repeat(3, 2)
        count = int(fps * seconds)
        for index in range(count):
            image = gradient.copy()
            left = index * (width - 40) // count
            image[:, left:left + 40] = (255, 200, 0)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


# --- names ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("function, stem", [
    ("sin(x^2)", "sin_x_2"),
    ("x^2-1", "x_2_minus_1"),
    ("x^2+1", "x_2_plus_1"),
    ("-x^2", "minus_x_2"),
    ("x/(x^2+1)", "x_over_x_2_plus_1"),
    ("g(t) = t^3 - 2t", "t_3_minus_2t"),
    ("y = sqrt(x)", "sqrt_x"),
])
def test_files_are_named_after_the_function(function, stem):
    assert slug(function) == stem


@pytest.mark.parametrize("text", ["../../etc/passwd", "/tmp/x", "..", "a\\b", "x^2\n.bashrc", "~/x", "\x00"])
def test_a_name_from_user_text_never_leaves_its_folder(text, tmp_path):
    stem = slug(text)
    assert stem and set(stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
    assert (tmp_path / f"{stem}.py").resolve().parent == tmp_path.resolve()


def test_a_name_is_never_empty_or_endless():
    assert slug("()^") == "derivative"
    assert len(slug("x+" * 200)) <= 80 and not slug("x+" * 200).endswith("_")


def test_output_is_a_folder_or_a_file_whose_suffix_sets_the_format(tmp_path):
    assert output_target(tmp_path / "out", "sin_x_2") == (tmp_path / "out", "sin_x_2", "mp4")
    assert output_target(tmp_path / "out", "sin_x_2", "gif") == (tmp_path / "out", "sin_x_2", "gif")
    assert output_target(tmp_path / "talk" / "cubic.webm", "x_3") == (tmp_path / "talk", "cubic", "webm")
    assert output_target(tmp_path / "cubic.GIF", "x_3") == (tmp_path, "cubic", "gif")
    assert output_target(tmp_path / "cubic.py", "x_3", "gif") == (tmp_path, "cubic", "gif")
    assert output_target(tmp_path / "cubic.py", "x_3") == (tmp_path, "cubic", "mp4")
    (tmp_path / "videos.mp4").mkdir()  # an existing folder stays a folder, whatever its name
    assert output_target(tmp_path / "videos.mp4", "x_3") == (tmp_path / "videos.mp4", "x_3", "mp4")
    with pytest.raises(InvalidInput, match="gif"):
        output_target(tmp_path / "cubic.gif", "x_3", "mp4")


# --- conversion -------------------------------------------------------------------------------------------------

def test_gif_is_a_real_gif_capped_in_rate_and_width(tmp_path):
    source = synthetic_mp4(tmp_path / "wide.mp4", 1280, 720, 30, 2)
    gif = convert_video(source, tmp_path / "wide.gif")
    assert gif.read_bytes()[:6] == b"GIF89a"
    codec, width, height, frames, _ = frames_of(gif)
    assert codec == "gif" and (width, height) == (GIF_MAX_WIDTH, 540)
    assert abs(frames - 2 * GIF_MAX_FPS) <= 1  # 60 frames at 30 fps become 30 at 15
    with av.open(str(gif)) as container:
        assert abs(container.duration / 1e6 - 2) < 0.15


def test_gif_keeps_a_small_video_as_it_is_and_its_colours(tmp_path):
    source = synthetic_mp4(tmp_path / "small.mp4", 320, 180, 15, 1)
    gif = convert_video(source, tmp_path / "small.gif")
    _, width, height, frames, _ = frames_of(gif)
    assert (width, height, frames) == (320, 180, 15)
    def last_frame(path):
        with av.open(str(path)) as container:
            return list(container.decode(video=0))[-1].to_ndarray(format="rgb24").astype(int)

    difference = abs(last_frame(gif) - last_frame(source))  # 256 colours for a gradient and a yellow bar
    assert difference.mean() < 4 and difference[:, 270:290].max() < 24


def test_webm_is_vp9_with_every_frame(tmp_path):
    source = synthetic_mp4(tmp_path / "clip.mp4", 640, 360, 30, 1)
    webm = convert_video(source, tmp_path / "clip.webm")
    codec, width, height, frames, _ = frames_of(webm)
    assert (codec, width, height, frames) == ("vp9", 640, 360, 30)


CONVERT_AND_REPORT_PEAK = """
import resource, sys
from pathlib import Path
from derivanim.video import convert_video
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
convert_video(Path(sys.argv[1]), Path(sys.argv[2]))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_gif_conversion_streams_frames_in_bounded_memory(tmp_path):
    """400 frames of 720p are 550 MB decoded; converting must hold a few at a time, not all of them (a filter graph
    that is pushed to but not pulled from queues every frame: 513 MB here)."""
    source = synthetic_mp4(tmp_path / "long.mp4", 1280, 720, 40, 10)
    result = subprocess.run([sys.executable, "-c", CONVERT_AND_REPORT_PEAK, str(source), str(tmp_path / "long.gif")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 200, f"converting to GIF grew the process by {result.stdout.strip()} MB"


# --- subtitles ----------------------------------------------------------------------------------------------------

def test_subtitles_end_where_the_next_begins():
    text = "1\n00:00:00,000 --> 00:00:04,000\nTitle\n\n2\n00:00:02,500 --> 00:00:06,500\nGraph\n\n" \
           "3\n00:00:10,000 --> 00:00:14,000\nSweep\n"
    assert subtitles_in_turn(text) == (
        "1\n00:00:00,000 --> 00:00:02,500\nTitle\n\n2\n00:00:02,500 --> 00:00:06,500\nGraph\n\n"
        "3\n00:00:10,000 --> 00:00:14,000\nSweep\n\n"
    )


# --- rendering: the pair, progress, errors ----------------------------------------------------------------------------

def test_a_render_writes_the_pair_and_subtitles_and_reports_each_phase(tmp_path):
    progress = []
    outputs = write_animation(TWO_PHASES, tmp_path, "tiny", quality="l", on_progress=progress.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mp4", "tiny.py", "tiny.srt"]
    assert (outputs.scene, outputs.video, outputs.subtitles) == (tmp_path / "tiny.py", tmp_path / "tiny.mp4",
                                                                 tmp_path / "tiny.srt")
    assert outputs.scene.read_text() == TWO_PHASES
    assert frames_of(outputs.video)[3] > 10
    # Subtitles beside the video, each ending where the next begins (the first was added for 5 s).
    assert outputs.subtitles.read_text() == (
        "1\n00:00:00,000 --> 00:00:00,733\na square appears\n\n2\n00:00:00,733 --> 00:00:01,733\nit waits\n\n")
    # Progress: the phases in order, animations done of the total (three plays, the waits count), time left.
    assert [(p.phase, p.phase_number, p.phases, p.animations_done, p.animations) for p in progress] == [
        ("First phase", 1, 2, 0, 3), ("First phase", 1, 2, 1, 3),
        ("Second phase", 2, 2, 2, 3), ("Second phase", 2, 2, 3, 3)]
    assert progress[-1].fraction == 1 and progress[-1].seconds_left == 0 and progress[1].seconds_left > 0


def test_a_failed_render_leaves_the_earlier_pair_as_it_was(tmp_path):
    old_video = tmp_path / "tiny.mp4"
    old_video.write_bytes(b"the earlier video")
    (tmp_path / "tiny.py").write_text("# the earlier scene\n")
    (tmp_path / "tiny.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nearlier\n")
    with pytest.raises(RenderError) as error:
        write_animation(CRASHING, tmp_path, "tiny", quality="l")
    assert "RuntimeError: the scene broke on purpose" in str(error.value)
    assert "Played" not in str(error.value)
    assert old_video.read_bytes() == b"the earlier video"
    assert (tmp_path / "tiny.py").read_text() == "# the earlier scene\n"
    assert (tmp_path / "tiny.srt").read_text().endswith("earlier\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mp4", "tiny.py", "tiny.render.log", "tiny.srt"]


def test_a_new_scene_removes_videos_made_from_another_and_keeps_those_of_the_same(tmp_path):
    (tmp_path / "tiny.py").write_text("# another scene\n")
    for stale in ("tiny.gif", "tiny.webm", "tiny.render.log"):
        (tmp_path / stale).write_bytes(b"from another scene")
    first = write_animation(TWO_PHASES, tmp_path, "tiny", quality="l")
    assert sorted(p.name for p in first.removed) == ["tiny.gif", "tiny.webm"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mp4", "tiny.py", "tiny.srt"]  # the failure log too
    # The same scene as a GIF: the MP4 beside it was made from this very scene, so it stays.
    second = write_animation(TWO_PHASES, tmp_path, "tiny", quality="l", fmt="gif")
    assert second.removed == () and second.video == tmp_path / "tiny.gif"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.gif", "tiny.mp4", "tiny.py", "tiny.srt"]
    # Only the scene, changed: no video of the old one may stay beside it.
    third = write_animation(TWO_PHASES + "# edited\n", tmp_path, "tiny", render=False)
    assert sorted(p.name for p in third.removed) == ["tiny.gif", "tiny.mp4", "tiny.srt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.py"]


def test_a_latex_error_says_what_latex_said(tmp_path):
    scene = tmp_path / "src" / "latex.py"
    scene.parent.mkdir()
    scene.write_text(BAD_LATEX)
    with pytest.raises(RenderError) as error:
        render_scene(scene, tmp_path / "out", quality="l")
    message = str(error.value)
    assert message.startswith("Manim failed: LaTeX failed: ! ") and "Played" not in message
    assert error.value.log_path and "undefinedcommand" in Path(error.value.log_path).read_text()


def test_a_killed_renderer_is_named_as_such(tmp_path):
    log = tmp_path / "manim.log"
    log.write_text("INFO Played 31 animations\n")
    assert "killed by signal SIGKILL (out of memory?)" in _failure(-9, log)


# --- preview ----------------------------------------------------------------------------------------------------------

def test_preview_without_a_display_opens_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert open_in_viewer(tmp_path / "x_2.mp4") is False


def test_preview_with_a_display_runs_the_opener_on_the_video(tmp_path, monkeypatch):
    opened = tmp_path / "opened"
    opener = tmp_path / "bin" / "xdg-open"
    opener.parent.mkdir()
    opener.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$1" > {opened}
        """))
    opener.chmod(0o755)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("PATH", f"{opener.parent}{os.pathsep}{os.environ['PATH']}")
    assert open_in_viewer(tmp_path / "x_2.mp4") is True
    assert opened.read_text().strip() == str(tmp_path / "x_2.mp4")
    opener.write_text("#!/bin/sh\nexit 3\n")  # xdg-open's "no application for this file"
    assert open_in_viewer(tmp_path / "x_2.mp4") is False


# --- Jupyter ---------------------------------------------------------------------------------------------------------

def test_in_jupyter_an_animation_shows_its_formulas_then_plays_its_video(tmp_path, monkeypatch):
    from derivanim import api

    def rendered(code, folder, stem, render=True, quality="m", fmt="mp4", on_progress=None, jobs=1):  # no Manim here
        return Outputs(Path(folder) / f"{stem}.py", Path(folder) / f"{stem}.{fmt}" if render else None, None, ())

    animation = api.fill("x^2", filler="rules")
    shown = animation._repr_markdown_()
    assert shown == "$$f(x) = x^{2}$$\n\n$$f'(x) = 2 x$$"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(api, "write_animation", rendered)
    animation.save("out")
    assert animation._repr_markdown_() == shown  # a scene alone has nothing to play
    animation.render(tmp_path / "out", quality="l")  # shown from the notebook's folder
    assert animation._repr_markdown_() == shown + '\n\n<video src="out/x_2.mp4" controls loop></video>'
    animation.render("out", fmt="gif")
    assert animation._repr_markdown_().endswith('\n\n<img src="out/x_2.gif">')


def test_render_key_changes_with_each_thing_that_changes_the_video():
    from derivanim.render import render_key

    key = render_key("code", "m", "mp4")
    assert key == render_key("code", "m", "mp4")
    assert len({key, render_key("code2", "m", "mp4"), render_key("code", "h", "mp4"), render_key("code", "m", "gif"),
                render_key("code", "m", "mp4", scene="Other")}) == 5
