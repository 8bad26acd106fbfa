"""The one place where scenes run: Manim in worker processes, for a dry run or a render, with one policy for a scene
that crashes or hangs.

A `Job` is one scene: its code and class, the mode ('dry-run': construct() with animations skipped, recorded by
derivanim.dryrun; 'render': a video) and, for a render, the quality, format and the video's path. `run_jobs` runs
jobs in worker processes, `workers` at a time, and yields each job's `Result` as it finishes. Dry runs share a
worker, up to DRY_RUN_BATCH of them, so that Manim is imported and LaTeX typeset once for all; a render has a worker
of its own, or `Job.jobs` of them: one video on several cores, each worker rendering a contiguous range of the
animations, split by their measured cost, the pieces joined into the video one worker would have made (_Run._in_ranges).

The policy, whoever asks: a scene that crashes or hangs fails alone, and the rest go on. Each scene's time limit
counts from its own start (a batch's shared start-up is not charged to its first scene); past it, the worker is
stopped with everything it started (LaTeX, dvisvgm) and the scene fails. When a worker dies in the middle of a batch,
the scenes it had not finished run again, one per worker, so that only the culprit fails. A failure is a Result whose
`error` says why in one line.

A render is atomic: Manim writes into a private work folder beside the destination and only the finished video (and
subtitles) are moved into place, so a failure, a full disk or Ctrl-C never leaves a half-written file; a failed
render's log is kept beside where its video would have gone.

The worker is `serve` in a fresh Python (WORKER, given a file descriptor FD): it reads its tasks (JSON) on stdin and writes events,
one JSON object a line, to the file descriptor FD; everything else it prints (Manim's output) is its log. It dies with
the process that started it, so that a killed caller (or Ray task) leaves no render running.

On a Ray cluster (`run_jobs(..., cluster=RayCluster(...))`, Ray being the optional extra `derivanim[ray]`) the same
groups run as Ray tasks, one per render (with the CPUs its `jobs` need) or per batch of dry runs, each task running
them on its node with this very policy; see _on_ray.
"""

import itertools
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from queue import SimpleQueue
from typing import Literal, TypeVar

import av

from derivanim.dryrun import blank_report, inspect_scene
from derivanim.errors import ClusterUnavailable
from derivanim.lessons import DERIVATIVE
from derivanim.video import convert_video, join_videos, subtitles_in_turn

MODES = ("dry-run", "render")
QUALITIES = {"l": "low_quality", "m": "medium_quality", "h": "high_quality", "k": "fourk_quality"}
FORMATS = ("mp4", "gif", "webm")
ENCODE_SAMPLE = 16  # frames the measuring pass of a render in ranges encodes to time the encoder
DRY_RUN_BATCH = 20  # dry runs per worker: Manim's import and the LaTeX cache are shared
OUTSIDE_SCENE_SECONDS = 120.0  # a worker may take this long outside a scene: starting, between scenes, exiting
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
WORK, RAY_TASK = ".render", "derivanim-ray"  # the kinds of temporary folder a render makes (_owned_prefix)
WORKER = "import sys; from derivanim.execute import serve; serve(*map(int, sys.argv[1:]))"  # not -m: derivanim imports execute
RAY_RETRIES = 1  # a Ray task that fails (its worker killed, its node lost) runs once more before its jobs fail

Key = TypeVar("Key")


@dataclass(frozen=True)
class Job:
    """One scene to run. `timeout`: the seconds it may run from its own start (None: no limit). A render needs
    `output`, the video's path (`<stem>.<fmt>`); its subtitles go beside it as `<stem>.srt`, and a failed render's log
    as `<stem>.render.log`. With `jobs` > 1 a render is split into that many ranges of animations, rendered at once
    and joined (see _Run._in_ranges); `timeout` then holds for each of its workers."""

    code: str
    mode: Literal["dry-run", "render"] = "dry-run"
    scene: str = DERIVATIVE.scene_class  # the class to run; by default the derivative lesson's
    quality: str = "m"
    fmt: str = "mp4"
    timeout: float | None = None
    output: Path | None = None
    jobs: int = 1  # a render's Manim processes at once, each rendering a range of its animations

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.quality not in QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(QUALITIES)}")
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        if self.jobs < 1:
            raise ValueError("a render needs at least one job")
        if self.mode == "render" and (self.output is None or Path(self.output).suffix != f".{self.fmt}"):
            raise ValueError(f"a render needs the path of its video, a .{self.fmt} file")


@dataclass(frozen=True)
class Result:
    """What became of a job. `error` is None if the scene ran to its end, else why not in one line (its own error,
    Manim's, a time limit, a worker that died). A dry run always has a `report` (derivanim.dryrun's; only the error
    where the scene never finished); a finished render has its `video` and `subtitles` (where the scene has any), a
    failed one its `log`."""

    index: int  # the job's place among those given to run_jobs
    job: Job
    error: str | None = None
    report: dict | None = None
    video: Path | None = None
    subtitles: Path | None = None
    log: Path | None = None
    seconds: float | None = None  # wall time from the scene's start to its end; None if it never ended
    cpu_seconds: float | None = None  # the worker's CPU time for the scene, with the LaTeX it ran

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class RenderProgress:
    """Where a render stands: the step ('rendering', then 'converting to GIF' or 'converting to WebM'), the scene
    section being rendered (a phase; '' where the scene has none), animations done of all, and the time left."""

    step: str
    phase: str
    phase_number: int
    phases: int
    animations_done: int
    animations: int
    fraction: float  # of this step, by video time
    seconds_left: float | None  # None until there is a rate to go by


