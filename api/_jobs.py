"""Background jobs with status and progress (labeling an upload, later: discovery)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import BaseModel

from core.errors import OsedError

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed"]


class Job(BaseModel):
    id: str
    kind: str
    building: str | None = None
    status: JobStatus = "queued"
    done: int = 0
    total: int = 0
    message: str = ""
    error: str | None = None
    result: dict[str, object] | None = None
    created: float
    finished: float | None = None

    @property
    def progress(self) -> float:
        return 1.0 if self.status == "succeeded" else (self.done / self.total if self.total else 0.0)


class JobManager:
    """Runs jobs one at a time (labeling is CPU-bound on two cores) and keeps their status."""

    def __init__(self, keep: int = 200) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="osed-job")
        self._keep = keep

    def submit(
        self,
        kind: str,
        work: Callable[[Callable[[int], None]], dict[str, object]],
        *,
        total: int,
        building: str | None = None,
    ) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], kind=kind, building=building, total=total, created=time.time())
        with self._lock:
            self._jobs[job.id] = job
            self._trim()
        self._pool.submit(self._run, job.id, work)
        return job.model_copy()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.model_copy() if job else None

    def _update(self, job_id: str, **changes: object) -> None:
        with self._lock:
            job = self._jobs[job_id]
            for key, value in changes.items():
                setattr(job, key, value)

    def _run(self, job_id: str, work: Callable[[Callable[[int], None]], dict[str, object]]) -> None:
        self._update(job_id, status="running")

        def tick(n: int) -> None:
            with self._lock:
                job = self._jobs[job_id]
                job.done = min(job.total, job.done + n)

        try:
            result = work(tick)
        except OsedError as exc:
            self._update(job_id, status="failed", error=str(exc), finished=time.time())
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._update(job_id, status="failed", error=f"internal error: {exc}", finished=time.time())
        else:
            with self._lock:
                job = self._jobs[job_id]
                job.status, job.result, job.finished = "succeeded", result, time.time()
                job.done = job.total

    def _trim(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished]
        for job in sorted(finished, key=lambda j: j.created)[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[job.id]

    def wait(self, job_id: str, timeout: float = 60.0) -> Job | None:
        """For the CLI and tests: block until the job finishes (or the timeout)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self.get(job_id)
            if job is None or job.status in ("succeeded", "failed"):
                return job
            time.sleep(0.05)
        return self.get(job_id)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
