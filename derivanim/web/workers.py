"""The processes behind `derivanim serve`: one filler and N render workers, each a fresh Python (spawn), never the
server's event loop.

The filler verifies each new job's slots (api.fill: the grammar, or the model filler for a request in words) and
writes its scene, so that the page shows the slots, f' and the derivation within a second, while the render workers
are busy with earlier videos. Being one process, it loads the model once (model_filler caches its SlotsDecoder per
process) and only when a request in words first needs it. The render workers render the queued scenes through
derivanim.execute (render.write_animation), each into gallery/<render key>/, and stop a render that is cancelled.

SIGTERM or Ctrl-C stops a worker the way Ctrl-C stops `derivanim make`: execute stops Manim with everything it
started and leaves no half-written file; the job stays 'running' and runs again when the server next starts.
"""

import multiprocessing
import shutil
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from derivanim.errors import DerivanimError
from derivanim.execute import RenderProgress
from derivanim.web.store import Job, JobStore

POLL_SECONDS = 0.05
RENDER_SHARE_OF_GIF = 0.85  # of a GIF's progress bar: the render; the conversion is the rest


class _Cancelled(Exception):
    """The job was cancelled while it rendered."""


def start_workers(data: Path, renderers: int, render_seconds: float, ready_within: float = 120.0, jobs: int = 1
                  ) -> list[multiprocessing.Process]:
    """Start the filler and `renderers` render workers on the data folder `data`, each rendering a video in `jobs`
    Manim processes at once; returns once the filler has imported the pipeline (seconds on a busy machine), so that
    the first request is not the one that waits for it."""
    spawn = multiprocessing.get_context("spawn")  # a fork of a server with threads can deadlock
    ready = spawn.Event()
    processes = [spawn.Process(target=fill_forever, args=(str(data), ready), name="derivanim-filler", daemon=True)]
    processes += [spawn.Process(target=render_forever, args=(str(data), render_seconds, jobs), daemon=True,
                                name=f"derivanim-render-{number}") for number in range(1, renderers + 1)]
    for process in processes:
        process.start()
    ready.wait(ready_within)
    return processes


def stop_workers(processes: list[multiprocessing.Process], grace: float = 20.0) -> None:
    """SIGTERM to each (a render stops and cleans up), then SIGKILL to any still there after `grace` seconds."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _work_on(next_job: Callable[[], Job | None], handle: Callable[[Job], None]) -> None:
    """Take jobs as they come, until SIGTERM or Ctrl-C, which end the worker without a traceback."""
    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            job = next_job()
            if job is None:
                time.sleep(POLL_SECONDS)
            else:
                handle(job)
    except (KeyboardInterrupt, SystemExit):
        sys.exit(0)


@contextmanager
def _failure_recorded(store: JobStore, job: Job):
    """An error becomes the job's one-line message (the CLI's for derivanim's own errors), never a traceback."""
    try:
        yield
    except DerivanimError as error:
        store.failed(job.id, str(error), error.exit_code)
    except Exception as error:  # a bug of ours: still one line
        store.failed(job.id, f"{type(error).__name__}: {error}", 1)


# --- the filler ----------------------------------------------------------------------------------------------------

def fill_forever(data: str, ready) -> None:
    import derivanim.api  # noqa: F401  (before the first request, not during it)

    store = JobStore(data)
    ready.set()
    _work_on(store.next_to_fill, lambda job: fill_job(store, job))


def fill_job(store: JobStore, job: Job) -> None:
    """Verify the job's slots and write its scene; a request derivanim cannot use fails with the CLI's message."""
    from derivanim.api import fill
    from derivanim.render import render_key

    options = job.options
    window = None if options.get("x_min") is None else (options["x_min"], options["x_max"])
    with _failure_recorded(store, job):
        animation = fill(job.request, filler=options["filler"], x0=options.get("x0"), window=window)
        plan = animation.plan
        shown = {**animation.to_dict(), "name": plan.name, "variable": plan.variable, "f_latex": plan.f_latex,
                 "derivation": [{"rule": line.rule, "latex": line.latex, "note": line.note}
                                for page in plan.derivation_pages for line in page]}
        store.filled(job, shown, animation.slots.function, animation.code,
                     render_key(animation.code, options["quality"], options["format"]))


# --- the render workers --------------------------------------------------------------------------------------------

def render_forever(data: str, render_seconds: float, jobs: int = 1) -> None:
    store = JobStore(data)
    _work_on(store.claim, lambda job: render_job(store, job, render_seconds, jobs))


def render_job(store: JobStore, job: Job, render_seconds: float, jobs: int = 1) -> None:
    """Render a claimed job into the gallery (or take the gallery's video, if another job just rendered it)."""
    from derivanim.render import slug, write_animation

    earlier = store.rendered_before(job.key)
    if earlier is not None:
        store.done(job.id, earlier.video, earlier.scene, earlier.subtitles, from_gallery=True)
        return
    folder = store.data / "gallery" / job.key
    fmt = job.options["format"]

    def on_progress(progress: RenderProgress) -> None:
        if progress.step == "rendering":
            share = 1.0 if fmt == "mp4" else RENDER_SHARE_OF_GIF
            phase = f"phase {progress.phase_number} of {progress.phases}: {progress.phase}" if progress.phase else ""
            overall = share * progress.fraction
        else:
            phase, overall = progress.step, RENDER_SHARE_OF_GIF + (1 - RENDER_SHARE_OF_GIF) * progress.fraction
        if store.progress(job.id, phase, overall, progress.seconds_left) == "cancelling":
            raise _Cancelled

    with _failure_recorded(store, job):
        try:
            outputs = write_animation(job.code, folder, slug(job.function), quality=job.options["quality"], fmt=fmt,
                                      on_progress=on_progress, timeout=render_seconds, jobs=jobs)
        except _Cancelled:
            shutil.rmtree(folder, ignore_errors=True)
            store.cancelled(job.id)
            return
        relative = lambda path: path and str(path.relative_to(store.data))  # noqa: E731
        store.done(job.id, relative(outputs.video), relative(outputs.scene), relative(outputs.subtitles))