# --- running jobs -------------------------------------------------------------------------------------------------

def run_jobs(jobs: Iterable[Job], workers: int = 1,
             on_progress: Callable[[int, RenderProgress], None] | None = None,
             cluster: "RayCluster | None" = None) -> Iterator[Result]:
    """Run the jobs, `workers` worker processes at a time; yields each job's Result as it finishes (its `index`
    says which job). `on_progress(index, progress)` hears how each render stands; without it a render skips the
    pass that counts its animations. Leaving early (an error, Ctrl-C, the loop left) stops every worker and removes
    their work folders before it goes on. With a `cluster` the jobs run as Ray tasks instead (`workers` and
    `on_progress` are then the cluster's business: Ray schedules by CPUs, and a task reports only its end)."""
    jobs = list(jobs)
    if cluster is not None:
        yield from _on_ray(jobs, cluster)
        return
    run = _Run(on_progress)
    groups = _groups(jobs, max(1, workers))
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(groups))))
    try:
        for group in groups:
            pool.submit(run.group, group)
        for _ in jobs:
            outcome = run.results.get()
            if isinstance(outcome, BaseException):
                raise outcome
            yield outcome
    finally:
        run.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def dry_run_reports(codes: Mapping[Key, str], timeout: float | None, workers: int = 1,
                    scene: str = DERIVATIVE.scene_class, cluster: "RayCluster | None" = None
                    ) -> Iterator[tuple[Key, dict]]:
    """Dry-run each scene (locally, or on a Ray `cluster`); yields (key, report) as each finishes."""
    keys = list(codes)
    for result in run_jobs([Job(codes[key], scene=scene, timeout=timeout) for key in keys], workers,
                           cluster=cluster):
        yield keys[result.index], result.report


def _groups(jobs: list[Job], workers: int) -> list[list[tuple[int, Job]]]:
    """Dry runs in batches (no larger than it takes to keep every worker busy), each render alone."""
    dry = [(index, job) for index, job in enumerate(jobs) if job.mode == "dry-run"]
    size = max(1, min(DRY_RUN_BATCH, math.ceil(len(dry) / workers)))
    return ([dry[start:start + size] for start in range(0, len(dry), size)]
            + [[(index, job)] for index, job in enumerate(jobs) if job.mode == "render"])


class _Cancelled(Exception):
    """run_jobs ended early: no worker may start."""


@dataclass
class _Exit:
    """How a worker ended: what each task it finished reported, by the task's number; the task that ran past its
    time limit (None if none did); why it stopped, where it stopped before its last task finished; and a failed
    render's log, kept."""

    finished: dict[int, dict]
    timed_out: int | None
    reason: str | None
    log: Path | None = None


