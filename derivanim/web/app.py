"""The ASGI app of `derivanim serve` (FastAPI): the page, its static files, and the JSON API the page uses.

FastAPI because the API is declared once as pydantic models (the project's one schema library) that both validate
requests and document them, and it runs on uvicorn, a well-kept ASGI server; the work itself happens in worker
processes (derivanim.web.workers), so the event loop only reads and writes the job store.
"""

import asyncio
import math
import shlex
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, field_validator

from derivanim.errors import InvalidInput
from derivanim.web.store import Job, JobStore, QueueFull
from derivanim.web.workers import start_workers, stop_workers

HERE = Path(__file__).resolve().parent
QUALITIES = {"l": "480p", "m": "720p", "h": "1080p"}
FORMATS = ("mp4", "gif")
EXAMPLES = ("sin(x^2)", "Teach the product rule with x*sin(x)", "g(t) = t^3 - 2t on [-2, 2]")
FILL_WAIT_SECONDS = 5.0  # POST waits this long for the slots, so that a request derivanim cannot use is a 422


@dataclass(frozen=True)
class Limits:
    max_request: int = 500  # characters
    max_queue: int = 20  # jobs waiting or rendering at once; more is a 429
    render_seconds: float = 600.0  # one render's time limit
    retry_after: int = 30  # seconds a 429 asks the client to wait


class AnimationRequest(BaseModel):
    """POST /api/animations: a function or a request in words, and how to render it."""

    request: str
    quality: Literal["l", "m", "h"] = "l"
    format: Literal["mp4", "gif"] = "mp4"
    filler: Literal["auto", "rules", "model"] = "auto"
    x_min: float | None = None
    x_max: float | None = None
    x0: float | None = None

    @field_validator("x_min", "x_max", "x0")
    @classmethod
    def finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class _Refused(Exception):
    """An answer other than 2xx, with its one-line message."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


def create_app(data: Path | str, renderers: int = 1, limits: Limits = Limits(), workers: bool = True,
               jobs: int = 1) -> FastAPI:
    """The app on the data folder `data`, with `renderers` render workers each rendering a video in `jobs` Manim
    processes; `workers=False` starts no worker processes (tests that fill the store themselves)."""
    store = JobStore(data)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.recovered = store.recover()
        processes = await asyncio.to_thread(start_workers, store.data, renderers, limits.render_seconds, jobs=jobs) \
            if workers else []
        app.state.processes = processes
        try:
            yield
        finally:
            await asyncio.to_thread(stop_workers, processes)

    app = FastAPI(title="derivanim", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.store = store
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    pages = Jinja2Templates(directory=HERE / "templates")  # autoescapes every value

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"] if part != "body")
        return _error(422, f"{where}: {problem['msg']}" if where else problem["msg"])

    @app.exception_handler(_Refused)
    async def refused(request: Request, error: _Refused) -> JSONResponse:
        return _error(error.status, str(error), error.headers)

    @app.get("/")
    async def page(request: Request):
        return pages.TemplateResponse(request, "index.html", {"examples": EXAMPLES, "qualities": QUALITIES,
                                                              "formats": FORMATS, "limits": limits})

    @app.post("/api/animations", status_code=202)
    async def create(body: AnimationRequest):
        text = body.request.strip()
        if not text:
            raise _Refused(422, "request: type a function such as sin(x^2), or a request in words")
        if len(text) > limits.max_request:
            raise _Refused(422, f"request: at most {limits.max_request} characters, not {len(text)}")
        if (body.x_min is None) != (body.x_max is None):
            raise _Refused(422, "the window needs both ends, x_min and x_max")
        options = body.model_dump(exclude={"request"})
        try:
            job_id = store.add(text, options, limits.max_queue)
        except QueueFull as full:
            raise _Refused(429, f"the queue is full ({full}); try again in a minute",
                           {"Retry-After": str(limits.retry_after)}) from None
        job = await _filled(store, job_id)
        if job.status == "failed" and job.exit_code == InvalidInput.exit_code:  # the input: shown by it, not queued
            store.delete(job_id)
            raise _Refused(422, job.error)
        url = f"/api/animations/{job_id}"
        return JSONResponse({"id": job_id, "status_url": url, **described(job)}, status_code=202,
                            headers={"Location": url})

    @app.get("/api/animations")
    async def gallery(query: str = "", limit: int = Query(50, ge=1, le=500)):
        return {"animations": [described(job) for job in store.gallery(query.strip(), limit)]}

    @app.get("/api/animations/{job_id}")
    async def status(job_id: str):
        return described(_job(store, job_id))

    @app.delete("/api/animations/{job_id}")
    async def cancel(job_id: str):
        status = store.cancel(job_id)
        if status is None:
            raise _Refused(404, f"no animation {job_id}")
        return {"id": job_id, "status": status}

    @app.get("/api/animations/{job_id}/{kind}")
    async def download(job_id: str, kind: Literal["video", "scene", "subtitles"]):
        job = _job(store, job_id)
        relative = getattr(job, kind)
        path = None if relative is None else (store.data / relative).resolve()
        if path is None or not path.is_relative_to(store.data) or not path.is_file():
            raise _Refused(404, f"animation {job_id} has no {kind} (yet)")
        return FileResponse(path, filename=f"{Path(relative).stem}{path.suffix}",
                            content_disposition_type="inline" if kind == "video" else "attachment")

    return app


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _job(store: JobStore, job_id: str) -> Job:
    job = store.get(job_id)
    if job is None:
        raise _Refused(404, f"no animation {job_id}")
    return job


async def _filled(store: JobStore, job_id: str) -> Job:
    """The job once its slots are filled (or failed), or as it stands after FILL_WAIT_SECONDS."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FILL_WAIT_SECONDS
    while True:
        job = store.get(job_id)
        if job.status != "filling" or loop.time() > deadline:
            return job
        await asyncio.sleep(0.03)


