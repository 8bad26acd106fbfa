"""The executor's policy, for real worker processes: a scene that raises, hangs or kills its worker fails alone, with
its reason in one line, and the scenes beside it in the same batch keep their results; no worker outlives its run."""

import os
import tempfile
import time
from pathlib import Path

import pytest

from derivanim import execute
from derivanim.execute import Job, dry_run_reports, run_jobs

FINE = '''
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        self.show_square()

    def show_square(self):
        axes = Axes(x_range=[-2, 2], y_range=[-1, 4], x_length=4, y_length=3)
        self.play(Create(axes), Create(axes.plot(lambda x: x ** 2, x_range=[-2, 2])))
'''
RAISES = '''
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        self.add(Square())
        raise RuntimeError("the scene broke on purpose")
'''
HANGS = '''
import time
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        self.add(Square())
        time.sleep(600)
'''
KILLS_ITS_WORKER = '''
import os
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        os._exit(3)
'''
LIMIT = 8.0  # seconds: far more than the tiny scenes need, far less than the hang


def _by_index(results) -> list:
    return sorted(results, key=lambda result: result.index)


def test_a_scene_that_raises_or_hangs_fails_alone_and_the_fine_one_keeps_its_report():
    """One batch (one worker): the hang is stopped at its own limit, and the fine scene after it still runs."""
    jobs = [Job(RAISES, timeout=LIMIT), Job(HANGS, timeout=LIMIT), Job(FINE, timeout=LIMIT)]
    started = time.monotonic()
    raised, hung, fine = _by_index(run_jobs(jobs))
    assert time.monotonic() - started < 120
    assert fine.ok and fine.report["error"] is None
    assert fine.report["phase_names"] == ["show_square"] and [plot["axes"] for plot in fine.report["plots"]] == [0]
    assert fine.report["plots"][0]["y"][0] == pytest.approx(4.0)  # x^2 at x = -2, as the scene plotted it
    assert raised.error == "RuntimeError: the scene broke on purpose" == raised.report["error"]
    assert hung.error == f"Manim did not finish within {LIMIT:g} s" == hung.report["error"]
    assert hung.report["phases"] == [] and hung.seconds is None
    for result in (raised, hung, fine):
        assert "\n" not in (result.error or "")


def test_a_worker_that_dies_mid_batch_costs_only_its_culprit_and_leaves_no_files(tmp_path, monkeypatch):
    """The scene kills its worker outright: the scenes the worker had not finished run again one per worker, so
    the fine ones after it are reported, and the culprit fails with the reason. No worker leaves a temporary file,
    not even the one that never ran its clean-up."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    jobs = [Job(FINE, timeout=LIMIT), Job(KILLS_ITS_WORKER, timeout=LIMIT), Job(FINE, timeout=LIMIT)]
    first, culprit, last = _by_index(run_jobs(jobs))
    assert first.ok and last.ok and last.report["plots"]
    assert culprit.error == "Manim failed: exit code 3, no output" == culprit.report["error"]
    assert list(tmp_path.iterdir()) == []


def test_dry_run_reports_are_by_key_and_use_the_scene_class_asked_for():
    renamed = FINE.replace("DerivativeVisualization", "Parabola")
    reports = dict(dry_run_reports({"parabola": renamed}, timeout=LIMIT, scene="Parabola"))
    assert reports["parabola"]["error"] is None and reports["parabola"]["phase_names"] == ["show_square"]
    missing = dict(dry_run_reports({"parabola": renamed}, timeout=LIMIT))  # no DerivativeVisualization in it
    assert "DerivativeVisualization" in missing["parabola"]["error"]


def test_a_render_job_puts_its_video_where_asked_and_a_failed_one_its_log(tmp_path):
    tiny = FINE.replace("self.show_square()", "self.add(Square())\n        self.wait(0.2)")
    jobs = [Job(tiny, mode="render", quality="l", output=tmp_path / "tiny.mp4", timeout=120),
            Job(RAISES, mode="render", quality="l", output=tmp_path / "broken.mp4", timeout=120)]
    made, broken = _by_index(run_jobs(jobs, workers=2))
    assert made.ok and made.video == tmp_path / "tiny.mp4" and made.video.stat().st_size > 0
    assert made.cpu_seconds > 0 and made.seconds > 0
    assert broken.error == "Manim failed: RuntimeError: the scene broke on purpose"
    assert broken.log == tmp_path / "broken.render.log" and "Traceback" in broken.log.read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.render.log", "tiny.mp4"]


def test_leaving_early_stops_every_worker(monkeypatch):
    """The caller stops reading (an error, Ctrl-C): the workers still running are killed, not left to finish."""
    started = []
    popen = execute.subprocess.Popen

    def recording_popen(*args, **kwargs):
        process = popen(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(execute.subprocess, "Popen", recording_popen)
    results = run_jobs([Job(RAISES, timeout=LIMIT), Job(HANGS)], workers=2)
    first = next(results)
    assert first.index == 0
    begun = time.monotonic()
    results.close()
    assert time.monotonic() - begun < 30
    assert len(started) == 2 and all(process.returncode is not None for process in started)
    for process in started:
        with pytest.raises(ProcessLookupError):
            os.killpg(process.pid, 0)  # the process group (the worker and anything it ran) is gone


def test_a_job_names_what_is_wrong_with_it():
    with pytest.raises(ValueError, match="quality"):
        Job(FINE, quality="x")
    with pytest.raises(ValueError, match="mode"):
        Job(FINE, mode="preview")
    with pytest.raises(ValueError, match="gif"):
        Job(FINE, mode="render", fmt="gif", output=Path("out/video.mp4"))