class _Run:
    """The worker processes of one run_jobs call: each group of jobs in its thread, one worker at a time, results
    into one queue; all stopped at once when the call ends early."""

    def __init__(self, on_progress: Callable[[int, RenderProgress], None] | None):
        self.on_progress = on_progress
        self.results: SimpleQueue = SimpleQueue()
        self.lock = threading.Lock()
        self.live: set[subprocess.Popen] = set()
        self.cancelled = False

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            for process in self.live:
                _stop(process)

    def group(self, group: list[tuple[int, Job]]) -> None:
        try:
            self._isolated(group)
        except _Cancelled:
            pass
        except BaseException as error:  # a fault of ours, or of a progress callback: the caller's to see
            self.results.put(error)

    def _isolated(self, group: list[tuple[int, Job]]) -> None:
        """The policy: run the group in one worker; a scene past its limit fails, and when the worker died before
        the end, the scenes it left run again one per worker (alone, a death is the scene's own)."""
        if group[0][1].mode == "render":
            finished, ended = self._render(*group[0])
        else:
            finished, ended = self._dry_runs(group)
        for result in finished:
            self.results.put(result)
        done = {result.index for result in finished}
        left = [(number, index, job) for number, (index, job) in enumerate(group) if index not in done]
        for number, index, job in left:
            if number == ended.timed_out:
                self.results.put(self._failed(index, job, f"Manim did not finish within {job.timeout:g} s", ended))
            elif len(group) == 1:
                self.results.put(self._failed(index, job, f"Manim failed: {ended.reason}", ended))
            else:
                self._isolated([(index, job)])

    def _failed(self, index: int, job: Job, error: str, ended: _Exit) -> Result:
        return Result(index, job, error=error, report=blank_report(error=error) if job.mode == "dry-run" else None,
                      log=ended.log)

    def _dry_runs(self, group: list[tuple[int, Job]]) -> tuple[list[Result], _Exit]:
        scratch = Path(tempfile.mkdtemp(prefix="derivanim-dryrun-"))
        try:
            tasks = []
            for number, (_, job) in enumerate(group):
                path = scratch / f"scene_{number:03d}.py"
                path.write_text(job.code, encoding="utf-8")
                tasks.append({"mode": "dry-run", "file": str(path), "scene": job.scene})
            ended = self._worker(tasks, [job.timeout for _, job in group], scratch / "worker.log", scratch, None)
            finished = [Result(group[number][0], group[number][1], error=outcome["report"]["error"],
                               report=outcome["report"], seconds=outcome["seconds"],
                               cpu_seconds=outcome["cpu_seconds"])
                        for number, outcome in ended.finished.items()]
            return finished, ended
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _render(self, index: int, job: Job) -> tuple[list[Result], _Exit]:
        target = Path(job.output)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Absolute paths, because Manim runs inside the work folder; the log stays there too until a failure
        # needs it, so renders into the same folder never share (or delete) each other's log.
        _remove_abandoned(target.parent, WORK)
        work = Path(tempfile.mkdtemp(dir=target.parent, prefix=_owned_prefix(WORK, os.getpid()))).resolve()
        try:
            scene_file = work / f"{target.stem}.py"
            scene_file.write_text(job.code, encoding="utf-8")
            report = None if self.on_progress is None else (lambda progress: self.on_progress(index, progress))
            tracker = _Tracker(report)
            if job.jobs > 1:
                outcome, ended, log = self._in_ranges(job, work, scene_file, target, tracker)
            else:
                task = {"mode": "render", "file": str(scene_file), "scene": job.scene, "media_dir": str(work / "media"),
                        "quality": QUALITIES[job.quality], "count": self.on_progress is not None,
                        "convert_to": str(work / target.name) if job.fmt != "mp4" else None}
                log = work / "manim.log"
                ended = self._worker([task], [job.timeout], log, work, tracker.handle)
                outcome = ended.finished.get(0)
            if outcome is None:  # the policy's to report, with the log
                ended.log = _keep_log(log, target)
                return [], ended
            error = outcome["error"]
            if error is None:
                subtitles = Path(outcome["subtitles"]) if outcome["subtitles"] else None
                try:
                    _publish(Path(outcome["video"]), target, subtitles)
                except OSError as problem:  # a full disk or a read-only folder: say so, with the (complete) log
                    error = f"could not write {target}: {problem.strerror or problem}"
                else:
                    return [Result(index, job, video=target,
                                   subtitles=target.with_suffix(".srt") if subtitles else None,
                                   seconds=outcome["seconds"], cpu_seconds=outcome["cpu_seconds"])], ended
            return [Result(index, job, error=error, log=_keep_log(log, target),
                           seconds=outcome["seconds"], cpu_seconds=outcome["cpu_seconds"])], ended
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _in_ranges(self, job: Job, work: Path, scene_file: Path, target: Path,
                   tracker: "_Tracker") -> tuple[dict | None, _Exit, Path]:
        """A render in `job.jobs` Manim processes at once. The first worker measures every animation (_measured),
        splits the animations into contiguous ranges of about equal cost (balanced_ranges), says so, and renders
        the first range; on hearing the ranges, a worker starts for each of the others. Each runs construct() from
        the start and skips the animations before its range as a render would have played them (_stepping), so
        that it starts from the state a one-process render has there. The range videos are joined without
        re-encoding (join_videos); the subtitles are the last range's (its worker ran all of construct()).
        Returns the outcome as a one-process render reports it (None where a worker stopped), how the worker that
        says so ended, and the log that tells why."""
        started = time.monotonic()
        lock = threading.Lock()
        base = {"mode": "render", "file": str(scene_file), "scene": job.scene, "quality": QUALITIES[job.quality],
                "tex_dir": str(work / "Tex"), "count": False, "convert_to": None}
        logs = [work / f"manim-{number}.log" for number in range(job.jobs)]
        others = []
        with ThreadPoolExecutor(max_workers=job.jobs) as pool:
            def handle(event: dict) -> None:  # events from several workers at once
                if event["event"] != "ranges":
                    with lock:
                        tracker.handle(event)
                    return
                ranges = event["ranges"]
                for number, (first, last) in enumerate(ranges[1:], 1):
                    task = {**base, "media_dir": str(work / f"range-{number}"),
                            "range": [first, last if number < len(ranges) - 1 else -1]}  # the last runs to the end
                    others.append(pool.submit(self._worker, [task], [job.timeout], logs[number], work, handle))

            first = self._worker([{**base, "media_dir": str(work / "range-0"), "parts": job.jobs}], [job.timeout],
                                 logs[0], work, handle)
            exits = [first, *(other.result() for other in others)]
        cpu_seconds = 0.0
        for ended, log in zip(exits, logs):
            outcome = ended.finished.get(0)
            if outcome is None or outcome["error"] is not None:
                return outcome, ended, log
            cpu_seconds += outcome["cpu_seconds"]
        outcome = {"error": None, "subtitles": outcome["subtitles"], "cpu_seconds": round(cpu_seconds, 3)}
        try:
            video = join_videos([Path(ended.finished[0]["video"]) for ended in exits], work / "joined.mp4")
            if job.fmt != "mp4":
                video = _converted(video, work / target.name, lambda **fields: tracker.handle(fields))
        except av.FFmpegError as error:
            outcome["error"] = f"joining the ranges into one video failed: {error}"
        else:
            outcome["video"] = str(video)
        return {**outcome, "seconds": time.monotonic() - started}, ended, log

    def _worker(self, tasks: list[dict], timeouts: list[float | None], log_path: Path, cwd: Path,
                on_event: Callable[[dict], None] | None) -> _Exit:
        """Run the tasks in one worker process and collect what each reports; stops it when a task (or the time
        outside tasks) runs past its limit, or when the caller goes."""
        # The worker imports this very derivanim, installed or not; its temporary files (Manim's media, LaTeX's)
        # go into its own folder, which goes with it even when it is killed.
        env = {**os.environ, "TMPDIR": str(cwd),
               "PYTHONPATH": os.pathsep.join(filter(None, (PACKAGE_ROOT, os.environ.get("PYTHONPATH"))))}
        read_end, write_end = os.pipe()
        try:
            with self.lock, open(log_path, "w") as log:
                if self.cancelled:
                    raise _Cancelled
                # Its own process group, so that stopping it stops the LaTeX and dvisvgm it runs as well.
                process = subprocess.Popen([sys.executable, "-c", WORKER, str(write_end), str(os.getpid())],
                                           stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                           env=env, pass_fds=(write_end,), start_new_session=True, text=True)
                self.live.add(process)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        watchdog = _Watchdog(process)
        finished: dict[int, dict] = {}
        started: dict[int, float] = {}
        try:
            watchdog.arm(None, OUTSIDE_SCENE_SECONDS)
            try:
                process.stdin.write(json.dumps(tasks))
                process.stdin.close()
            except BrokenPipeError:  # it died at once: the log says why
                pass
            with os.fdopen(read_end) as events:
                for line in events:
                    if not line.endswith("\n"):  # cut short: the worker was killed while writing it
                        break
                    event = json.loads(line)
                    if event["event"] == "start":
                        started[event["task"]] = time.monotonic()
                        watchdog.arm(event["task"], timeouts[event["task"]])
                    elif event["event"] == "finished":
                        watchdog.arm(None, OUTSIDE_SCENE_SECONDS)
                        finished[event["task"]] = {**event, "seconds": time.monotonic() - started[event["task"]]}
                    elif on_event is not None:
                        on_event(event)
            code = process.wait()
            reason = None if len(finished) == len(tasks) else (
                f"the worker stopped after {OUTSIDE_SCENE_SECONDS:g} s outside any scene (starting or ending)"
                if watchdog.expired and watchdog.timed_out is None else _failure(code, log_path))
        except BaseException:
            _stop(process)
            process.wait()
            raise
        finally:
            watchdog.arm(None, None)
            with self.lock:
                self.live.discard(process)
        if self.cancelled:  # stopped because the caller went: nothing to report, no log to keep
            raise _Cancelled
        return _Exit(finished, watchdog.timed_out, reason)


