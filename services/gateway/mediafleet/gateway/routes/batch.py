"""``POST /v1/batch``: many API calls in one request (see ``mediafleet.gateway.batch``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from mediafleet.common.errors import ValidationFailed
from mediafleet.gateway.batch.schemas import BatchRequest, BatchResponse
from mediafleet.gateway.deps import ContextDep, CurrentUser

router = APIRouter(tags=["batch"])


@router.post("/v1/batch", response_model=BatchResponse)
async def batch(body: BatchRequest, request: Request, user: CurrentUser, ctx: ContextDep) -> BatchResponse:
    """Run up to ``GATEWAY_BATCH__MAX_REQUESTS`` API calls with the caller's identity.

    - Responses come back in request order, each with its own status; one failed
      sub-request never fails the batch.
    - Identical idempotent sub-requests (same method, path, query, body) run once.
    - GET responses are cached per user (LRU, TTL ``GATEWAY_BATCH__CACHE_TTL_S``), invalidated
      by writes to the same resource; routes can opt out with ``Cache-Control: no-store``.
    - Run order: authentication, job creation and job status first; then search and
      listings; then the rest; request order within each group.
    - 5xx and time-outs of idempotent sub-requests are retried with exponential backoff
      and jitter; POST and PATCH never are.

    Errors: 413 body over ``GATEWAY_BATCH__MAX_BODY_BYTES``; 422 ``batch_too_large``. Per item:
    400 ``malformed_item``, ``path_not_allowed``, ``nested_batch``, ``streaming_not_supported``;
    413 item body too large.
    """
    limits = ctx.batch.limits
    if len(body.requests) > limits.max_requests:
        raise ValidationFailed(
            f"a batch holds at most {limits.max_requests} requests, this one has {len(body.requests)}",
            code="batch_too_large",
        )
    return await ctx.batch.run(body.requests, body.options, user.id, request.headers["authorization"])
