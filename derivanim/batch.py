"""`derivanim batch`: many requests into one folder of scenes, videos and a manifest.

A requests file has one request a line (a function, a phrasing, a sentence) or, on a line that starts with '{', a
JSON object with the request and its own options:
    {"request": "sin(x^2)", "x0": 1, "window": [-3, 3], "quality": "h", "format": "gif", "name": "chain"}
Blank lines and lines that start with '#' are skipped.

Every line is filled first, here (cheap; the model filler loads once), then the scenes are rendered in parallel by
derivanim.execute: a local pool of worker processes, or Ray tasks on a cluster. `manifest.jsonl` in the folder gets
one record a line as each line is settled (request, slots, derivative, repairs, cautions, files, seconds, status,
error), each line written whole; at the end it is rewritten in the order of the requests file.

Resuming: a render is content-addressed (render.render_key: the scene's code and render options), so a rerun skips
every line whose video the manifest already lists under the same key; renders are atomic (execute), so Ctrl-C
leaves whole videos or none. A line that cannot be read, filled or rendered is a failed record; the rest go on.
"""

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from derivanim.api import Animation, Filler, fill
from derivanim.errors import DerivanimError, InvalidInput
from derivanim.execute import FORMATS, QUALITIES, Job, RayCluster, Result, run_jobs
from derivanim.render import render_key, slug, write_atomically

MANIFEST = "manifest.jsonl"


class LineOptions(BaseModel):
    """One line of a requests file: the request and the options it sets for itself (else the batch's)."""

    model_config = ConfigDict(extra="forbid")

    request: str
    filler: Literal["auto", "rules", "model"] | None = None
    x0: float | None = None
    window: tuple[float, float] | None = None
    quality: Literal[tuple(QUALITIES)] | None = None
    format: Literal[FORMATS] | None = None
    name: str | None = None  # the files' name (made safe by render.slug); default: from the function


@dataclass(frozen=True)
class BatchOptions:
    """What a batch needs besides its requests; a line's own options win over these."""

    output: Path | str = "batch"
    filler: Filler = "auto"
    adapter: Path | str | None = None
    quality: str = "m"
    fmt: str = "mp4"
    jobs: int = 1  # Manim processes per scene (ranges of its animations)
    workers: int | None = None  # scenes at once on this machine; None: the cores / jobs
    timeout: float | None = None  # seconds a scene may render
    cluster: RayCluster | None = None  # render on Ray instead of this machine's pool


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch stands: `stage` 'filling' (lines read and filled) or 'rendering' (lines settled: done, failed,
    or skipped as already made), and the time left at the rate of the renders so far."""

    stage: Literal["filling", "rendering"]
    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds_left: float | None = None

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed


@dataclass
class BatchResult:
    """The batch's records (as in the manifest, in the order of the requests file) and the manifest's path."""

    manifest: Path
    records: list[dict]
    skipped: int

    @property
    def failed(self) -> list[dict]:
        return [record for record in self.records if record["status"] == "failed"]


@dataclass
class _Line:
    """A line of the requests file on its way: its options, then its animation, key and file stem."""

    number: int
    text: str
    options: LineOptions | None = None
    animation: Animation | None = None
    error: str | None = None
    quality: str = "m"
    fmt: str = "mp4"
    key: str | None = None
    stem: str | None = None
    record: dict = field(default_factory=dict)


def read_requests(path: Path | str) -> list[_Line]:
    """The requests file's lines, each with its options or why they cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read the requests file {path}: {getattr(error, 'strerror', None) or error}") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        line = _Line(number, stripped)
        try:
            line.options = LineOptions.model_validate_json(stripped) if stripped.startswith("{") \
                else LineOptions(request=stripped)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(map(str, problem["loc"]))
            line.error = f"{problem['msg']}" + (f" ({where})" if where else "")
        lines.append(line)
    return lines