def described(job: Job) -> dict:
    """GET /api/animations/{id}: where the job stands and, once its slots are verified, what the page shows."""
    animation = job.animation or {}
    url = f"/api/animations/{job.id}"
    return {
        "id": job.id,
        "request": job.request,
        **job.options,
        "status": "queued" if job.status == "filling" else job.status,
        "phase": job.phase,
        "progress": job.progress,
        "seconds_left": job.seconds_left,
        "slots": animation.get("slots"),
        "filled_by": animation.get("filler"),  # who decided the slots: rules or model ("filler" is what was asked)
        "name": animation.get("name"),
        "variable": animation.get("variable"),
        "f_latex": animation.get("f_latex"),
        "derivative": animation.get("derivative"),
        "derivative_latex": animation.get("derivative_latex"),
        "derivation": animation.get("derivation"),
        "repairs": animation.get("repairs"),
        "cautions": animation.get("cautions"),
        "from_gallery": job.from_gallery,
        "video_url": job.video and f"{url}/video",
        "scene_url": job.scene and f"{url}/scene",
        "subtitles_url": job.subtitles and f"{url}/subtitles",
        "command": make_command(job),
        "error": job.error,
        "created": job.created,
        "render_seconds": None if job.status != "done" or job.from_gallery or job.started is None
        else round(job.finished - job.started, 1),
    }


def make_command(job: Job) -> str:
    """The `derivanim make` command that makes the same animation."""
    options = job.options
    words = ["derivanim", "make", job.request, "--quality", options["quality"], "--format", options["format"]]
    if options["filler"] != "auto":
        words += ["--filler", options["filler"]]
    if options.get("x0") is not None:
        words += ["--x0", f"{options['x0']:g}"]
    if options.get("x_min") is not None:
        words += ["--window", f"{options['x_min']:g}", f"{options['x_max']:g}"]
    return shlex.join(words)
