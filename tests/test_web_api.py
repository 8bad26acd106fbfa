"""`derivanim serve`'s JSON API in-process (FastAPI's TestClient), on a real SQLite store in a temporary data folder,
with real worker processes where a test needs them: validation, the full queue, cancelling, restarts, and (slow) a
request to a real 480p render and back from the gallery."""

import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from derivanim.api import fill
from derivanim.errors import InvalidInput
from derivanim.render import render_key
from derivanim.web.app import Limits, create_app
from derivanim.web.store import MAX_ATTEMPTS, JobStore

# A fake-slow job: a tiny scene of many short animations (a progress event after each), rendered for real.
SLOW_SCENE = """from manim import *


class DerivativeVisualization(Scene):
    def construct(self):
        dot = Dot()
        self.add(dot)
        for _ in range({steps}):
            self.play(dot.animate.shift(0.002 * RIGHT), run_time=0.2)
"""
OPTIONS = {"quality": "l", "format": "mp4", "filler": "auto", "x_min": None, "x_max": None, "x0": None}


def queued_scene(store: JobStore, steps: int, request: str = "fake-slow") -> str:
    """A job as the filler leaves it (queued, its scene written), with the tiny scene as its code."""
    job_id = store.add(request, OPTIONS, max_active=100)
    code = SLOW_SCENE.format(steps=steps)
    store.filled(store.get(job_id), {"slots": None}, "fake", code, render_key(code, "l", "mp4"))
    return job_id