def run_batch(requests: Path | str, options: BatchOptions = BatchOptions(),
              on_progress: Callable[[BatchProgress, dict | None], None] | None = None) -> BatchResult:
    """Fill and render every line of the requests file into `options.output`; `on_progress(progress, record)`
    hears each line settled (record None while filling). Returns the records; failures are records, not errors."""
    report = on_progress or (lambda progress, record: None)
    folder = Path(options.output).resolve()  # absolute: Ray tasks and Manim run elsewhere
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    earlier = {record["key"]: record for record in _read_manifest(manifest)
               if record["status"] == "ok" and (folder / record["video"]).is_file()}
    lines = read_requests(requests)
    for number, line in enumerate(lines):
        _fill(line, options)
        report(BatchProgress("filling", len(lines), done=number + 1), None)
    _name(lines, earlier)
    settled: list[dict] = []

    def settle(line: _Line, record: dict) -> None:
        line.record = {"line": line.number, "request": line.options.request if line.options else line.text, **record}
        settled.append(line.record)

    todo: dict[str, list[_Line]] = {}  # the lines to render, by key: the same scene is rendered once
    for line in lines:
        if line.error is not None:
            settle(line, _record(line, status="failed", error=line.error))
        elif line.key in earlier:
            settle(line, {key: value for key, value in earlier[line.key].items() if key not in ("line", "request")})
        else:
            todo.setdefault(line.key, []).append(line)
    _write_manifest(manifest, settled)  # what is settled before rendering, in one go: the earlier records stay
    skipped = sum(line.key in earlier and line.error is None for line in lines)
    tally = _Tally(len(lines), settled, skipped)
    for record in settled:
        if record["status"] == "failed":
            report(tally.progress(), record)
    report(tally.progress(), None)
    heads = [group[0] for group in todo.values()]
    jobs = [Job(head.animation.code, mode="render", quality=head.quality, fmt=head.fmt, timeout=options.timeout,
                output=folder / f"{head.stem}.{head.fmt}", jobs=options.jobs) for head in heads]
    workers = options.workers or max(1, (os.cpu_count() or 1) // options.jobs)
    for result in run_jobs(jobs, workers=workers, cluster=options.cluster):
        head = heads[result.index]
        if result.ok:
            write_atomically(folder / f"{head.stem}.py", head.animation.code)
        for line in todo[head.key]:
            settle(line, _rendered(line, result, folder))
            _append(manifest, line.record)
            report(tally.progress(), line.record)
    records = sorted(settled, key=lambda record: record["line"])
    _write_manifest(manifest, records)
    return BatchResult(manifest, records, skipped)


def _fill(line: _Line, options: BatchOptions) -> None:
    """The line's animation, key and render options, or why it has none."""
    if line.error is not None:
        return
    given = line.options
    line.quality, line.fmt = given.quality or options.quality, given.format or options.fmt
    try:
        line.animation = fill(given.request, filler=given.filler or options.filler, adapter=options.adapter,
                              x0=given.x0, window=given.window)
    except DerivanimError as error:
        line.error = str(error)
    except Exception as error:  # a fault on one line is that line's failure, not the batch's end
        line.error = f"{type(error).__name__}: {error}"
    else:
        line.key = render_key(line.animation.code, line.quality, line.fmt)


def _name(lines: list[_Line], earlier: dict[str, dict]) -> None:
    """Each scene's file stem: the one it had when made before, else its name or the function's, made unique (a
    second scene that would take a name gets '_2', ...). Lines with the same scene share it."""
    stems = {key: Path(record["video"]).stem for key, record in earlier.items()}
    taken = set(stems.values())
    for line in lines:
        if line.key is None or line.key in stems:
            line.stem = stems.get(line.key)
            continue
        wanted = slug(line.options.name) if line.options.name else line.animation.stem
        stem, count = wanted, 1
        while stem in taken:
            count += 1
            stem = f"{wanted}_{count}"
        stems[line.key], line.stem = stem, stem
        taken.add(stem)


def _record(line: _Line, status: str, error: str | None = None, files: dict | None = None,
            seconds: float | None = None) -> dict:
    """A manifest record: what the line asked, what was filled, and what became of it (paths in the folder)."""
    made = line.animation.to_dict() if line.animation else {}
    return {"status": status, "error": error, "filler": made.get("filler"), "slots": made.get("slots"),
            "derivative": made.get("derivative"), "repairs": made.get("repairs", []),
            "cautions": made.get("cautions", []), "quality": line.quality, "format": line.fmt, "key": line.key,
            **(files or {"scene": None, "video": None, "subtitles": None, "log": None}),
            "seconds": None if seconds is None else round(seconds, 1)}


def _rendered(line: _Line, result: Result, folder: Path) -> dict:
    def named(path: Path | None) -> str | None:
        return None if path is None else str(Path(path).relative_to(folder))

    files = {"scene": f"{line.stem}.py" if result.ok else None, "video": named(result.video),
             "subtitles": named(result.subtitles), "log": named(result.log)}
    return _record(line, "ok" if result.ok else "failed", result.error, files, result.seconds)


class _Tally:
    """Counts of the settled records, and the time left at the rate of the renders so far."""

    def __init__(self, total: int, settled: list[dict], skipped: int):
        self.total, self.settled, self.skipped = total, settled, skipped
        self.before, self.started = len(settled), time.monotonic()

    def progress(self) -> BatchProgress:
        failed = sum(record["status"] == "failed" for record in self.settled)
        rendered, left = len(self.settled) - self.before, self.total - len(self.settled)
        rate = (time.monotonic() - self.started) / rendered if rendered else None
        return BatchProgress("rendering", self.total, done=len(self.settled) - failed, failed=failed,
                             skipped=self.skipped, seconds_left=None if rate is None else rate * left)


def _read_manifest(path: Path) -> list[dict]:
    """The records of an earlier run; a line cut short (the run was killed while writing it) is left out."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _write_manifest(path: Path, records: list[dict]) -> None:
    write_atomically(path, "".join(json.dumps(record) + "\n" for record in records))


def _append(path: Path, record: dict) -> None:
    """One record added to the manifest with one write, on disk before the next."""
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
