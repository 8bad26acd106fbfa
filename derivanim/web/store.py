"""The jobs of `derivanim serve`, in SQLite in the data folder (jobs.sqlite3), shared by the server and its workers.

A job moves filling -> queued -> running -> done, or to failed or cancelled. 'filling': the filler process has not yet
verified its slots; 'queued': its scene code is written and waits for a render worker. A job whose scene (and render
options) were rendered before is done at once: its video is the gallery's, found by render_key. The videos live in
gallery/<render key>/ under the data folder; the database holds only paths inside it.

Every process opens its own connections (one per operation: SQLite connections are cheap and not shared between
threads); WAL lets readers go on while a worker writes.
"""

import json
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

WAITING = ("filling", "queued")
ACTIVE = (*WAITING, "running", "cancelling")
MAX_ATTEMPTS = 2  # a job that was running when the server stopped runs again, once

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    request TEXT NOT NULL,
    options TEXT NOT NULL,          -- JSON: quality, format, filler, x_min, x_max, x0
    status TEXT NOT NULL,           -- filling, queued, running, cancelling, done, failed, cancelled
    phase TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    seconds_left REAL,
    animation TEXT,                 -- JSON: the verified animation (slots, derivative, derivation, ...)
    function TEXT,                  -- the verified function, for the gallery's search
    code TEXT,
    key TEXT,                       -- render_key(code, quality, format): the gallery's content address
    video TEXT,                     -- paths relative to the data folder
    scene TEXT,
    subtitles TEXT,
    error TEXT,
    exit_code INTEGER,
    from_gallery INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    filled REAL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs (key, status);