def wait_for(client: TestClient, job_id: str, statuses: tuple[str, ...], seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(f"/api/animations/{job_id}").json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"still {job['status']} ({job['phase']}) after {seconds} s"
        time.sleep(0.2)


def manim_children(pid: int) -> list[int]:
    """Manim worker processes started by the process `pid` (derivanim.execute's, in sessions of their own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def idle(tmp_path):
    """The app with no worker processes: jobs stay where a test puts them."""
    with TestClient(create_app(tmp_path, workers=False, limits=Limits(max_queue=2, max_request=40))) as client:
        yield client


@pytest.fixture
def served(tmp_path):
    """The app with its filler and one render worker, as `derivanim serve` runs it."""
    with TestClient(create_app(tmp_path, limits=Limits(render_seconds=300))) as client:
        yield client


def test_the_page_is_served_with_its_assets(idle):
    page = idle.get("/")
    assert page.status_code == 200
    assert "Teach the product rule with x*sin(x)" in page.text
    assert 'src="/static/katex/katex.min.js"' in page.text and "http" not in page.text.replace("http-equiv", "")
    assert idle.get("/static/katex/katex.min.js").status_code == 200
    assert idle.get("/static/katex/fonts/KaTeX_Main-Regular.woff2").status_code == 200


def test_bad_options_are_422_in_one_line(idle):
    for body, message in (
        ({"request": "x^2", "quality": "z"}, "quality: Input should be 'l', 'm' or 'h'"),
        ({"request": "x^2", "format": "avi"}, "format: Input should be 'mp4' or 'gif'"),
        ({"quality": "l"}, "request: Field required"),
        ({"request": "x" * 41}, "request: at most 40 characters, not 41"),
        ({"request": "   "}, "request: type a function such as sin(x^2), or a request in words"),
        ({"request": "x^2", "x_min": -1}, "the window needs both ends, x_min and x_max"),
    ):
        answer = idle.post("/api/animations", json=body)
        assert answer.status_code == 422, body
        assert answer.json() == {"error": message}


def test_a_full_queue_is_429_with_retry_after(idle):
    store = idle.app.state.store
    for _ in range(2):
        store.add("x^2", OPTIONS, max_active=2)
    answer = idle.post("/api/animations", json={"request": "x^3"})
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "30"
    assert "the queue is full (2 animations are waiting or rendering)" in answer.json()["error"]


def test_a_queued_job_is_cancelled_at_once_and_unknown_ids_are_404(idle):
    job_id = queued_scene(idle.app.state.store, steps=1)
    assert idle.delete(f"/api/animations/{job_id}").json() == {"id": job_id, "status": "cancelled"}
    assert idle.get(f"/api/animations/{job_id}").json()["status"] == "cancelled"
    assert idle.delete("/api/animations/nosuchjob").status_code == 404
    assert idle.get(f"/api/animations/{job_id}/video").status_code == 404  # no video, and never a path from the URL
    assert idle.get("/api/animations/..%2F..%2Fetc%2Fpasswd/video").status_code == 404


def test_recovery_runs_what_was_running_again_once_then_fails_it_with_the_reason(tmp_path):
    store = JobStore(tmp_path)
    again = queued_scene(store, steps=1, request="was running")
    waiting = queued_scene(store, steps=2, request="was queued")
    assert store.claim().id == again  # a worker had it when the server stopped
    assert store.recover() == {"requeued": 1, "failed": 0, "waiting": 2}
    assert store.get(again).status == "queued" and store.get(waiting).status == "queued"
    assert MAX_ATTEMPTS == 2
    assert store.claim().id == again  # its second run, and the server stops again
    assert store.recover() == {"requeued": 0, "failed": 1, "waiting": 1}
    stopped = store.get(again)
    assert stopped.status == "failed"
    assert stopped.error == f"the server stopped {MAX_ATTEMPTS} times while this animation rendered"


def test_invalid_input_is_422_with_the_clis_message(served):
    with pytest.raises(InvalidInput) as raised:
        fill("sin(x")
    answer = served.post("/api/animations", json={"request": "sin(x"})
    assert answer.status_code == 422
    assert answer.json() == {"error": str(raised.value)}  # what `derivanim make` prints after "error:"
    assert served.get("/api/animations").json() == {"animations": []}  # nothing queued


def test_a_restarted_server_renders_the_jobs_it_had(tmp_path):
    store = JobStore(tmp_path)
    interrupted = queued_scene(store, steps=2, request="was running")
    store.claim()
    queued = queued_scene(store, steps=3, request="was queued")
    with TestClient(create_app(tmp_path)) as client:
        assert client.app.state.recovered == {"requeued": 1, "failed": 0, "waiting": 2}
        for job_id in (interrupted, queued):
            job = wait_for(client, job_id, ("done", "failed"), 180)
            assert job["status"] == "done", job["error"]
            assert client.get(job["video_url"]).content[4:8] == b"ftyp"  # an MP4


def rendering(client: TestClient, steps: int) -> tuple[str, list[int]]:
    """A fake-slow job, once Manim renders it and reports its animations; with the worker's Manim processes."""
    job_id = queued_scene(client.app.state.store, steps=steps)
    while client.get(f"/api/animations/{job_id}").json()["progress"] == 0:
        time.sleep(0.1)
    worker = next(process for process in client.app.state.processes if "render" in process.name)
    return job_id, manim_children(worker.pid)


def test_cancel_stops_a_render_and_so_does_stopping_the_server(tmp_path):
    store = JobStore(tmp_path)
    with TestClient(create_app(tmp_path)) as client:
        cancelled, manim = rendering(client, steps=400)
        assert manim
        assert client.delete(f"/api/animations/{cancelled}").json()["status"] == "cancelling"
        wait_for(client, cancelled, ("cancelled",), 30)
        assert not [pid for pid in manim if Path(f"/proc/{pid}").exists()]
        assert not (tmp_path / "gallery" / store.get(cancelled).key).exists()  # no half-written video

        stopped, manim = rendering(client, steps=401)
        assert manim
    # The server stopped (SIGTERM to its workers) in the middle of that render: Manim is stopped with it, nothing
    # half-written is left, and the job runs again when the server next starts.
    assert not [pid for pid in manim if Path(f"/proc/{pid}").exists()]
    assert store.get(stopped).status == "running"
    folder = tmp_path / "gallery" / store.get(stopped).key
    assert not folder.exists() or list(folder.iterdir()) == []
    assert store.recover()["requeued"] == 1


@pytest.mark.slow
def test_a_request_to_a_real_480p_render_then_from_the_gallery(served):
    started = time.monotonic()
    answer = served.post("/api/animations", json={"request": "sin(x^2)", "quality": "l"})
    assert answer.status_code == 202
    job = answer.json()
    # The verified slots, f' and its derivation come with the answer, before any video exists.
    assert job["status"] in ("queued", "running") and job["video_url"] is None
    assert job["derivative"] == "2x cos(x^2)" and job["derivative_latex"] == r"2 x \cos{\left(x^{2} \right)}"
    assert [line["rule"] for line in job["derivation"]] == ["chain rule", "power rule"]
    assert job["filler"] == "auto" and job["filled_by"] == "rules"
    assert time.monotonic() - started < 5
    assert answer.headers["Location"] == job["status_url"] == f"/api/animations/{job['id']}"

    done = wait_for(served, job["id"], ("done", "failed"), 400)
    assert done["status"] == "done", done["error"]
    video = served.get(done["video_url"])
    assert video.headers["content-type"] == "video/mp4" and len(video.content) > 100_000
    assert "class DerivativeVisualization(Scene)" in served.get(done["scene_url"]).text
    assert done["command"] == "derivanim make 'sin(x^2)' --quality l --format mp4"

    again = served.post("/api/animations", json={"request": "sin( x^2 )", "quality": "l"}).json()
    assert again["status"] == "done" and again["from_gallery"] is True  # served at once, not rendered again
    assert served.get(again["video_url"]).content == video.content
    assert [entry["id"] for entry in served.get("/api/animations?query=sin").json()["animations"]] == [job["id"]]
    assert served.get("/api/animations?query=cos").json()["animations"] == []
    assert os.listdir(Path(served.app.state.store.data) / "gallery") == [render_key_of(served, job["id"])]


def render_key_of(client: TestClient, job_id: str) -> str:
    return client.app.state.store.get(job_id).key


def test_prune_removes_the_oldest_gallery_videos_until_the_folder_fits(tmp_path, derivanim):
    store = JobStore(tmp_path)
    jobs = []
    for number in range(3):  # three rendered videos of 1 MB each, oldest first
        job_id = queued_scene(store, steps=number + 1, request=f"video {number}")
        job = store.claim()
        video = tmp_path / "gallery" / job.key / "fake.mp4"
        video.parent.mkdir(parents=True)
        video.write_bytes(b"\0" * 1_000_000)
        store.done(job_id, str(video.relative_to(tmp_path)), str(video.with_suffix(".py").relative_to(tmp_path)), None)
        jobs.append(job_id)
    result = derivanim("serve", "--data", str(tmp_path), "--prune", "2.5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 1 gallery videos;")
    assert store.get(jobs[0]) is None and store.get(jobs[1]).status == "done"
    assert [job.request for job in store.gallery()] == ["video 2", "video 1"]


def test_a_server_with_jobs_renders_each_video_in_ranges_joined_whole(tmp_path):
    """`derivanim serve --jobs 2`: the render worker renders through derivanim make --jobs' path; the video has every
    frame of the scene (6 animations of 0.2 s at 15 fps)."""
    import av

    store = JobStore(tmp_path)
    job_id = queued_scene(store, steps=6)
    with TestClient(create_app(tmp_path, jobs=2)) as client:
        job = wait_for(client, job_id, ("done", "failed"), 180)
        assert job["status"] == "done", job["error"]
    with av.open(str(tmp_path / store.get(job_id).video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6 * 3


def test_serve_refuses_a_jobs_count_below_one(derivanim, tmp_path):
    result = derivanim("serve", "--data", str(tmp_path), "--jobs", "0")
    assert result.returncode == 2 and "--jobs" in result.stderr and result.stderr.count("\n") == 1