class _Watchdog:
    """Stops a worker when what it does now (a task, or the time outside tasks) runs past its limit, and remembers
    the task that did."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None
        self.expired = False
        self.timed_out: int | None = None

    def arm(self, task: int | None, seconds: float | None) -> None:
        """From now on, allow `task` (None: the time outside tasks) `seconds` (None: no limit)."""
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = None
            if seconds is not None:
                self.timer = threading.Timer(seconds, self._expire, (task,))
                self.timer.args += (self.timer,)
                self.timer.daemon = True
                self.timer.start()

    def _expire(self, task: int | None, timer: threading.Timer) -> None:
        with self.lock:
            if timer is not self.timer:  # re-armed in the meantime
                return
            self.expired, self.timed_out = True, task
        _stop(self.process)


def _owned_prefix(kind: str, pid: int | str) -> str:
    """The start of the name of a temporary folder a process makes (tempfile adds the rest): its kind, this host and
    the process, so that another process can tell when it was abandoned (_remove_abandoned)."""
    return f"{kind}-{platform.node()}-{pid}-"


def _remove_abandoned(folder: Path, kind: str) -> None:
    """Remove the folders of `kind` in `folder` whose process, on this host, is gone without removing them: a render
    killed outright (SIGKILL, a Ray task killed mid-render) cannot clean up after itself; the next one there does.
    Other hosts' folders (a folder all nodes share) and live processes' are left alone."""
    for abandoned in folder.glob(f"{_owned_prefix(kind, '*')}*"):
        pid = abandoned.name.removeprefix(f"{kind}-{platform.node()}-").split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(abandoned, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _stop(process: subprocess.Popen) -> None:
    """Kill a worker and everything it started (its process group)."""
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _failure(code: int, log_path: Path) -> str:
    """Why a worker stopped before its scene ended, where it could not say so itself: killed (by the system, e.g.
    out of memory), or the last error line of its log."""
    if code < 0:
        return f"the worker was killed by signal {signal.Signals(-code).name} (out of memory?)"
    lines = [line.strip() for line in Path(log_path).read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"(Error|Exception)\b", line)]
    return (errors or lines or [f"exit code {code}, no output"])[-1][:300]


def _publish(video: Path, target: Path, subtitles: Path | None) -> None:
    """Move the finished video (and subtitles) into place; a log of an earlier failed render goes, being stale."""
    os.replace(video, target)
    if subtitles is not None:
        os.replace(subtitles, target.with_suffix(".srt"))
    else:
        target.with_suffix(".srt").unlink(missing_ok=True)
    target.with_suffix(".render.log").unlink(missing_ok=True)


def _keep_log(work_log: Path, target: Path) -> Path | None:
    """Move a failed render's log out of the work folder, beside where the video would have gone."""
    kept = target.with_suffix(".render.log")
    try:
        os.replace(work_log, kept)
    except OSError:
        return None
    return kept


