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


class TaskOutcome(BaseModel):
    ok: bool
    result: dict[str, Any] | None = None
    error: TaskError | None = None

    @classmethod
    def success(cls, result: BaseModel) -> TaskOutcome:
        return cls(ok=True, result=result.model_dump(mode="json"))

    @classmethod
    def failure(cls, code: str, message: str) -> TaskOutcome:
        return cls(ok=False, error=TaskError(code=code, message=message))

    def describe_error(self) -> str:
        err = self.error or TaskError(code="no_result", message="task returned no result")
        return f"{err.code}: {err.message}"
