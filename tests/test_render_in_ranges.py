"""One video in several Manim processes (Job.jobs): the animations split by measured cost into contiguous ranges,
each range rendered by a worker that skips the animations before it as a render would have played them, and the
pieces joined without re-encoding. The result must be the video one process renders: the same frames (checked on
real renders, at every join and everywhere else) and the same subtitles."""

import itertools
import random

import av
import numpy as np
import pytest

from derivanim.api import fill
from derivanim.execute import Job, _Run, balanced_ranges, run_jobs

TOLERANCE = 8  # of 255, per pixel: the same frame decoded twice may differ by the encoder's rounding, not by content

# Three animations, so that three ranges can only be one each: the second range starts after a TracedPath has
# collected a point every frame (a skip in one step would draw it as one straight stroke), and the clock has counted
# 0.97 s as the 15 frames a render writes (1.0 s), which the subtitle of the third animation must show.
TRACED = '''
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        dot = Dot(LEFT * 3)
        self.add(dot, TracedPath(dot.get_center, stroke_width=6))
        self.add_subcaption("the dot draws an arc", duration=1)
        self.play(MoveAlongPath(dot, Arc(radius=3, start_angle=PI, angle=-PI)), run_time=0.97)
        self.wait(0.5)
        self.add_subcaption("a square comes in", duration=1)
        self.play(FadeIn(Square()), run_time=1)
'''


BREAKS = TRACED.replace('        self.play(FadeIn(Square()), run_time=1)',
                        '        raise RuntimeError("the scene broke on purpose")')


def _frames(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, float(stream.duration * stream.time_base)


def _assert_same_video(one, many):
    """Same frame count and duration, every frame (so every join) the same within TOLERANCE, same subtitles."""
    (frames, duration), (joined, joined_duration) = _frames(one), _frames(many)
    assert len(joined) == len(frames) and joined_duration == pytest.approx(duration, abs=1e-3)
    worst = [int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(frames, joined)]
    assert max(worst) <= TOLERANCE, [(number, value) for number, value in enumerate(worst) if value > TOLERANCE]
    assert many.with_suffix(".srt").read_text() == one.with_suffix(".srt").read_text()


def _render(code, output, jobs, monkeypatch, progress=None):
    """Render with `jobs` (the format from `output`'s suffix); the number of worker processes it started."""
    workers = []
    worker = _Run._worker

    def counting(self, tasks, *args):
        workers.append(tasks)
        return worker(self, tasks, *args)

    monkeypatch.setattr(_Run, "_worker", counting)
    job = Job(code, mode="render", quality="l", fmt=output.suffix[1:], output=output, jobs=jobs, timeout=300)
    [result] = run_jobs([job], on_progress=None if progress is None else lambda _, report: progress.append(report))
    monkeypatch.undo()
    assert result.ok, (result.error, result.log and result.log.read_text()[-2000:])
    return len(workers)


def test_ranges_are_contiguous_cover_every_animation_and_balance_the_slowest():
    generator = random.Random(0)
    for count, parts in itertools.product([1, 2, 7, 30], [1, 2, 3, 8]):
        render = [generator.uniform(0.1, 5) for _ in range(count)]
        ranges = balanced_ranges([0.0] * count, render, parts)
        assert len(ranges) == min(count, parts)
        assert [first for first, _ in ranges] == [0, *(last + 1 for _, last in ranges[:-1])]
        assert ranges[-1][1] == count - 1 and all(first <= last for first, last in ranges)
    # one costly animation gets a range of its own, whatever its neighbours
    assert balanced_ranges([0.0] * 5, [1, 1, 9, 1, 1], 3) == [(0, 1), (2, 2), (3, 4)]
    assert balanced_ranges([0.0] * 4, [1, 1, 1, 1], 2) == [(0, 1), (2, 3)]


def test_skipping_is_charged_to_the_ranges_after_it():
    """A later range pays for skipping the animations before it, so the first range takes more of them."""
    assert balanced_ranges([0.0] * 6, [1.0] * 6, 2) == [(0, 2), (3, 5)]
    assert balanced_ranges([0.5] * 6, [1.0] * 6, 2) == [(0, 3), (4, 5)]  # 4 s each: 4 rendered; 2 skipped, 2


def test_a_range_after_a_traced_path_starts_from_the_frame_one_process_shows(tmp_path, monkeypatch):
    assert _render(TRACED, tmp_path / "one.mp4", 1, monkeypatch) == 1
    assert _render(TRACED, tmp_path / "three.mp4", 3, monkeypatch) == 3
    _assert_same_video(tmp_path / "one.mp4", tmp_path / "three.mp4")
    assert "00:00:01,533" in (tmp_path / "three.srt").read_text()  # 15 + 8 frames at 15 a second, not 1.47 s


def test_a_render_in_ranges_reports_every_animation_once_and_converts_the_joined_video(tmp_path, monkeypatch):
    progress = []
    assert _render(TRACED, tmp_path / "three.gif", 3, monkeypatch, progress) == 3
    rendering = [report for report in progress if report.step == "rendering"]
    assert [report.animations_done for report in rendering] == [0, 1, 2, 3]  # the order the ranges finish in
    assert rendering[-1].animations == 3 and progress[-1].step == "converting to GIF"
    with av.open(str(tmp_path / "three.gif")) as gif:
        assert gif.streams.video[0].codec_context.name == "gif"
    assert (tmp_path / "three.srt").is_file()


def test_a_scene_that_breaks_fails_in_ranges_as_in_one_process_with_its_log(tmp_path):
    [result] = run_jobs([Job(BREAKS, mode="render", quality="l", output=tmp_path / "broken.mp4", jobs=2, timeout=300)])
    assert result.error == "Manim failed: RuntimeError: the scene broke on purpose"
    assert result.log == tmp_path / "broken.render.log" and "Traceback" in result.log.read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.render.log"]


@pytest.mark.slow
def test_a_lesson_rendered_in_two_ranges_is_the_video_one_process_renders(tmp_path, monkeypatch):
    code = fill("x^2 - 2*x").code
    assert _render(code, tmp_path / "one.mp4", 1, monkeypatch) == 1
    assert _render(code, tmp_path / "two.mp4", 2, monkeypatch) == 2
    _assert_same_video(tmp_path / "one.mp4", tmp_path / "two.mp4")