class _Tracker:
    """Turns a render's events into RenderProgress: the plan gives each animation's phase and length, and the time
    left follows from how fast the video seconds done so far were rendered."""

    def __init__(self, report: Callable[[RenderProgress], None] | None):
        self.report = report
        self.plan: list[tuple[str | None, float]] = []
        self.started = time.monotonic()
        self.done = 0

    def handle(self, event: dict) -> None:
        if self.report is None:
            return
        kind = event["event"]
        if kind == "plan":
            self.plan = [(phase, seconds) for phase, seconds in event["animations"]]
            self.started = time.monotonic()
            self._rendering(0, None)
        elif kind == "played":  # from one worker, or from the ranges of one render at once
            self.done += 1
            self._rendering(self.done, event["phase"])
        elif kind == "converting":
            if event["fraction"] == 0:
                self.started = time.monotonic()
            self.report(RenderProgress(event["step"], "", 0, 0, 0, 0, event["fraction"],
                                       _seconds_left(self.started, event["fraction"])))

    def _rendering(self, done: int, last_phase: str | None) -> None:
        phases = list(dict.fromkeys(phase for phase, _ in self.plan if phase))
        phase = self.plan[done][0] if done < len(self.plan) else last_phase  # the one being rendered now
        total = sum(seconds for _, seconds in self.plan) or 1.0
        fraction = min(sum(seconds for _, seconds in self.plan[:done]) / total, 1.0)
        self.report(RenderProgress(
            step="rendering", phase=phase or "", phase_number=phases.index(phase) + 1 if phase in phases else 0,
            phases=len(phases), animations_done=done, animations=len(self.plan), fraction=fraction,
            seconds_left=_seconds_left(self.started, fraction),
        ))


def _seconds_left(started: float, fraction: float) -> float | None:
    """The time the rest of a step takes at the rate of the part done since `started`."""
    return (time.monotonic() - started) * (1 - fraction) / fraction if fraction > 0 else None


def balanced_ranges(step_seconds: list[float], render_seconds: list[float], parts: int) -> list[tuple[int, int]]:
    """Animations 0..n-1 split into `parts` contiguous ranges (first, last), or n where there are fewer, so that
    the slowest range is as fast as it can be: a range costs stepping through every animation before it plus
    rendering its own (the costs the measuring pass gives)."""
    count = len(render_seconds)
    parts = max(1, min(parts, count))
    stepped = [0.0, *itertools.accumulate(step_seconds)]
    rendered = [0.0, *itertools.accumulate(render_seconds)]

    def cost(first: int, end: int) -> float:  # animations first..end-1
        return stepped[first] + rendered[end] - rendered[first]

    # slowest[k][end]: the slowest of the best k ranges of animations 0..end-1; cut[k][end]: where its last starts
    slowest = [[math.inf] * (count + 1) for _ in range(parts + 1)]
    cut = [[0] * (count + 1) for _ in range(parts + 1)]
    slowest[0][0] = 0.0
    for k in range(1, parts + 1):
        for end in range(k, count + 1):
            for first in range(k - 1, end):
                candidate = max(slowest[k - 1][first], cost(first, end))
                if candidate < slowest[k][end]:
                    slowest[k][end], cut[k][end] = candidate, first
    ranges, end = [], count
    for k in range(parts, 0, -1):
        ranges.append((cut[k][end], end - 1))
        end = cut[k][end]
    return ranges[::-1]


# --- on a Ray cluster -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RayCluster:
    """Where run_jobs sends its jobs as Ray tasks. `address` as ray.init takes it ('auto', 'ray://head:10001'; None:
    the cluster RAY_ADDRESS names, else one started on this machine for the run); `shared`: every node sees the
    jobs' output folders at the same path, so a task writes its video there instead of sending it back."""

    address: str | None = None
    shared: bool = False