"""


@dataclass(frozen=True)
class Job:
    """One row of the jobs table, as the API and the workers read it."""

    id: str
    created: float
    request: str
    options: dict
    status: str
    phase: str
    progress: float
    seconds_left: float | None
    animation: dict | None
    function: str | None
    code: str | None
    key: str | None
    video: str | None
    scene: str | None
    subtitles: str | None
    error: str | None
    exit_code: int | None
    from_gallery: bool
    attempts: int
    filled: float | None
    started: float | None
    finished: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        values = dict(row)
        values["options"] = json.loads(values["options"])
        values["animation"] = values["animation"] and json.loads(values["animation"])
        values["from_gallery"] = bool(values["from_gallery"])
        return cls(**values)


class QueueFull(Exception):
    """As many jobs wait or run as the server allows."""


class JobStore:
    def __init__(self, data: Path | str):
        self.data = Path(data).resolve()
        self.data.mkdir(parents=True, exist_ok=True)
        self.path = self.data / "jobs.sqlite3"
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(SCHEMA)

    @contextmanager
    def _connect(self):
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            yield connection
        finally:
            connection.close()

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE: one writer at a time, so that two workers never claim the same job."""
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def _update(self, job_id: str, **fields) -> None:
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._connect() as connection:
            connection.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*fields.values(), job_id))

    # --- the server's side ---------------------------------------------------------------------------------------

    def add(self, request: str, options: dict, max_active: int) -> str:
        """A new job, waiting for its slots; QueueFull when `max_active` jobs already wait or run."""
        job_id = uuid.uuid4().hex[:16]
        with self._transaction() as connection:
            marks = ",".join("?" * len(ACTIVE))
            [active] = connection.execute(f"SELECT count(*) FROM jobs WHERE status IN ({marks})", ACTIVE).fetchone()
            if active >= max_active:
                raise QueueFull(f"{active} animations are waiting or rendering")
            connection.execute("INSERT INTO jobs (id, created, request, options, status) VALUES (?, ?, ?, ?, ?)",
                               (job_id, time.time(), request, json.dumps(options), "filling"))
        return job_id

    def get(self, job_id: str) -> Job | None:
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row and Job.from_row(row)

    def delete(self, job_id: str) -> None:
        with self._connect() as connection:
            connection.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def cancel(self, job_id: str) -> str | None:
        """Cancel a job that waits (at once) or runs (its worker stops the render); returns its status after, None if
        there is no such job."""
        with self._transaction() as connection:
            row = connection.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            status = {"filling": "cancelled", "queued": "cancelled", "running": "cancelling"}.get(row["status"])
            if status is None:
                return row["status"]
            connection.execute("UPDATE jobs SET status = ?, finished = ? WHERE id = ?",
                               (status, time.time() if status == "cancelled" else None, job_id))
        return status

    def gallery(self, query: str = "", limit: int = 50) -> list[Job]:
        """What was rendered, newest first, one job per video (the one that rendered it), searched by function or
        request."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT * FROM jobs WHERE status = 'done' AND from_gallery = 0 AND video IS NOT NULL "
                "AND (function LIKE ? ESCAPE '\\' OR request LIKE ? ESCAPE '\\') ORDER BY finished DESC LIMIT ?",
                (pattern, pattern, limit)).fetchall()
        return [Job.from_row(row) for row in rows]

    def recover(self) -> dict[str, int]:
        """At start-up: what was running when the server stopped runs again (failed after MAX_ATTEMPTS, with the
        reason), a cancel that was under way is done, and what was filling or queued stays to be run."""
        with self._transaction() as connection:
            failed = connection.execute(
                "UPDATE jobs SET status = 'failed', finished = ?, exit_code = 1, error = ? "
                "WHERE status = 'running' AND attempts >= ?",
                (time.time(), f"the server stopped {MAX_ATTEMPTS} times while this animation rendered",
                 MAX_ATTEMPTS)).rowcount
            requeued = connection.execute(
                "UPDATE jobs SET status = 'queued', phase = '', progress = 0, seconds_left = NULL "
                "WHERE status = 'running'").rowcount
            connection.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE status = 'cancelling'",
                               (time.time(),))
            [waiting] = connection.execute("SELECT count(*) FROM jobs WHERE status IN ('filling', 'queued')").fetchone()
        return {"requeued": requeued, "failed": failed, "waiting": waiting}

    # --- the filler's side -----------------------------------------------------------------------------------------

    def next_to_fill(self) -> Job | None:
        with self._connect() as connection:
            row = connection.execute(
                "SELECT * FROM jobs WHERE status = 'filling' ORDER BY created LIMIT 1").fetchone()
        return row and Job.from_row(row)

    def filled(self, job: Job, animation: dict, function: str, code: str, key: str) -> None:
        """The slots are verified and the scene written: done at once from the gallery if this key was rendered
        before (and its video is still there), else queued for a render worker."""
        now = time.time()
        rendered = self.rendered_before(key)
        fields = dict(animation=json.dumps(animation), function=function, code=code, key=key, filled=now)
        if rendered is None:
            fields.update(status="queued")
        else:
            fields.update(status="done", from_gallery=1, progress=1.0, finished=now, video=rendered.video,
                          scene=rendered.scene, subtitles=rendered.subtitles)
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._connect() as connection:  # a job cancelled while its slots were being filled stays cancelled
            connection.execute(f"UPDATE jobs SET {columns} WHERE id = ? AND status = 'filling'",
                               (*fields.values(), job.id))

    # --- the render workers' side ----------------------------------------------------------------------------------

    def claim(self) -> Job | None:
        """The oldest queued job whose video no other worker is rendering now, marked running."""
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT * FROM jobs WHERE status = 'queued' AND key NOT IN "
                "(SELECT key FROM jobs WHERE status IN ('running', 'cancelling')) ORDER BY created LIMIT 1").fetchone()
            if row is None:
                return None
            connection.execute("UPDATE jobs SET status = 'running', started = ?, attempts = attempts + 1 "
                               "WHERE id = ?", (time.time(), row["id"]))
        return Job.from_row(row)

    def rendered_before(self, key: str) -> Job | None:
        """A finished render of this key whose video is still in the data folder."""
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM jobs WHERE key = ? AND status = 'done' AND video IS NOT NULL "
                                     "ORDER BY finished DESC LIMIT 1", (key,)).fetchone()
        job = row and Job.from_row(row)
        return job if job and (self.data / job.video).is_file() else None

    def progress(self, job_id: str, phase: str, progress: float, seconds_left: float | None) -> str:
        """Record how the render stands; returns the job's status (a worker stops on 'cancelling')."""
        with self._connect() as connection:
            connection.execute("UPDATE jobs SET phase = ?, progress = ?, seconds_left = ? WHERE id = ?",
                               (phase, progress, seconds_left, job_id))
            row = connection.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row["status"]

    def done(self, job_id: str, video: str, scene: str, subtitles: str | None, from_gallery: bool = False) -> None:
        self._update(job_id, status="done", phase="", progress=1.0, seconds_left=None, video=video, scene=scene,
                     subtitles=subtitles, from_gallery=int(from_gallery), finished=time.time())

    def failed(self, job_id: str, error: str, exit_code: int) -> None:
        self._update(job_id, status="failed", error=error, exit_code=exit_code, seconds_left=None,
                     finished=time.time())

    def cancelled(self, job_id: str) -> None:
        self._update(job_id, status="cancelled", seconds_left=None, finished=time.time())

    # --- disk ------------------------------------------------------------------------------------------------------

    def prune(self, max_bytes: int) -> list[str]:
        """Remove the oldest gallery videos (and the jobs that showed them) until the data folder holds at most
        `max_bytes`; returns the requests removed."""
        removed = []
        for job in reversed(self.gallery(limit=-1)):
            if folder_bytes(self.data) <= max_bytes:
                break
            shutil.rmtree(self.data / "gallery" / job.key, ignore_errors=True)
            with self._connect() as connection:
                connection.execute("DELETE FROM jobs WHERE key = ? AND status NOT IN ('filling', 'queued', "
                                   "'running', 'cancelling')", (job.key,))
            removed.append(job.request)
        with self._connect() as connection:
            connection.execute("VACUUM")
        return removed


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
