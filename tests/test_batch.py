"""`derivanim batch`: a requests file with a bad line, real low-quality renders in two local worker processes, a rerun
that skips everything, a run stopped with Ctrl-C in the middle of a render that resumes; and the same batch on a
local Ray cluster (one per module: it takes seconds to start), whose killed tasks are retried once."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest

from derivanim.api import fill
from derivanim.batch import MANIFEST, BatchOptions, read_requests, run_batch
from derivanim.execute import Job, RayCluster, dry_run_reports, run_jobs
from test_execute import FINE, RAISES  # pytest puts tests/ on sys.path

REQUESTS = """# the batch of tests/test_batch.py and tests/test_batch_ray.py
x^2
sin(x

{"request": "x^3 - 3x", "x0": 1.5, "name": "cubic"}
d/dx e^(x/2)
"""
GOOD_LINES = {2: "x_2", 5: "cubic", 6: "e_x_over_2"}  # line number -> file stem


def run_batch_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "derivanim.cli", "batch", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def manifest_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / MANIFEST).read_text(encoding="utf-8").splitlines()]


def frame_count(video: Path) -> int:
    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_requests_file_is_lines_or_json_lines_and_a_bad_line_says_why(tmp_path):
    requests = tmp_path / "requests.txt"
    requests.write_text('x^2\n  # comment\n\n{"request": "sin(x)", "window": [-3, 3], "format": "gif"}\n'
                        '{"request": "x", "colour": "red"}\n{"request": "x", \n{"quality": "l"}\n', encoding="utf-8")
    lines = read_requests(requests)
    assert [line.number for line in lines] == [1, 4, 5, 6, 7]
    assert lines[0].options.request == "x^2" and lines[0].error is None
    assert lines[1].options.window == (-3, 3) and lines[1].options.format == "gif"
    assert "colour" in lines[2].error and "Extra inputs" in lines[2].error
    assert "JSON" in lines[3].error
    assert "request" in lines[4].error and "Field required" in lines[4].error


def test_lines_that_cannot_be_filled_are_failed_records_and_the_exit_status_says_so(tmp_path):
    (tmp_path / "requests.txt").write_text("sin(x\nfloor(x)\n", encoding="utf-8")
    # A torn last line (a run killed while writing it) is dropped, not kept.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MANIFEST).write_text('{"line": 1, "status": "ok", "key": "abc", "vid', encoding="utf-8")
    finished = run_batch_command("requests.txt", "-o", "out", cwd=tmp_path)
    assert finished.returncode == 1, finished.stderr
    records = manifest_of(tmp_path / "out")
    assert [(record["line"], record["status"]) for record in records] == [(1, "failed"), (2, "failed")]
    assert "'(' is not closed" in records[0]["error"] and records[1]["error"]
    assert "0 of 2 lines made" in finished.stdout
    assert "line 1 'sin(x' failed" in finished.stderr


def test_shared_needs_ray_and_a_missing_file_is_one_line(tmp_path, derivanim):
    (tmp_path / "requests.txt").write_text("x^2\n", encoding="utf-8")
    for args, message in ((["batch", "requests.txt", "--shared"], "--shared is for a Ray cluster"),
                          (["batch", "missing.txt"], "cannot read the requests file missing.txt")):
        finished = derivanim(*args, cwd=tmp_path)
        assert finished.returncode == 2 and message in finished.stderr
        assert len(finished.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory) -> Path:
    """The tests' batch rendered at low quality by two local worker processes: the reference of the tests below."""
    folder = tmp_path_factory.mktemp("batch")
    (folder / "requests.txt").write_text(REQUESTS, encoding="utf-8")
    finished = run_batch_command("requests.txt", "-o", "out", "-q", "l", "--workers", "2", cwd=folder)
    assert finished.returncode == 1, finished.stderr  # one line is bad
    assert "3 of 4 lines made (0 made before), 1 failed" in finished.stdout
    return folder


@pytest.mark.slow
def test_a_batch_makes_every_good_line_and_records_the_bad_one(local_batch):
    out = local_batch / "out"
    records = manifest_of(out)
    assert [record["line"] for record in records] == [2, 3, 5, 6]
    bad = records[1]
    assert bad["status"] == "failed" and "'(' is not closed" in bad["error"] and bad["video"] is None
    for record in (records[0], records[2], records[3]):
        stem = GOOD_LINES[record["line"]]
        assert record["status"] == "ok" and record["error"] is None
        assert (record["scene"], record["video"], record["subtitles"]) == (f"{stem}.py", f"{stem}.mp4", f"{stem}.srt")
        assert frame_count(out / record["video"]) > 100 and record["seconds"] > 0
        animation = fill(record["request"], x0=1.5 if record["line"] == 5 else None)
        assert (out / record["scene"]).read_text(encoding="utf-8") == animation.code
        assert (record["slots"], record["derivative"]) == (animation.slots.model_dump(), animation.derivative)
    assert records[2]["slots"]["x0"] == 1.5
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # no work folders, no parts


@pytest.mark.slow
def test_a_rerun_skips_everything_already_made(local_batch):
    out = local_batch / "out"
    before = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    manifest = (out / MANIFEST).read_text(encoding="utf-8")
    finished = run_batch_command("requests.txt", "-o", "out", "-q", "l", cwd=local_batch)
    assert finished.returncode == 1 and "3 of 4 lines made (3 made before), 1 failed" in finished.stdout
    assert (out / MANIFEST).read_text(encoding="utf-8") == manifest
    assert {name: mtime for name, mtime in before.items() if name != MANIFEST} == \
           {path.name: path.stat().st_mtime_ns for path in out.iterdir() if path.name != MANIFEST}


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_a_render_keeps_nothing_half_made_and_a_rerun_resumes(local_batch, tmp_path):
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", str(local_batch / "out"), str(out)], check=True)
    (tmp_path / "requests.txt").write_text(REQUESTS + "x^2 - 1\n", encoding="utf-8")
    made = {path.name: path.stat().st_mtime_ns for path in out.glob("*.mp4")}
    # SIGINT handled as in a terminal even when the suite runs in the background, where the shell that started it
    # ignores SIGINT and every process it starts inherits that (Python then installs no KeyboardInterrupt).
    running = subprocess.Popen([sys.executable, "-m", "derivanim.cli", "batch", "requests.txt", "-o", "out", "-q", "l"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(out.glob(".render-*/media/**/*.mp4")):  # Manim has written part of the new video
        assert running.poll() is None and time.monotonic() < deadline, running.communicate()
        time.sleep(0.2)
    running.send_signal(signal.SIGINT)
    stdout, stderr = running.communicate(timeout=60)
    assert running.returncode == 130 and "interrupted" in stderr, (stdout, stderr)
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]
    assert not (out / "x_2_minus_1.mp4").exists()
    assert [record["line"] for record in manifest_of(out)] == [2, 3, 5, 6]  # the earlier records, whole

    finished = run_batch_command("requests.txt", "-o", "out", "-q", "l", cwd=tmp_path)
    assert finished.returncode == 1 and "4 of 5 lines made (3 made before), 1 failed" in finished.stdout
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("*.mp4") if path.name in made} == made
    last = manifest_of(out)[-1]
    assert (last["line"], last["status"], last["video"]) == (7, "ok", "x_2_minus_1.mp4")
    assert frame_count(out / last["video"]) > 100


# --- on a Ray cluster ---------------------------------------------------------------------------------------------

SLEEPS_THEN_PLAYS = """
import time
from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        time.sleep(3)  # time for the test to kill the task in the middle
        self.play(Create(Square()), run_time=0.5)
"""


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield RayCluster()
    ray.shutdown()


def frames(video: Path) -> list[bytes]:
    with av.open(str(video)) as container:
        return [frame.to_ndarray(format="rgb24").tobytes() for frame in container.decode(video=0)]


@pytest.mark.slow
def test_on_a_ray_cluster_the_batch_gives_the_same_manifest_and_videos(local_batch, ray_cluster, tmp_path):
    result = run_batch(local_batch / "requests.txt", BatchOptions(output=tmp_path / "out", quality="l",
                                                                  cluster=ray_cluster))

    def without_seconds(records):
        return [{key: value for key, value in record.items() if key != "seconds"} for record in records]

    assert without_seconds(result.records) == without_seconds(manifest_of(local_batch / "out"))
    assert without_seconds(manifest_of(tmp_path / "out")) == without_seconds(result.records)
    for record in result.records:
        if record["status"] == "ok":
            assert frames(tmp_path / "out" / record["video"]) == frames(local_batch / "out" / record["video"])
            assert (tmp_path / "out" / record["subtitles"]).read_text() == \
                   (local_batch / "out" / record["subtitles"]).read_text()
    assert not [path.name for path in (tmp_path / "out").iterdir() if path.name.startswith(".")]


@pytest.mark.slow
def test_dry_runs_and_a_failed_render_on_ray_report_as_they_do_here(ray_cluster, tmp_path):
    codes = {"fine": FINE, "raises": RAISES}
    on_ray = dict(dry_run_reports(codes, timeout=60, cluster=ray_cluster))

    def without_traceback(reports):  # which names the scene's temporary file
        return {key: {name: value for name, value in report.items() if name != "traceback"}
                for key, report in reports.items()}

    assert without_traceback(on_ray) == without_traceback(dict(dry_run_reports(codes, timeout=60)))
    assert on_ray["fine"]["phase_names"] == ["show_square"] and "broke on purpose" in on_ray["raises"]["error"]
    [broken] = run_jobs([Job(RAISES, mode="render", quality="l", output=tmp_path / "broken.mp4")], cluster=ray_cluster)
    assert broken.error == "Manim failed: RuntimeError: the scene broke on purpose"
    assert broken.log == tmp_path / "broken.render.log" and "Traceback" in broken.log.read_text()  # sent back
    assert [path.name for path in tmp_path.iterdir()] == ["broken.render.log"]


def manim_workers_in(folder: Path) -> dict[int, int]:
    """The Manim workers rendering into `folder` (their work folders are there) that a Ray task runs, each with the
    pid of the Ray worker running the task (Ray names its process 'ray::<the task's function>')."""
    workers = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"derivanim.execute import serve" in (entry / "cmdline").read_bytes() \
                    and Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                if Path(f"/proc/{parent}/cmdline").read_bytes().startswith(b"ray::_run_on_node"):
                    workers[int(entry.name)] = parent
        except OSError:  # it ended while we looked
            continue
    return workers


def render_killing_its_task(folder: Path, cluster: RayCluster, kills: int):
    """Render a scene on the cluster (folders shared: the work folder is in `folder`) and kill the Ray worker that
    runs it, `kills` times, each time while its Manim worker runs; the Result, and the Manim workers seen."""
    results = []
    job = Job(SLEEPS_THEN_PLAYS, mode="render", quality="l", output=folder / "square.mp4")
    rendering = threading.Thread(target=lambda: results.extend(run_jobs([job], cluster=cluster)))
    rendering.start()
    killed, seen = set(), set()
    while rendering.is_alive():
        for worker, task in manim_workers_in(folder).items():
            seen.add(worker)
            if task not in killed and len(killed) < kills:
                os.kill(task, signal.SIGKILL)
                killed.add(task)
        time.sleep(0.1)
    assert len(killed) == kills
    return results[0], seen


@pytest.mark.slow
def test_a_ray_task_killed_in_the_middle_is_retried_once_and_its_renderer_dies_with_it(ray_cluster, tmp_path):
    result, seen = render_killing_its_task(tmp_path, RayCluster(shared=True), kills=1)
    assert result.ok, result.error
    assert result.video == tmp_path / "square.mp4" and frame_count(result.video) > 0
    assert len(seen) == 2  # the killed attempt's Manim worker, and the retry's
    time.sleep(0.5)
    assert not [worker for worker in seen if Path(f"/proc/{worker}").exists()]
    assert not list(tmp_path.glob(".render-*"))  # the killed attempt's work folder went with the retry


@pytest.mark.slow
def test_a_ray_task_killed_twice_fails_with_why(ray_cluster, tmp_path):
    result, seen = render_killing_its_task(tmp_path, RayCluster(shared=True), kills=2)
    assert not result.ok and "the Ray task failed 2 times" in result.error
    assert result.video is None and not (tmp_path / "square.mp4").exists()
    assert len(seen) == 2