def _on_ray(jobs: list[Job], cluster: RayCluster) -> Iterator[Result]:
    """run_jobs on a Ray cluster: each group of _groups (a render, or a batch of dry runs) is one task, asking for
    the CPUs its render's `jobs` use, that runs the group on its node with the local policy (time limits, crashes)
    and returns the Results, a render's files as bytes unless the cluster shares its folders. A task that fails is
    retried RAY_RETRIES times, then its jobs fail with Ray's reason. Leaving early cancels the tasks left."""
    if not jobs:  # nothing to start a cluster for
        return
    ray = _connected(cluster)
    on_node = ray.remote(max_retries=RAY_RETRIES, retry_exceptions=True)(_run_on_node)
    pending = {}
    try:
        for group in _groups(jobs, max(1, int(ray.cluster_resources().get("CPU", 1)))):
            pending[on_node.options(num_cpus=group[0][1].jobs).remote(group, cluster.shared)] = group  # dry runs: 1
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(ready)
            try:
                outcomes = ray.get(ready)
            except ray.exceptions.RayError as error:
                why = f"the Ray task failed {RAY_RETRIES + 1} times: {_first_line(error)}"
                for index, job in group:
                    yield Result(index, job, error=why, report=blank_report(error=why) if job.mode == "dry-run" else None)
                continue
            for result, files in outcomes:
                yield _received(result, files)
    finally:
        for task in pending:
            ray.cancel(task, force=True)


