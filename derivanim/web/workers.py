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
from pathlib import Path

from derivanim.errors import DerivanimError
from derivanim.execute import RenderProgress
from derivanim.web.store import Job, JobStore

POLL_SECONDS = 0.05
QUALITY_SHARE_OF_RENDER = 0.85  # of a GIF's progress bar: the render, then the conversion


class _Cancelled(Exception):
    """The job was cancelled while it rendered."""


def start_workers(data: Path, renderers: int, render_seconds: float) -> list[multiprocessing.Process]:
    """Start the filler and `renderers` render workers on the data folder `data`."""
    spawn = multiprocessing.get_context("spawn")  # a fork of a server with threads can deadlock
    processes = [spawn.Process(target=fill_forever, args=(str(data),), name="derivanim-filler", daemon=True)]
    processes += [spawn.Process(target=render_forever, args=(str(data), render_seconds), daemon=True,
                                name=f"derivanim-render-{number}") for number in range(1, renderers + 1)]
    for process in processes:
        process.start()
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


def _quietly_stoppable(loop):
    """Run a worker's loop until SIGTERM or Ctrl-C, which end it without a traceback."""
    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        loop()
    except (KeyboardInterrupt, SystemExit):
        sys.exit(0)


# --- the filler ----------------------------------------------------------------------------------------------------

def fill_forever(data: str) -> None:
    import derivanim.api  # noqa: F401  (before the first request, not during it)

    store = JobStore(data)

    def loop():
        while True:
            job = store.next_to_fill()
            if job is None:
                time.sleep(POLL_SECONDS)
            else:
                fill_job(store, job)

    _quietly_stoppable(loop)


def fill_job(store: JobStore, job: Job) -> None:
    """Verify the job's slots and write its scene; a request derivanim cannot use fails with the CLI's message."""
    from derivanim.api import fill
    from derivanim.render import render_key

    options = job.options
    window = None if options.get("x_min") is None else (options["x_min"], options["x_max"])
    try:
        animation = fill(job.request, filler=options["filler"], x0=options.get("x0"), window=window)
    except DerivanimError as error:
        store.failed(job.id, str(error), error.exit_code)
        return
    except Exception as error:  # a bug of ours: still one line on the page, not a traceback
        store.failed(job.id, f"{type(error).__name__}: {error}", 1)
        return
    plan = animation.plan
    shown = {**animation.to_dict(), "name": plan.name, "variable": plan.variable, "f_latex": plan.f_latex,
             "derivation": [{"rule": line.rule, "latex": line.latex, "note": line.note}
                            for page in plan.derivation_pages for line in page]}
    store.filled(job, shown, animation.slots.function, animation.code,
                 render_key(animation.code, options["quality"], options["format"]))


# --- the render workers --------------------------------------------------------------------------------------------

def render_forever(data: str, render_seconds: float) -> None:
    store = JobStore(data)

    def loop():
        while True:
            job = store.claim()
            if job is None:
                time.sleep(POLL_SECONDS)
            else:
                render_job(store, job, render_seconds)

    _quietly_stoppable(loop)


def render_job(store: JobStore, job: Job, render_seconds: float) -> None:
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
            share = 1.0 if fmt == "mp4" else QUALITY_SHARE_OF_RENDER
            phase = f"phase {progress.phase_number} of {progress.phases}: {progress.phase}" if progress.phase else ""
            overall = share * progress.fraction
        else:
            phase, overall = progress.step, QUALITY_SHARE_OF_RENDER + (1 - QUALITY_SHARE_OF_RENDER) * progress.fraction
        if store.progress(job.id, phase, overall, progress.seconds_left) == "cancelling":
            raise _Cancelled

    try:
        outputs = write_animation(job.code, folder, slug(job.function), quality=job.options["quality"], fmt=fmt,
                                  on_progress=on_progress, timeout=render_seconds)
    except _Cancelled:
        shutil.rmtree(folder, ignore_errors=True)
        store.cancelled(job.id)
    except DerivanimError as error:
        store.failed(job.id, str(error), error.exit_code)
    except Exception as error:
        store.failed(job.id, f"{type(error).__name__}: {error}", 1)
    else:
        relative = lambda path: path and str(path.relative_to(store.data))  # noqa: E731
        store.done(job.id, relative(outputs.video), relative(outputs.scene), relative(outputs.subtitles))
