"""What a task returns to job_manager: a result, or a failure that no retry can fix, as data.

An exception raised by a task means "try again" (RQ retries it with backoff); a
:class:`TaskOutcome` with ``ok=False`` means "this input can never succeed" (bad options,
undecodable media) and fails the task at once, with its code (rq's ``Result.Type`` idea).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class TaskError(BaseModel):
    code: str
    message: str
    #: The HTTP status the error has where a caller waits for it (a query: 400, 422 ...).
    status: int = 400


class TaskOutcome(BaseModel):
    ok: bool
    result: dict[str, Any] | None = None
    error: TaskError | None = None
    #: what the worker that produced ``result`` runs on (``cpu``, ``cuda``); None from older workers
    device: str | None = None

    @classmethod
    def success(cls, result: BaseModel, device: str | None = None) -> TaskOutcome:
        return cls(ok=True, result=result.model_dump(mode="json"), device=device)

    @classmethod
    def failure(cls, code: str, message: str, status: int = 400) -> TaskOutcome:
        return cls(ok=False, error=TaskError(code=code, message=message, status=status))

    def describe_error(self) -> str:
        err = self.error or TaskError(code="no_result", message="task returned no result")
        return f"{err.code}: {err.message}"


class TaskCrashed(Exception):
    """Raised by the task function for an unexpected error (RQ retries it): its message is for
    people (what failed, where to look); the original exception is in the worker's log."""


#: Prefix of a TaskCrashed in RQ's stored traceback (job_manager shows the message after it).
CRASHED_PREFIX = f"{TaskCrashed.__module__}.{TaskCrashed.__qualname__}: "


def failure_message(exc_info: str | None, timeout_s: float | None = None) -> str:
    """What a user reads for a task that failed after its retries, from RQ's stored ``exc_info``:
    the TaskCrashed message, a time-out, an abandoned worker, or a generic line. Never a class
    name, a traceback or a server path."""
    lines = [ln for ln in (exc_info or "").strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if last.startswith(CRASHED_PREFIX):
        return last[len(CRASHED_PREFIX) :][:2000]
    if "JobTimeoutException" in last or "exceeded maximum timeout" in last:
        limit = f" of {timeout_s:g} s" if timeout_s else ""
        return f"the task ran past its time limit{limit} and was stopped"
    if "AbandonedJobError" in last:
        return "the worker running the task stopped (crash, restart or lost host) and no retries were left"
    return "the task failed on the worker (internal error; the worker's log has the details)"