def _connected(cluster: RayCluster):
    """The ray module, connected to the cluster (once a process: a test or a caller may have connected already)."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable("Ray is not installed: pip install 'derivanim[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f" at {cluster.address}" if cluster.address else ""
            raise ClusterUnavailable(f"cannot reach the Ray cluster{where}: {_first_line(error)}") from None
    return ray


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def _run_on_node(group: list[tuple[int, Job]], shared: bool) -> list[tuple[Result, dict[str, bytes]]]:
    """A Ray task: run the group here, with the local policy; each Result with the index it has in the caller's
    jobs and, unless the folders are shared, its files (video, subtitles, or a failure's log) as bytes."""
    jobs = [job for _, job in group]
    if shared or jobs[0].mode == "dry-run":
        return [(replace(result, index=group[result.index][0]), {}) for result in run_jobs(jobs)]
    _remove_abandoned(Path(tempfile.gettempdir()), RAY_TASK)
    with tempfile.TemporaryDirectory(prefix=_owned_prefix(RAY_TASK, os.getpid())) as folder:
        here = [replace(job, output=Path(folder) / Path(job.output).name) for job in jobs]
        outcomes = []
        for result in run_jobs(here):
            files = {name: getattr(result, name).read_bytes() for name in ("video", "subtitles", "log")
                     if getattr(result, name) is not None}
            outcomes.append((replace(result, index=group[result.index][0], job=jobs[result.index],
                                     video=None, subtitles=None, log=None), files))
        return outcomes


def _received(result: Result, files: dict[str, bytes]) -> Result:
    """A task's Result with the files it sent written where its job wanted them, as a local render publishes
    them (_publish, _keep_log): whole files only, stale subtitles and logs removed."""
    if not files:
        return result
    target = Path(result.job.output)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".received-"))
    try:
        sent = {name: work / name for name in files}
        for name, data in files.items():
            sent[name].write_bytes(data)
        if "log" in sent:
            return replace(result, log=_keep_log(sent["log"], target))
        _publish(sent["video"], target, sent.get("subtitles"))
        return replace(result, video=target, subtitles=target.with_suffix(".srt") if "subtitles" in sent else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the worker process ---------------------------------------------------------------------------------------

def serve(events_fd: int, parent: int) -> None:
    """Run the tasks given on stdin, in turn, reporting each one's start and end (and a render's progress); die with
    the `parent` process."""
    _dying_with(parent)
    import manim  # noqa: F401  (here, so that the first scene's clock does not run while Manim is imported)

    events = os.fdopen(events_fd, "w", buffering=1)

    def emit(**fields) -> None:
        events.write(json.dumps(fields) + "\n")

    for number, task in enumerate(json.loads(sys.stdin.read())):
        emit(event="start", task=number)
        before = _cpu_seconds()
        outcome = {"report": inspect_scene(Path(task["file"]), scene_name=task["scene"])} \
            if task["mode"] == "dry-run" else _render_here(task, emit)
        emit(event="finished", task=number, cpu_seconds=round(_cpu_seconds() - before, 3), **outcome)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # not waiting for threads a scene may have left running


def _dying_with(parent: int) -> None:
    """Have Linux kill this process when the thread that started it ends (PR_SET_PDEATHSIG: its caller was killed),
    and leave now if that has already happened."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _render_here(task: dict, emit: Callable[..., None]) -> dict:
    """Render the scene in this process (after a pass that counts its animations, where the parent follows the
    progress; that pass also typesets the LaTeX the real one reuses), then convert it; the video's path, or why
    there is none. A task with a `range` renders only those animations; one with `parts` is the first range of a
    render in ranges (_Run._in_ranges): it measures, splits, says how ('ranges') and renders the first."""
    from manim import tempconfig

    try:
        scene_class = _scene_class(task)
        settings = _settings(task)
        if task.get("parts"):  # the first range of a render in ranges: measure, split, say how, render the first
            measured = _measured(scene_class, settings, emit)  # None: a scene that cannot be measured, rendered whole
            ranges = balanced_ranges(*zip(*measured), task["parts"]) if measured else [(0, -1)]
            emit(event="ranges", ranges=ranges)
            task = {**task, "range": [0, ranges[0][1] if len(ranges) > 1 else -1]}
        if task.get("range"):  # only the animations first..last (Manim's -n first,last), the ones before skipped
            first, last = task["range"]
            settings.update(from_animation_number=first, upto_animation_number=last)
        if task["count"]:
            plan = []
            with tempconfig(settings):
                try:
                    counting = scene_class(skip_animations=True)
                except TypeError:  # a scene with an __init__ of its own: rendered without a count
                    counting = None
                if counting is not None:
                    _instrumented(counting, lambda phase, seconds: plan.append((phase, seconds))).render()
            emit(event="plan", animations=plan)

        def played(phase, seconds):
            if not scene.renderer.skip_animations:  # a range's skipped animations are another worker's
                emit(event="played", phase=phase)

        with tempconfig(settings):
            scene = _instrumented(scene_class(), played)
            if task.get("range"):
                _stepping(scene)
            scene.render()
            writer = scene.renderer.file_writer
            video = Path(writer.movie_file_path)
            subtitles = Path(writer.output_plan.subcaption_file) if writer.subcaptions else None
    except BaseException as error:
        traceback.print_exc(file=sys.stdout)
        return {"error": f"Manim failed: {_latex_error(f'{type(error).__name__}: {error}')}"}
    if not video.is_file():
        return {"error": "Manim failed: it wrote no video"}
    if subtitles is not None:
        subtitles.write_text(subtitles_in_turn(subtitles.read_text(encoding="utf-8")), encoding="utf-8")
    if task["convert_to"]:
        try:
            video = _converted(video, Path(task["convert_to"]), emit)
        except av.FFmpegError as error:
            traceback.print_exc(file=sys.stdout)
            return {"error": f"converting the video to {Path(task['convert_to']).suffix[1:]} failed: {error}"}
    return {"error": None, "video": str(video), "subtitles": str(subtitles) if subtitles else None}


def _converted(video: Path, target: Path, emit: Callable[..., None]) -> Path:
    """The MP4 converted to `target` (GIF or WebM), its progress emitted as 'converting' events."""
    step = f"converting to {'GIF' if target.suffix == '.gif' else 'WebM'}"
    emit(event="converting", step=step, fraction=0)
    return convert_video(video, target, lambda fraction: emit(event="converting", step=step, fraction=fraction))


def _measured(scene_class: type, settings: dict, emit: Callable[..., None]) -> list[tuple[float, float]] | None:
    """The measuring pass of a render in ranges: construct() with every animation skipped as a range's worker skips
    it, each timed, with its last frame drawn (not written) to time the drawing (_stepping); it also typesets, into
    the shared tex_dir, the LaTeX the other ranges then reuse. Emits the plan (each animation's phase and length);
    returns each animation's (seconds to skip it, estimated seconds to render it); None for a scene with an
    __init__ of its own (it cannot be told to skip)."""
    from manim import tempconfig

    plan = []
    with tempconfig(settings):
        try:
            scene = scene_class(skip_animations=True)
        except TypeError:
            return None
        timings = _stepping(scene, measure=True)
        _instrumented(scene, lambda phase, seconds: plan.append((phase, seconds))).render()
        per_file, per_frame = _encoding_seconds(scene) if timings else (0.0, 0.0)
    emit(event="plan", animations=plan)
    return [(skipping, drawing + per_file + frames * per_frame) for skipping, drawing, frames in timings]


def _encoding_seconds(scene) -> tuple[float, float]:
    """What Manim's encoder takes for a partial movie file (each animation has one): (seconds per file, seconds per
    frame), timed on files of 1 and of ENCODE_SAMPLE frames made of the scene's last frame, moved a little from
    frame to frame as an animation moves things."""
    import numpy as np

    writer, pixels = scene.renderer.file_writer, scene.renderer.get_frame()
    folder = Path(tempfile.mkdtemp(prefix="encoding-"))  # in the worker's TMPDIR: the render's work folder

    def encoding(frames: int) -> float:
        encoder = writer._create_segment_encoder(folder / f"{frames}.mp4")  # Manim's own, as pinned
        return _seconds(lambda: ([encoder.write_frame(np.roll(pixels, 4 * number, axis=1))
                                  for number in range(frames)], encoder.finish()))

    one, many = encoding(1), encoding(ENCODE_SAMPLE)
    per_frame = max(0.0, (many - one) / (ENCODE_SAMPLE - 1))
    return max(0.0, one - per_frame), per_frame


def _scene_class(task: dict) -> type:
    """The scene class `task['scene']` of the scene file `task['file']`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(task["file"]).stem, task["file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scene_class = getattr(module, task["scene"], None)
    if scene_class is None:
        raise NameError(f"the scene file defines no class {task['scene']}")
    return scene_class


def _settings(task: dict) -> dict:
    """Manim's configuration for a task: its own media folder (and a LaTeX folder shared with the other workers of
    the same render, where it has one), no cache, no progress bar."""
    settings = {"input_file": task["file"], "media_dir": task["media_dir"], "quality": task["quality"],
                "format": "mp4", "disable_caching": True, "progress_bar": "none"}
    if task.get("tex_dir"):
        settings["tex_dir"] = task["tex_dir"]
    return settings


def _stepping(scene, measure: bool = False) -> list[list[float]]:
    """Make the scene skip animations the way a render would have played them, without drawing or writing a frame,
    so that a range of animations starts from the very state and time a one-process render has there.

    Manim's own skipping jumps to an animation's end in one step and adds its length to the clock; a render counts
    whole frames (subtitle times follow the clock) and updates every frame. The clock is kept as a render keeps it;
    an animation during which something has a time-based updater (a TracedPath collects a point each frame) is
    stepped frame by frame, any other takes Manim's one step, which ends in the same state. A custom updater that
    accumulates without taking dt would need frame-by-frame stepping too and does not get it.

    Returns, filled as the scene plays, [seconds to skip it, estimated seconds to draw it, its frames] for each
    skipped animation; with `measure`, the estimate adds its frames times one frame's updates and drawing, timed on its
    last frame (drawn, not written; the scene is only measured, so the extra updates change nothing that is
    shown). Encoding is not counted here (_encoding_seconds)."""
    import numpy as np
    from manim import config

    renderer = scene.renderer
    progression, render, add_frame, play, play_internal = (
        scene.get_time_progression, renderer.render, renderer.add_frame, renderer.play, scene.play_internal)
    timings: list[list[float]] = []
    frames: list[int] = []  # the frames a render would have written in this (skipped) animation
    state = {"stepped": 0, "internal": False}  # frames stepped one by one; went through play_internal

    def time_based() -> bool:
        moving = [*scene.mobjects, *(animation.mobject for animation in scene.animations or ())]
        return bool(scene.updaters) or any(member.has_time_based_updater() for mobject in moving
                                           for member in mobject.get_family())

    def progression_like_a_render(run_time, *args, **kwargs):
        if not renderer.skip_animations:
            return progression(run_time, *args, **kwargs)
        every = np.arange(0, run_time, 1 / config["frame_rate"])  # the frames play_internal renders
        if time_based():
            state["stepped"] = len(every)
            return progression(run_time, *args, **{**kwargs, "override_skip_animations": True})
        frames.append(len(every))
        return progression(run_time, *args, **kwargs)

    def render_unless_skipping(scene_, time_, moving_mobjects=None):
        if not renderer.skip_animations:
            render(scene_, time_, moving_mobjects)
        elif state["stepped"]:
            renderer.add_frame(None)

    def add_frame_unless_skipping(frame, num_frames=1):
        if renderer.skip_animations:
            frames.append(num_frames)
        else:
            add_frame(frame, num_frames)

    def noting_play_internal(*args, **kwargs):
        state["internal"] = True
        play_internal(*args, **kwargs)

    def play_keeping_time(scene_, *args, **kwargs):
        before, start = renderer.time, time.perf_counter()
        frames.clear()
        state.update(stepped=0, internal=False)
        play(scene_, *args, **kwargs)
        if not renderer.skip_animations:
            return
        renderer.time = before  # as add_frame counts a render's time, frame by frame
        for count in frames:
            renderer.time += count * (1 / renderer.camera.frame_rate)
        skipping = time.perf_counter() - start
        rendering = skipping
        if state["internal"]:
            scene.update_mobjects(0)  # a rendered play_internal ends with this; a skipped one does not
            if measure:  # each frame: its updates and drawing, timed again warm (the first may typeset LaTeX)
                frame = _seconds(lambda: scene.update_mobjects(0)) if not state["stepped"] else 0.0
                renderer.update_frame(scene, scene.moving_mobjects)
                frame += _seconds(lambda: renderer.update_frame(scene, scene.moving_mobjects))
                rendering += sum(frames) * frame
        timings.append([skipping, rendering, sum(frames)])

    scene.get_time_progression, scene.play_internal = progression_like_a_render, noting_play_internal
    renderer.render, renderer.add_frame = render_unless_skipping, add_frame_unless_skipping
    renderer.play = play_keeping_time
    return timings


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _instrumented(scene, on_play: Callable[[str | None, float], None]):
    """The scene, reporting each finished animation with its section (phase) and length in video seconds."""
    phase = [None]
    play, next_section = scene.play, scene.next_section

    def reporting_play(*args, **kwargs):
        before = scene.time
        play(*args, **kwargs)
        on_play(phase[0], scene.time - before)

    def named_section(name="unnamed", *args, **kwargs):
        phase[0] = name
        next_section(name, *args, **kwargs)

    scene.play, scene.next_section = reporting_play, named_section  # self.wait() goes through self.play too
    return scene


def _latex_error(message: str) -> str:
    """Manim's 'latex error converting to dvi ... the log file: X.log' with the error LaTeX gave in that log."""
    found = re.search(r"the log file: (\S+\.log)", message)
    if found and Path(found[1]).is_file():
        first = next((line.strip() for line in Path(found[1]).read_text(errors="replace").splitlines()
                      if line.startswith("!")), None)
        if first:
            return f"LaTeX failed: {first}"
    return message
