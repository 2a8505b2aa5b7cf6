"""Synchronous queries to AI workers (a contract's ``queries``), through their RQ ``high`` queue.

The gateway never imports an ML library: to embed a search text it enqueues
:data:`~mediafleet.common.taskrun.QUERY_FUNCTION` on the capability's ``<queue>:high`` and
waits for the worker's answer (RQ's result stream), at most ``MEDIAFLEET_QUERY_TIMEOUT_S``.
"""

from __future__ import annotations

import time

import redis
from pydantic import BaseModel
from rq import Queue, Worker
from rq.results import Result

from mediafleet.common.capability import Capability, QuerySpec
from mediafleet.common.errors import BadRequest, GatewayTimeout, MediafleetError, ServiceUnavailable
from mediafleet.common.outcome import TaskOutcome, failure_message
from mediafleet.common.taskrun import QUERY_FUNCTION


def ask(
    conn: redis.Redis, cap: Capability, spec: QuerySpec, payload: BaseModel, timeout_s: float
) -> BaseModel:
    """Send one query to a worker of ``cap`` and return its validated answer.

    Raises ServiceUnavailable (no worker listening, or the worker failed: its last error
    line), GatewayTimeout (no answer in ``timeout_s``) or BadRequest (the worker refused
    the input).
    """
    queue = Queue(f"{cap.queue}:high", connection=conn)
    if not Worker.all(connection=conn, queue=queue):
        raise ServiceUnavailable(
            f"no {cap.name} worker is running to answer {spec.name}", code="query_unavailable"
        )
    job = queue.enqueue(
        QUERY_FUNCTION,
        {"query": spec.name, "input": payload.model_dump(mode="json")},
        ttl=max(int(timeout_s), 1),  # dropped from the queue when no worker starts it in time
        result_ttl=60,
        failure_ttl=60,
        job_timeout=max(int(timeout_s), 1),
    )
    deadline = time.monotonic() + timeout_s
    result = None
    while result is None and (left := deadline - time.monotonic()) > 0:
        # Block on the result stream in slices shorter than the client's socket timeout.
        result = job.latest_result(timeout=max(1, min(4, int(left))))
    if result is None:
        job.cancel()
        raise GatewayTimeout(
            f"{cap.name} did not answer {spec.name} within {timeout_s:g} s", code="query_timeout"
        )
    if result.type != Result.Type.SUCCESSFUL:  # the worker's log has the exception; users get a line
        raise ServiceUnavailable(
            f"{cap.name} could not answer {spec.name}: {failure_message(result.exc_string, int(timeout_s))}",
            code="query_failed",
        )
    outcome = TaskOutcome.model_validate(result.return_value)
    if not outcome.ok or outcome.result is None:
        err = outcome.error
        if err is not None and err.code == "models_missing":  # no retry helps: say what to install
            raise ServiceUnavailable(
                f"{cap.name} cannot answer {spec.name} now: {err.message}", code="models_missing"
            )
        if err is None:
            raise BadRequest("query refused", code="query_refused")
        refused = MediafleetError(err.message, code=err.code)
        refused.status_code = err.status if 400 <= err.status < 500 else 400  # the worker's 4xx as it was
        raise refused
    return spec.output.model_validate(outcome.result)
